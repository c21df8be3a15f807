// Step / Back / Play / Reset over numbered steps, with a slider to jump. All of it works by
// keyboard: the buttons with Enter or Space, the slider with the arrows, Home and End.
// Nothing plays on load. Play stops at the last step, when the reader presses Pause (the
// same button) or Escape inside the widget, or uses any other control of the stepper. While
// it plays the live region is hushed (see announce.js); when it stops, the current step is
// announced once.

import { el, uid } from "./dom.js";
import { button, toggleButton } from "./controls.js";
import { playInterval } from "./motion.js";

/**
 * createStepper({ count, show, announcer, label }): `show(index)` draws step `index` (0 is the
 * state before the first step) and returns the sentence to announce. Returns { element, go,
 * index, setCount, stop }.
 */
export function createStepper({ count, show, announcer, label = "Step" }) {
  let index = 0;
  let total = count;
  let timer = null;
  const sliderId = uid("nb-step");
  const slider = el("input", { type: "range", id: sliderId, min: "0", max: String(total), step: "1", value: "0" });
  const position = el("output", { for: sliderId, class: "nb-kit-step-position" });
  const back = button("Back", () => { stop(); go(index - 1); }, { class: "nb-kit-back" });
  const forward = button("Step", () => { stop(); go(index + 1); }, { class: "nb-kit-step" });
  const play = toggleButton("Play", () => (timer ? stop() : start()), { class: "nb-kit-play" });
  const reset = button("Reset", () => { stop(); go(0); }, { class: "nb-kit-reset" });
  slider.addEventListener("input", () => { stop(); go(Number(slider.value)); });

  const element = el("div", { class: "nb-kit-stepper", role: "group", "aria-label": `${label} controls` },
    back, forward, play, reset,
    el("span", { class: "nb-kit-field nb-kit-slider" }, el("label", { for: sliderId, text: label }), slider, position));

  function describe() {
    return `${label} ${index} of ${total}`;
  }

  function go(target, quiet = false) {
    index = Math.max(0, Math.min(total, target));
    slider.value = String(index);
    slider.setAttribute("aria-valuetext", describe());
    position.textContent = `${index} / ${total}`;
    back.disabled = index === 0;
    forward.disabled = index === total;
    const sentence = show(index);
    if (!quiet && sentence) announcer.say(sentence);
    return index;
  }

  function start() {
    if (index === total) go(0, true);
    announcer.hush();
    play.textContent = "Pause";
    play.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      go(index + 1);
      if (index === total) stop();
    }, playInterval());
  }

  function stop() {
    if (!timer) return;
    clearInterval(timer);
    timer = null;
    play.textContent = "Play";
    play.setAttribute("aria-pressed", "false");
    announcer.speak();
  }

  element.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && timer) stop();
  });

  return {
    element,
    go,
    stop,
    index: () => index,
    setCount(n) {
      stop();
      total = n;
      slider.max = String(n);
    },
  };
}
