// The prefix-cache explorer (chapter 7): the reader types prompts, submits and finishes them,
// and sees how the cache looked up each block (its key, hit or miss), the requests' block
// tables, every block's key and reference count, and the free list in its real order. The
// bookkeeping is logic.js (the engine's BlockManager with the engine's keys, tested against
// it); the prompts are tokenized by ../tokenizer/bpe.js with the bundled model's tokenizer.
// This file only draws, with the widget kit (../kit/).

import { el, fill, letters, plural } from "../kit/dom.js";
import { button, choice, group } from "../kit/controls.js";
import { seqColour } from "../kit/theme.js";
import { frame, view } from "../kit/widget.js";
import { loadTokenizer } from "../tokenizer/bpe.js";
import { apply, createExplorer } from "./logic.js";

const QUOTED = 60; // characters of a prompt quoted back in an announcement

let instances = 0;

function quote(text) {
  const chars = [...text];
  return chars.length > QUOTED ? `${chars.slice(0, QUOTED).join("")}…` : text;
}

/** The low digits of a key that its width can hold: all 16 for 64 bits would crowd the pool. */
function shortKey(key, bits) {
  if (key === null) return "—";
  const digits = Math.min(6, Math.ceil(bits / 4));
  return `${bits > 24 ? "…" : ""}${key.slice(-digits)}`;
}

