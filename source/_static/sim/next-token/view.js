// The next-token stepper (chapter 1): one press, one step of the loop. The five most likely
// next tokens with their probabilities, the token taken appended to the text, the KV cache
// holding one more token in every layer. For the first three steps the reader may take any of
// the three most likely tokens; after that the most likely. The probabilities are the
// engine's, computed when the book was built (page data); logic.js walks them. Drawing only,
// with the widget kit (../kit/).

import { el, fill, plural } from "../kit/dom.js";
import { button, group } from "../kit/controls.js";
import { frame, view } from "../kit/widget.js";
import { walk } from "./logic.js";

const ORDINAL = ["1st", "2nd", "3rd", "4th", "5th"];

let instances = 0;

function shown(text) {
  return text.replace(/ /g, "␣").replace(/\n/g, "↵");
}

function percent(p) {
  return p < 0.0005 ? "<0.1%" : `${(100 * p).toFixed(1)}%`;
}

export function mount(root, params) {
  const id = `nb-nt-${++instances}`;
  const data = params;
  const tokenText = (t) => data.tokenText[String(t)] ?? `#${t}`;
  let choices = []; // ranks the reader took, in order
  let done = 0; // steps taken

  const { controls, announcer, views } = frame(root, "nb-nt");

  // -- controls ------------------------------------------------------------------------------
  const back = button("Back", () => go(done - 1, `Back to ${done - 1 === 0 ? "the prompt" : `step ${done - 1}`}.`));
  const takes = [0, 1, 2].map((rank) => button(`Take ${ORDINAL[rank]}`, () => take(rank), { class: `nb-nt-take nb-nt-take-${rank}` }));
  const reset = button("Reset", () => {
    choices = [];
    go(0, `Back to the prompt: ${plural(data.promptIds.length, "token")}, nothing in the cache yet.`);
  });
  controls.append(group("Next step", ...takes), group("Path", back, reset));

  // -- views ---------------------------------------------------------------------------------
  const textView = el("p", { class: "nb-nt-text" });
  const stepLine = el("p", { class: "nb-nt-step" });
  const bars = el("ol", { class: "nb-nt-bars", "aria-label": "The five most likely next tokens" });
  const cache = el("div", { class: "nb-nt-cache", role: "img" });
  const cacheLine = el("p", { class: "nb-nt-cache-line" });
  views.append(
    view(`${id}-text`, "Text so far", textView),
    view(`${id}-next`, "Next token", stepLine, bars),
    view(`${id}-cache`, "KV cache", cache, cacheLine));

  function path() {
    return walk(data, choices, done);
  }

  function renderText(states) {
    const pieces = [el("span", { class: "nb-nt-prompt", text: data.prompt.replace(/\n/g, "↵") })];
    states.forEach((s, i) => pieces.push(el("span", {
      class: `nb-nt-token${s.rank ? " nb-nt-alt" : ""}${i === states.length - 1 ? " nb-nt-new" : ""}`,
      title: `step ${i + 1}: ${ORDINAL[s.rank]} most likely, ${percent(s.top[s.rank][1])}`,
    }, shown(tokenText(s.chosen)))));
    fill(textView, pieces);
  }

  function renderNext() {
    if (done >= data.steps) {
      stepLine.textContent = `All ${data.steps} steps taken. Back or Reset to take another path.`;
      fill(bars);
      return;
    }
    const next = walk(data, choices, done + 1)[done];
    const free = done < data.branchSteps;
    stepLine.textContent = `Step ${done + 1} of ${data.steps}: ` + (free
      ? `take any of the three most likely tokens (choices left: ${data.branchSteps - done}).`
      : "the stepper takes the most likely token from here on (greedy decoding).");
    fill(bars, next.top.map(([token, p], rank) => el("li", {
      class: `nb-nt-bar${free && rank < data.branches ? " nb-nt-choice" : ""}`,
      "aria-label": `${ORDINAL[rank]}: “${shown(tokenText(token))}”, ${percent(p)}`,
    }, el("span", { class: "nb-nt-rank", text: ORDINAL[rank] }),
    el("span", { class: "nb-nt-tok", text: shown(tokenText(token)) }),
    el("span", { class: "nb-nt-meter", "aria-hidden": "true" }, el("span", { class: "nb-nt-fill", style: { width: `${(100 * p).toFixed(2)}%` } })),
    el("span", { class: "nb-nt-p", text: percent(p) }))));
  }

  function renderCache(states) {
    const held = done ? states[done - 1].kvTokens : 0;
    const before = done > 1 ? states[done - 2].kvTokens : 0;
    const columns = data.promptIds.length + data.steps;
    cache.style.setProperty("--columns", String(columns));
    const rows = [];
    for (let layer = 0; layer < data.layers; layer++) {
      rows.push(el("span", { class: "nb-nt-layer", text: `layer ${layer + 1}` }));
      for (let t = 0; t < columns; t++) {
        const state = t < before ? "held" : t < held ? "new" : "empty";
        rows.push(el("span", { class: `nb-nt-cell nb-nt-${state}` }));
      }
    }
    fill(cache, rows);
    const bytes = held * data.kvBytesPerToken;
    cache.setAttribute("aria-label", `KV cache: ${plural(held, "token")} in each of ${data.layers} layers` +
      (held > before ? `, ${plural(held - before, "token")} stored by this step` : ""));
    cacheLine.textContent = held === 0
      ? "Empty: the first step stores the keys and values of the whole prompt."
      : `${plural(held, "token")} in each of ${data.layers} layers: ${held} × ${data.kvBytesPerToken.toLocaleString("en")} ` +
        `bytes = ${bytes.toLocaleString("en")} bytes (${data.dtype}). ` +
        (done === 1 ? `Step 1 stored the whole prompt (${held} tokens) at once.`
          : `Step ${done} stored one token: the one step ${done - 1} took.`);
  }

  function go(target, message) {
    done = Math.max(0, Math.min(data.steps, target));
    choices = choices.slice(0, Math.min(done, data.branchSteps));
    const states = path();
    renderText(states);
    renderNext();
    renderCache(states);
    back.disabled = done === 0;
    takes.forEach((b, rank) => { b.disabled = done >= data.steps || (rank > 0 && done >= data.branchSteps); });
    if (message) announcer.say(message);
  }

  function take(rank) {
    if (done >= data.steps || (rank > 0 && done >= data.branchSteps)) return;
    if (done < data.branchSteps) choices = [...choices.slice(0, done), rank];
    go(done + 1);
    const state = path()[done - 1];
    announcer.say(`Step ${done}: took “${shown(tokenText(state.chosen))}”, the ${ORDINAL[rank]} most likely ` +
      `(${percent(state.top[rank][1])}). The cache holds ${plural(state.kvTokens, "token")} in each of ${data.layers} layers.`);
  }

  go(0);
}
