// The tokenizer playground (chapter 1): the reader types text and sees its tokens as chips,
// each with its id, and the counts of characters, words and tokens. The tokenizing is
// ../tokenizer/bpe.js running the bundled model's own tokenizer.json (tested against the
// engine's tokenizer); this file only draws, with the widget kit (../kit/).

import { el, fill, plural } from "../kit/dom.js";
import { button, group } from "../kit/controls.js";
import { frame, view } from "../kit/widget.js";
import { loadTokenizer } from "../tokenizer/bpe.js";

const MAX_CHIPS = 2000; // more would only slow the page; the counts still cover every token
const QUOTED = 60; // characters of the text quoted back in an announcement
const STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const ENCODER = new TextEncoder();

let instances = 0;

/** A token's text with its white space visible, or null when its bytes are not whole characters. */
function visible(bytes) {
  let text;
  try {
    text = STRICT.decode(bytes);
  } catch {
    return null;
  }
  return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

function hex(bytes) {
  return [...bytes].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(" ");
}

/** For each token: what a chip shows and what a screen reader says. A token that holds only
 * some bytes of a character (an emoji takes four) names the character it is part of. */
export function describeTokens(text, ids, bpe) {
  const chars = [...text];
  const owner = []; // byte offset -> index of the character it belongs to
  chars.forEach((c, i) => { for (let k = ENCODER.encode(c).length; k > 0; k--) owner.push(i); });
  let at = 0;
  return ids.map((id) => {
    const bytes = bpe.tokenBytes(id);
    const start = at;
    at += bytes.length;
    const text = bpe.isSpecial(id) ? bpe.idToToken(id) : visible(bytes);
    if (text !== null) return { id, text, partial: false, label: `“${text}”, id ${id}` };
    const whole = chars.slice(owner[start], owner[at - 1] + 1).join("");
    return { id, text: hex(bytes), partial: true, label: `bytes ${hex(bytes)} of “${whole}”, id ${id}` };
  });
}

function words(text) {
  return text.split(/\s+/u).filter(Boolean).length;
}

function quote(text) {
  const chars = [...text];
  return chars.length > QUOTED ? `${chars.slice(0, QUOTED).join("")}…` : text;
}

export function mount(root, params) {
  const id = `nb-tok-${++instances}`;
  let bpe = null;

  const { controls, announcer, views } = frame(root, "nb-tok");

  // -- controls ------------------------------------------------------------------------------
  const fieldId = `${id}-text`;
  const hintId = `${id}-hint`;
  const input = el("textarea", {
    id: fieldId, rows: "3", spellcheck: "false", autocomplete: "off", "aria-describedby": hintId,
  });
  input.value = params.text;
  const examples = params.examples.map((example) => button(example.label, () => {
    input.value = example.text;
    const n = render();
    if (n !== null) announcer.say(`${example.label}: ${plural([...example.text].length, "character")}, ${plural(n, "token")}.`);
  }));
  controls.append(
    el("div", { class: "nb-tok-field" },
      el("label", { for: fieldId, text: "Text to tokenize" }), input,
      el("p", { id: hintId, class: "nb-tok-hint", text: "The tokens follow as you type. Enter reads out the count; Shift+Enter starts a new line." })),
    group("Examples", ...examples));

  // -- views ---------------------------------------------------------------------------------
  const counts = el("p", { class: "nb-tok-counts" });
  const chips = el("ol", { class: "nb-tok-chips", "aria-label": "Tokens, in order" });
  const more = el("p", { class: "nb-tok-more" });
  views.append(view(`${id}-tokens`, "Tokens", counts, chips, more));

  /** Tokenize and draw the field's text; returns the number of tokens (null before loading). */
  function render() {
    if (!bpe) return null;
    const text = input.value;
    const { ids } = bpe.encode(text);
    const tokens = describeTokens(text, ids, bpe);
    const characters = [...text].length;
    const ratio = ids.length ? ` · ${(characters / ids.length).toFixed(1)} characters per token` : "";
    counts.textContent = `${plural(characters, "character")} · ${plural(words(text), "word")} · ` +
      `${plural(ids.length, "token")}${ratio}`;
    fill(chips, tokens.slice(0, MAX_CHIPS).map((t, i) => el("li", {
      class: `nb-tok-chip${t.partial ? " nb-tok-partial" : ""}`, dataset: { parity: String(i % 2) },
      "aria-label": `Token ${i + 1}: ${t.label}`,
    }, el("span", { class: "nb-tok-text", text: t.text }), el("span", { class: "nb-tok-id", text: String(t.id) }))));
    more.textContent = tokens.length > MAX_CHIPS ? `… and ${plural(tokens.length - MAX_CHIPS, "more token")}.` : "";
    return ids.length;
  }

  function announce() {
    const n = render();
    if (n === null) {
      announcer.say("The tokenizer is still loading.");
      return;
    }
    const text = input.value;
    announcer.say(`“${quote(text)}” is ${plural(n, "token")} (${plural([...text].length, "character")}, ${plural(words(text), "word")}).`);
  }

  input.addEventListener("input", render);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      announce();
    }
  });

  counts.textContent = "Loading the tokenizer…";
  loadTokenizer(new URL(`../../${params.tokenizer}`, import.meta.url).href).then((loaded) => {
    bpe = loaded;
    render();
  }).catch((error) => {
    counts.textContent = `The tokenizer could not load: ${error.message}`;
    console.error(error);
  });
}