function visible(text) {
  return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

function list(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

export function mount(root, params) {
  const id = `nb-pc-${++instances}`;
  const { numBlocks, blockSize, example } = params;
  let keyBits = params.keyBits;
  let bpe = null;
  let explorer;
  let used; // names given so far (never reused)
  let admitted; // requests admitted so far: the next one's colour
  let colour; // name -> colour index
  let texts; // name -> prompt text
  let last = null; // {name, tokens, result, before}: the last submission, for the lookup view
  let exampleStep = null; // index of the next example step, or null when not following it

  const { box, controls, announcer, views } = frame(root, "nb-pc");
  box.classList.add("nb-pc");

  // -- controls ------------------------------------------------------------------------------
  const fieldId = `${id}-prompt`;
  const hintId = `${id}-hint`;
  const prompt = el("textarea", {
    id: fieldId, rows: "2", spellcheck: "false", autocomplete: "off", "aria-describedby": hintId,
  });
  prompt.value = example.texts[example.ops[0].seq];
  const submitButton = button("Submit", submitPrompt);
  const requestChoice = choice({ label: "Request", options: [] });
  const finishButton = button("Finish", finishRequest);
  const exampleButton = button("", stepExample, { class: "nb-pc-example" });
  const resetButton = button("Empty the pool", emptyPool);
  const widthChoice = choice({
    label: "Block-key width",
    options: params.keyWidths.map((bits) => ({ value: bits, text: bits === 64 ? "64 bits (the engine's)" : `${bits} bits` })),
    value: keyBits,
    onChange: (value) => {
      keyBits = Number(value);
      reset();
      exampleStep = null;
      announcer.say(`Block keys now keep ${keyBits} bits${keyBits < 64 ? ", so different blocks often share a block key" : ""}; the pool is empty again.`);
      render();
    },
  });
  controls.append(
    el("div", { class: "nb-pc-field" },
      el("label", { for: fieldId, text: "Prompt" }), prompt,
      el("p", { id: hintId, class: "nb-pc-hint", text: "Enter submits the prompt; Shift+Enter starts a new line." }),
      submitButton),
    group("Running request", requestChoice.element, finishButton),
    group("Example", exampleButton, resetButton),
    group("Cache", widthChoice.element));

  // -- views ---------------------------------------------------------------------------------
  const lookup = el("div", { class: "nb-pc-lookup" });
  const requests = el("ul", { class: "nb-pc-requests" });
  const pool = el("ol", { class: "nb-pc-pool", "aria-label": `Block pool: ${plural(numBlocks, "block")} of ${plural(blockSize, "token")}` });
  const freeList = el("ol", { class: "nb-pc-free nb-kit-chips", "aria-label": "Free list, front first" });
  const legend = el("p", { class: "nb-pc-legend", text: "A block the cache can still find is marked ◆; it keeps its block key until the free list hands it out again." });
  views.append(
    view(`${id}-lookup`, "Last prompt, block by block", lookup),
    view(`${id}-requests`, "Running requests", requests),
    view(`${id}-pool`, "Block pool", pool),
    view(`${id}-free`, "Free list (front first: reused first)", freeList, legend));

  function reset() {
    explorer = createExplorer({ numBlocks, blockSize, keyBits });
    used = new Set();
    admitted = 0;
    colour = new Map();
    texts = new Map();
    last = null;
  }

  function tokenText(tokenId) {
    return bpe ? visible(bpe.decode([tokenId])) : `#${tokenId}`;
  }

  // The submitted prompt cut into its blocks: each block's tokens, key and what the lookup
  // found; after the first miss the blocks are computed (and, when full, published).
  function renderLookup(state) {
    if (!last) {
      fill(lookup, el("p", { class: "nb-kit-none", text: "Submit a prompt to see how the cache looks it up." }));
      return;
    }
    const { name, tokens, result } = last;
    const table = state.tables[name] ?? null;
    const items = [];
    for (let i = 0; i * blockSize < tokens.length; i += 1) {
      const blockTokens = tokens.slice(i * blockSize, (i + 1) * blockSize);
      const look = result.lookups[i];
      const block = table ? table[i] : null;
      let verdict;
      let kind;
      if (look && look.verdict === "hit") {
        [verdict, kind] = [`hit: block ${look.block}`, "hit"];
      } else if (look && look.verdict === "other content") {
        [verdict, kind] = [`block key found, but block ${look.block} holds other content: miss`, "clash"];
      } else if (look) {
        [verdict, kind] = ["no block has this block key: miss", "miss"];
      } else if (blockTokens.length < blockSize) {
        [verdict, kind] = ["not full: never cached", "partial"];
      } else if ((i + 1) * blockSize >= tokens.length) {
        [verdict, kind] = ["holds the last token: always computed", "last"];
      } else {
        [verdict, kind] = ["after a miss: not looked up", "after"];
      }
      if (table && kind !== "hit") verdict += `; computed into block ${block}`;
      if (!result.ok && kind !== "hit") verdict += "; refused";
      const key = look ? look.key : table ? state.keys[block] : null;
      items.push(el("li", { class: `nb-pc-lblock nb-pc-${kind}` },
        el("span", { class: "nb-pc-lhead" },
          el("strong", { text: `Block ${i + 1}` }),
          el("span", { class: "nb-pc-key", title: key ?? "no block key", text: `block key ${shortKey(key, keyBits)}` })),
        el("ol", { class: "nb-pc-tokens", "aria-label": `Tokens of block ${i + 1}` },
          blockTokens.map((t) => el("li", { text: tokenText(t) }))),
        el("span", { class: "nb-pc-verdict", text: verdict })));
    }
    fill(lookup,
      el("p", { class: "nb-pc-lsummary", text: `${name}: ${plural(tokens.length, "token")}, ${plural(Math.ceil(tokens.length / blockSize), "block")}` +
        (result.ok ? `; ${plural(result.hits.length * blockSize, "token")} from the cache.` : "; refused, nothing changed.") }),
      el("ol", { class: "nb-pc-lblocks" }, items));
  }

  function renderRequests(state) {
    const names = Object.keys(state.tables);
    fill(requests, names.length ? names.map((name) => el("li", { style: { "--nb-seq": seqColour(colour.get(name)) } },
      el("span", { class: "nb-pc-swatch", "aria-hidden": "true" }), el("strong", { text: name }),
      ` (${plural(explorer.tokens(name).length, "token")}, ${state.cachedTokens[name]} from the cache): `,
      el("span", { class: "nb-pc-prompt", text: `“${quote(texts.get(name) ?? "")}”` }),
      el("ol", { class: "nb-kit-chips nb-pc-table", "aria-label": `Block table of ${name}` },
        state.tables[name].map((b) => el("li", { text: String(b), title: `block ${b}, block key ${state.keys[b] ?? "none"}` })))))
      : el("li", { class: "nb-kit-none", text: "No running requests." }));
  }

  function renderPool(state) {
    const holders = new Map();
    for (const [name, table] of Object.entries(state.tables)) {
      for (const b of table) if (!holders.has(b)) holders.set(b, name);
    }
    fill(pool, state.refCounts.map((refs, b) => {
      const key = state.keys[b];
      const cached = state.cached[b];
      const where = refs > 0 ? `held by ${plural(refs, "request")}` : `free, position ${state.freeList.indexOf(b) + 1} in the free list`;
      const label = `Block ${b}: ${where}; ${key === null ? "no block key" : `block key ${key}${cached ? ", the cache finds it" : ", the cache no longer finds it"}`}`;
      return el("li", {
        class: `nb-pc-block${refs === 0 ? " nb-pc-free-block" : ""}${cached ? " nb-pc-cached" : ""}`,
        style: refs > 0 ? { "--nb-seq": seqColour(colour.get(holders.get(b))) } : {},
        "aria-label": label, title: label,
      },
      el("span", { class: "nb-pc-block-id", text: `${b}${cached ? " ◆" : ""}` }),
      el("span", { class: "nb-pc-block-key", text: shortKey(key, keyBits) }),
      el("span", { class: "nb-pc-block-refs", text: refs > 0 ? `refs ${refs}` : "free" }));
    }));
  }

  function render() {
    const state = explorer.snapshot();
    renderLookup(state);
    renderRequests(state);
    renderPool(state);
    fill(freeList, state.freeList.length ? state.freeList.map((b) => el("li", {
      class: state.cached[b] ? "nb-pc-free-cached" : "",
      "aria-label": `block ${b}${state.cached[b] ? ", cached" : ""}`,
    }, `${b}${state.cached[b] ? " ◆" : ""}`))
      : el("li", { class: "nb-kit-none", text: "empty" }));
    const names = Object.keys(state.tables);
    const selected = requestChoice.value();
    requestChoice.setOptions(names.map((name) => ({ value: name, text: name })), names.includes(selected) ? selected : null);
    finishButton.disabled = names.length === 0;
    exampleButton.textContent = exampleStep === null ? "Step through the example"
      : exampleStep >= example.ops.length ? "Restart the example"
        : `Example step ${exampleStep + 1} of ${example.ops.length}`;
  }

  function submitted(name, text, tokens, result, before) {
    if (!result.ok) {
      const hits = result.hits.length;
      const revived = result.hits.filter((b) => before.refCounts[b] === 0).length;
      const needed = Math.ceil(tokens.length / blockSize) - hits + revived;
      const why = needed > numBlocks ? `it needs ${plural(needed, "block")}, more than the pool has; shorten it`
        : `it needs ${plural(needed, "free block")} and ${plural(before.freeList.length, "block")} ${before.freeList.length === 1 ? "is" : "are"} free; finish a request`;
      return `Refused “${quote(text)}”: ${why}.`;
    }
    const hits = result.hits;
    const computed = tokens.length - hits.length * blockSize;
    let said = `Submitted ${name}: “${quote(text)}” is ${plural(tokens.length, "token")}; ` +
      (hits.length ? `${plural(hits.length, "block")} from the cache (${list(hits.map(String))}), ` : "no block from the cache, ") +
      `${plural(computed, "token")} computed.`;
    const clash = result.lookups.find((l) => l.verdict === "other content");
    if (clash) said += ` A block key matched block ${clash.block}, which holds other content: a miss, not a wrong hit.`;
    return said;
  }

  function run(step, text) {
    const before = explorer.snapshot();
    if (step.op === "submit") {
      used.add(step.seq);
      const result = apply(explorer, step);
      if (result.ok) {
        colour.set(step.seq, admitted);
        admitted += 1;
        texts.set(step.seq, text);
      }
      last = { name: step.seq, tokens: step.tokens, result };
      render();
      announcer.say(submitted(step.seq, text, step.tokens, result, before));
      return;
    }
    const table = before.tables[step.seq];
    apply(explorer, step);
    const after = explorer.snapshot();
    const kept = table.filter((b) => after.refCounts[b] === 0 && after.cached[b]);
    const plain = table.filter((b) => after.refCounts[b] === 0 && !after.cached[b]);
    const shared = table.filter((b) => after.refCounts[b] > 0);
    const parts = [];
    if (kept.length) parts.push(`${list(kept.map(String))} keep${kept.length === 1 ? "s its block key" : " their block keys"} at the back of the free list`);
    if (plain.length) parts.push(`${list(plain.map(String))}, not cached, go${plain.length === 1 ? "es" : ""} to the front`);
    if (shared.length) parts.push(`${list(shared.map(String))} still held by another request`);
    render();
    announcer.say(`Finished ${step.seq}: ${parts.join("; ")}.`);
  }

  function submitPrompt() {
    const text = prompt.value;
    if (!bpe) {
      announcer.say(`The tokenizer is still loading; “${quote(text)}” was not submitted.`);
      return;
    }
    const tokens = bpe.encode(text).ids;
    if (tokens.length === 0) {
      announcer.say("Type a prompt first: an empty prompt has no tokens.");
      return;
    }
    exampleStep = null;
    let n = 0;
    while (used.has(letters(n))) n += 1;
    run({ op: "submit", seq: letters(n), tokens }, text);
  }

  function finishRequest() {
    if (!requestChoice.value()) return;
    exampleStep = null;
    run({ op: "finish", seq: requestChoice.value() }, "");
  }

  function stepExample() {
    if (exampleStep === null || exampleStep >= example.ops.length) {
      reset();
      exampleStep = 0;
    }
    const step = example.ops[exampleStep];
    exampleStep += 1;
    if (step.op === "submit") prompt.value = example.texts[step.seq];
    run(step, example.texts[step.seq] ?? "");
  }

  function emptyPool() {
    reset();
    exampleStep = null;
    announcer.say(`The pool is empty: ${plural(numBlocks, "block")} on the free list, no block key cached.`);
    render();
  }

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submitPrompt();
    }
  });

  reset();
  render();
  loadTokenizer(new URL(`../../${params.tokenizer}`, import.meta.url).href).then((loaded) => {
    bpe = loaded;
    box.dataset.tokenizer = "ready";
    render();
  }).catch((error) => {
    announcer.say(`The tokenizer could not load: ${error.message}`);
    console.error(error);
  });
}
