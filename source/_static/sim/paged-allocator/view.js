// The paged KV allocator widget (chapter 4): controls, the block pool, block tables and the
// free list. All bookkeeping is in logic.js (tested against the engine); this file only draws,
// with the widget kit (../kit/): labelled controls, the live region, the frame.

import { el, fill, letters, plural } from "../kit/dom.js";
import { button, choice, group, integerField } from "../kit/controls.js";
import { seqColour } from "../kit/theme.js";
import { frame, view } from "../kit/widget.js";
import { createAllocator, apply } from "./logic.js";

let instances = 0;

export function mount(root, params) {
  const id = `nb-pa-${++instances}`;
  const { numBlocks, blockSize } = params;
  const example = params.example;
  const capacity = numBlocks * blockSize;
  let allocator;
  let made; // sequences created so far (names are never reused)
  let colour; // name -> colour index
  let exampleStep = null; // index of the next example step, or null when not following it
  let changed = new Set();

  const { box, controls, announcer, views } = frame(root, "nb-pa");
  box.classList.add("nb-pa");

  // -- controls ------------------------------------------------------------------------------
  const addTokens = integerField({ label: "Prompt tokens", min: 1, max: capacity * 2, value: 2 * blockSize + 1, unit: "tokens", onEnter: addSequence });
  const seqChoice = choice({ label: "Sequence", options: [] });
  const growTokens = integerField({ label: "New tokens", min: 1, max: capacity * 2, value: 1, unit: "tokens", onEnter: growSequence });
  const addButton = button("Add sequence", addSequence);
  const growButton = button("Grow", growSequence);
  const finishButton = button("Finish", finishSequence);
  const exampleButton = button("", stepExample, { class: "nb-pa-example" });
  const resetButton = button("Empty the pool", emptyPool);
  controls.append(
    group("New sequence", addTokens.element, addButton),
    group("Running sequence", seqChoice.element, growTokens.element, growButton, finishButton),
    group("Example", exampleButton, resetButton));

  // -- views ---------------------------------------------------------------------------------
  const pool = el("ol", { class: "nb-pa-pool", "aria-label": `Block pool: ${plural(numBlocks, "block")} of ${plural(blockSize, "token slot")}` });
  const tables = el("ul", { class: "nb-pa-tables" });
  const freeList = el("ol", { class: "nb-pa-free nb-kit-chips", "aria-label": "Free list, front first" });
  const summary = el("p", { class: "nb-pa-summary" });
  views.append(
    view(`${id}-pool`, "Block pool", pool, summary),
    view(`${id}-tables`, "Block tables", tables),
    view(`${id}-free`, "Free list (front first)", freeList));

  function reset() {
    allocator = createAllocator({ numBlocks, blockSize });
    made = 0;
    colour = new Map();
    changed = new Set();
  }

  function renderPool(state) {
    const owner = new Map();
    for (const [name, table] of Object.entries(state.tables)) {
      table.forEach((block, i) => owner.set(block, { name, used: Math.min(blockSize, state.tokens[name] - i * blockSize) }));
    }
    const freePosition = new Map(state.freeList.map((block, i) => [block, i]));
    fill(pool, Array.from({ length: numBlocks }, (_, block) => {
      const own = owner.get(block);
      const number = el("span", { class: "nb-pa-block-id", text: String(block) });
      if (!own) {
        return el("li", {
          class: `nb-pa-block nb-pa-free-block${changed.has(block) ? " nb-pa-changed" : ""}`, "data-block": block,
          "aria-label": `Block ${block}: free, position ${freePosition.get(block) + 1} in the free list`,
        }, number, el("span", { class: "nb-pa-owner", text: "free" }));
      }
      return el("li", {
        class: `nb-pa-block${changed.has(block) ? " nb-pa-changed" : ""}`, "data-block": block,
        dataset: { seq: own.name }, style: { "--nb-seq": seqColour(colour.get(own.name)) },
        "aria-label": `Block ${block}: sequence ${own.name}, ${own.used} of ${blockSize} slots used`,
      }, number, el("span", { class: "nb-pa-owner", text: own.name }),
      el("span", { class: "nb-pa-fill", style: { "--fill": String(own.used / blockSize) } }));
    }));
  }

  function render() {
    const state = allocator.snapshot();
    renderPool(state);
    const names = Object.keys(state.tables);
    fill(tables, names.length ? names.map((name) => el("li", { style: { "--nb-seq": seqColour(colour.get(name)) } },
      el("span", { class: "nb-pa-swatch", "aria-hidden": "true" }), el("strong", { text: name }),
      ` (${plural(state.tokens[name], "token")}): `, el("code", { text: state.tables[name].join(" ") })))
      : el("li", { class: "nb-pa-none", text: "No sequences yet." }));
    fill(freeList, state.freeList.length ? state.freeList.map((block) => el("li", { text: String(block) }))
      : el("li", { class: "nb-kit-none", text: "empty" }));
    const used = numBlocks - state.freeList.length;
    const tokens = Object.values(state.tokens).reduce((a, b) => a + b, 0);
    const slots = used * blockSize;
    summary.textContent = `${used} of ${numBlocks} blocks in use, holding ${plural(tokens, "token")} in ${slots} slots` +
      (slots ? ` (${slots - tokens} empty slots, all in the last block of a sequence).` : ".");
    const selected = seqChoice.value();
    seqChoice.setOptions(names.map((name) => ({ value: name, text: name })), names.includes(selected) ? selected : null);
    growButton.disabled = finishButton.disabled = names.length === 0;
    exampleButton.textContent = exampleStep === null ? "Step through the example"
      : exampleStep >= example.ops.length ? "Restart the example"
        : `Example step ${exampleStep + 1} of ${example.ops.length}`;
  }

  function refusal(step, before) {
    const needed = step.op === "add" ? Math.ceil(step.tokens / blockSize)
      : Math.ceil((before.tokens[step.seq] + step.tokens) / blockSize) - before.tables[step.seq].length;
    const what = step.op === "add" ? `a ${step.tokens}-token prompt needs ${plural(needed, "block")}`
      : `growing ${step.seq} by ${plural(step.tokens, "token")} needs ${plural(needed, "more block")}`;
    const free = before.freeList.length;
    return `Refused: ${what}, and ${plural(free, "block")} ${free === 1 ? "is" : "are"} free. ` +
      "The scheduler would have to preempt a sequence to make room (chapter 5).";
  }

  function run(step) {
    const before = allocator.snapshot();
    if (step.op === "add" && !colour.has(step.seq)) colour.set(step.seq, made);
    const ok = apply(allocator, step);
    const after = allocator.snapshot();
    if (ok && step.op === "add") made += 1;
    changed = new Set();
    if (!ok) {
      if (step.op === "add") colour.delete(step.seq);
      announcer.say(refusal(step, before));
    } else if (step.op === "finish") {
      const blocks = before.tables[step.seq];
      blocks.forEach((b) => changed.add(b));
      announcer.say(`Finished ${step.seq}: blocks ${blocks.join(", ")} went back to the front of the free list.`);
    } else {
      const fresh = after.tables[step.seq].slice((before.tables[step.seq] || []).length);
      fresh.forEach((b) => changed.add(b));
      const took = fresh.length ? `took ${fresh.length === 1 ? "block" : "blocks"} ${fresh.join(", ")}` : "needed no new block";
      announcer.say(step.op === "add"
        ? `Added ${step.seq}: ${plural(step.tokens, "token")}; it ${took}.`
        : `${step.seq} grew by ${plural(step.tokens, "token")} to ${after.tokens[step.seq]}; it ${took}.`);
    }
    render();
    return ok;
  }

  function addSequence() {
    const tokens = addTokens.read(announcer.say);
    if (tokens === null) return;
    exampleStep = null;
    let name = letters(made);
    while (allocator.has(name)) name = letters(++made);
    run({ op: "add", seq: name, tokens });
  }

  function growSequence() {
    const tokens = growTokens.read(announcer.say);
    if (tokens === null || !seqChoice.value()) return;
    exampleStep = null;
    run({ op: "grow", seq: seqChoice.value(), tokens });
  }

  function finishSequence() {
    if (!seqChoice.value()) return;
    exampleStep = null;
    run({ op: "finish", seq: seqChoice.value() });
  }

  function stepExample() {
    if (exampleStep === null || exampleStep >= example.ops.length) {
      reset();
      exampleStep = 0;
    }
    const step = example.ops[exampleStep];
    exampleStep += 1;
    run(step);
  }

  function emptyPool() {
    reset();
    exampleStep = null;
    announcer.say(`The pool is empty: ${plural(numBlocks, "block")} on the free list.`);
    render();
  }

  reset();
  render();
}
