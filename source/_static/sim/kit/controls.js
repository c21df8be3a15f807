// Labelled controls. Every control has a visible label tied to it (label/for, or a button's
// own text), so it has an accessible name; every one is a native element (button, input,
// select), so the keyboard works as everywhere else: Tab to reach it, Enter or Space to press,
// arrows to change a choice.
//
// Number fields are text inputs with inputmode="numeric" rather than type="number": the
// browser then keeps what the reader typed, the widget checks it and says in words what is
// wrong, quoting the text back as text; Up and Down still step the value.

import { el, uid } from "./dom.js";

/** A button; `onPress` runs on click, Enter and Space (native button behaviour). */
export function button(label, onPress, props = {}) {
  return el("button", { type: "button", ...props, text: label, on: { click: onPress } });
}

/** A toggle button (aria-pressed), for Play/Pause and the like. */
export function toggleButton(label, onPress, props = {}) {
  return button(label, onPress, { ...props, "aria-pressed": "false" });
}

/**
 * A labelled whole-number field. read() returns the number, or null after announcing (through
 * `say`) what is wrong; Enter in the field calls onEnter; Up and Down step within [min, max].
 */
export function integerField({ label, min, max, value, onEnter = null, unit = "", id = uid("nb-field") }) {
  const input = el("input", {
    type: "text", id, inputmode: "numeric", autocomplete: "off", spellcheck: "false",
    value: String(value), size: String(Math.max(3, String(max).length + 1)),
  });
  const element = el("span", { class: "nb-kit-field" }, el("label", { for: id, text: label }), input);
  let bounds = { min, max };

  function parse() {
    const text = input.value.trim();
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    return Number.isSafeInteger(n) && n >= bounds.min && n <= bounds.max ? n : null;
  }

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && onEnter) {
      event.preventDefault();
      onEnter();
    } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      event.preventDefault();
      const current = parse() ?? bounds.min;
      const next = Math.min(bounds.max, Math.max(bounds.min, current + (event.key === "ArrowUp" ? 1 : -1)));
      input.value = String(next);
    }
  });

  return {
    element,
    input,
    /** The value, or null after `say(message)` explains what is allowed. */
    read(say) {
      const n = parse();
      if (n === null) {
        const what = unit ? `a whole number of ${unit}` : "a whole number";
        say(`Enter ${what} from ${bounds.min} to ${bounds.max}; "${input.value}" is not one.`);
        input.focus();
      }
      return n;
    },
    set(n) {
      input.value = String(n);
    },
    setBounds(lo, hi) {
      bounds = { min: lo, max: hi };
    },
  };
}

/** A labelled select; options are [{ value, text }]. */
export function choice({ label, options, value = null, onChange = null, id = uid("nb-choice") }) {
  const select = el("select", { id });
  const element = el("span", { class: "nb-kit-field" }, el("label", { for: id, text: label }), select);
  function setOptions(list, selected = null) {
    select.replaceChildren(...list.map((o) => el("option", { value: String(o.value), text: o.text })));
    if (selected !== null) select.value = String(selected);
    select.disabled = list.length === 0;
  }
  setOptions(options, value);
  if (onChange) select.addEventListener("change", () => onChange(select.value));
  return { element, select, setOptions, value: () => select.value };
}

/** A labelled checkbox. */
export function checkbox({ label, checked = false, onChange = null, id = uid("nb-check") }) {
  const input = el("input", { type: "checkbox", id });
  input.checked = checked;
  if (onChange) input.addEventListener("change", () => onChange(input.checked));
  const element = el("span", { class: "nb-kit-field nb-kit-checkbox" }, input, el("label", { for: id, text: label }));
  return { element, input, checked: () => input.checked, set: (v) => { input.checked = v; } };
}

/** Controls that belong together, under a legend. */
export function group(legend, ...children) {
  return el("fieldset", { class: "nb-kit-group" }, el("legend", { text: legend }), ...children);
}
