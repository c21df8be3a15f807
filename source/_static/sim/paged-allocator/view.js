// The paged KV allocator widget (chapter 4): controls, the block pool, block tables and the
// free list. All bookkeeping is in logic.js (tested against the engine); this file only draws.
// Everything a reader types is a number and is shown with textContent, never as HTML.

import { createAllocator, apply } from "./logic.js";

const SEQ_COLOURS = 8; // CSS defines --nb-seq-0 .. --nb-seq-7

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function nameFor(i) {
  let name = "";
  for (let n = i + 1; n > 0; n = Math.floor((n - 1) / 26)) name = String.fromCharCode(65 + ((n - 1) % 26)) + name;
  return name;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

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

  // -- controls ------------------------------------------------------------------------------
  const addTokens = el("input", { type: "number", id: `${id}-add`, min: "1", max: String(capacity * 2), value: String(2 * blockSize + 1), inputmode: "numeric" });
  const addButton = el("button", { type: "button", text: "Add sequence" });
  const seqSelect = el("select", { id: `${id}-seq` });
  const growTokens = el("input", { type: "number", id: `${id}-grow`, min: "1", max: String(capacity * 2), value: "1", inputmode: "numeric" });
  const growButton = el("button", { type: "button", text: "Grow" });
  const finishButton = el("button", { type: "button", text: "Finish" });
  const exampleButton = el("button", { type: "button", class: "nb-pa-example" });
  const resetButton = el("button", { type: "button", text: "Empty the pool" });
  const status = el("p", { class: "nb-sim-status", role: "status", "aria-live": "polite" });

  const controls = el("div", { class: "nb-pa-controls" },
    el("fieldset", {},
      el("legend", { text: "New sequence" }),
      el("label", { for: addTokens.id, text: "Prompt tokens" }), addTokens, addButton),
    el("fieldset", {},
      el("legend", { text: "Running sequence" }),
      el("label", { for: seqSelect.id, text: "Sequence" }), seqSelect,
      el("label", { for: growTokens.id, text: "New tokens" }), growTokens, growButton, finishButton),
    el("fieldset", {},
      el("legend", { text: "Example" }), exampleButton, resetButton));

  // -- views ---------------------------------------------------------------------------------
  const pool = el("ol", { class: "nb-pa-pool", "aria-label": `Block pool: ${plural(numBlocks, "block")} of ${plural(blockSize, "token slot")}` });
  const tables = el("ul", { class: "nb-pa-tables" });
  const freeList = el("ol", { class: "nb-pa-free", "aria-label": "Free list, front first" });
  const summary = el("p", { class: "nb-pa-summary" });

  root.append(el("div", { class: "nb-pa" },
    controls, status,
    el("div", { class: "nb-pa-views" },
      el("section", { class: "nb-pa-pool-view", "aria-labelledby": `${id}-pool-h` },
        el("h4", { id: `${id}-pool-h`, text: "Block pool" }), pool, summary),
      el("section", { "aria-labelledby": `${id}-tables-h` },
        el("h4", { id: `${id}-tables-h`, text: "Block tables" }), tables),
      el("section", { "aria-labelledby": `${id}-free-h` },
        el("h4", { id: `${id}-free-h`, text: "Free list (front first)" }), freeList))));

  function reset() {
    allocator = createAllocator({ numBlocks, blockSize });
    made = 0;
    colour = new Map();
    changed = new Set();
  }

  function render() {
    const state = allocator.snapshot();
    const owner = new Map();
    for (const [name, table] of Object.entries(state.tables)) {
      table.forEach((block, i) => {
        const used = Math.min(blockSize, state.tokens[name] - i * blockSize);
        owner.set(block, { name, used });
      });
    }
    const freePosition = new Map(state.freeList.map((block, i) => [block, i]));
    pool.replaceChildren(...Array.from({ length: numBlocks }, (_, block) => {
      const own = owner.get(block);
      const cell = el("li", { class: "nb-pa-block", "data-block": String(block) });
      if (changed.has(block)) cell.classList.add("nb-pa-changed");
      const number = el("span", { class: "nb-pa-block-id", text: String(block) });
      if (own) {
        cell.dataset.seq = own.name;
        cell.style.setProperty("--nb-seq", `var(--nb-seq-${colour.get(own.name) % SEQ_COLOURS})`);
        const fill = el("span", { class: "nb-pa-fill" });
        fill.style.setProperty("--fill", String(own.used / blockSize));
        cell.append(number, el("span", { class: "nb-pa-owner", text: own.name }), fill);
        cell.setAttribute("aria-label", `Block ${block}: sequence ${own.name}, ${own.used} of ${blockSize} slots used`);
      } else {
        cell.classList.add("nb-pa-free-block");
        cell.append(number, el("span", { class: "nb-pa-owner", text: "free" }));
        cell.setAttribute("aria-label", `Block ${block}: free, position ${freePosition.get(block) + 1} in the free list`);
      }
      return cell;
    }));
    const names = Object.keys(state.tables);
    tables.replaceChildren(...(names.length ? names.map((name) => {
      const item = el("li", {});
      item.style.setProperty("--nb-seq", `var(--nb-seq-${colour.get(name) % SEQ_COLOURS})`);
      item.append(el("span", { class: "nb-pa-swatch", "aria-hidden": "true" }),
        el("strong", { text: name }),
        ` (${plural(state.tokens[name], "token")}): `,
        el("code", { text: state.tables[name].join(" ") }));
      return item;
    }) : [el("li", { class: "nb-pa-none", text: "No sequences yet." })]));
    freeList.replaceChildren(...(state.freeList.length
      ? state.freeList.map((block) => el("li", { text: String(block) }))
      : [el("li", { class: "nb-pa-none", text: "empty" })]));
    const used = numBlocks - state.freeList.length;
    const tokens = Object.values(state.tokens).reduce((a, b) => a + b, 0);
    const slots = used * blockSize;
    summary.textContent = `${used} of ${numBlocks} blocks in use, holding ${plural(tokens, "token")} in ${slots} slots` +
      (slots ? ` (${slots - tokens} empty slots, all in the last block of a sequence).` : ".");
    seqSelect.replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
    growButton.disabled = finishButton.disabled = seqSelect.disabled = names.length === 0;
    exampleButton.textContent = exampleStep === null ? "Step through the example"
      : exampleStep >= example.ops.length ? "Restart the example"
        : `Example step ${exampleStep + 1} of ${example.ops.length}`;
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
      const needed = step.op === "add" ? Math.ceil(step.tokens / blockSize)
        : Math.ceil((before.tokens[step.seq] + step.tokens) / blockSize) - before.tables[step.seq].length;
      const what = step.op === "add" ? `a ${step.tokens}-token prompt needs ${plural(needed, "block")}`
        : `growing ${step.seq} by ${plural(step.tokens, "token")} needs ${plural(needed, "more block")}`;
      const free = before.freeList.length;
      status.textContent = `Refused: ${what}, and ${plural(free, "block")} ${free === 1 ? "is" : "are"} free. ` +
        "The scheduler would have to preempt a sequence to make room (chapter 5).";
    } else if (step.op === "finish") {
      const blocks = before.tables[step.seq];
      blocks.forEach((b) => changed.add(b));
      status.textContent = `Finished ${step.seq}: blocks ${blocks.join(", ")} went back to the front of the free list.`;
    } else {
      const old = before.tables[step.seq] || [];
      const fresh = after.tables[step.seq].slice(old.length);
      fresh.forEach((b) => changed.add(b));
      const took = fresh.length ? `took ${fresh.length === 1 ? "block" : "blocks"} ${fresh.join(", ")}` : "needed no new block";
      status.textContent = step.op === "add"
        ? `Added ${step.seq}: ${plural(step.tokens, "token")}; it ${took}.`
        : `${step.seq} grew by ${plural(step.tokens, "token")} to ${after.tokens[step.seq]}; it ${took}.`;
    }
    render();
    return ok;
  }

  function readNumber(input) {
    const value = Number.parseInt(input.value, 10);
    if (!Number.isInteger(value) || value < 1 || value > capacity * 2) {
      status.textContent = `Enter a whole number of tokens from 1 to ${capacity * 2}.`;
      input.focus();
      return null;
    }
    return value;
  }

  addButton.addEventListener("click", () => {
    const tokens = readNumber(addTokens);
    if (tokens === null) return;
    exampleStep = null;
    let name = nameFor(made);
    while (allocator.has(name)) name = nameFor(++made);
    run({ op: "add", seq: name, tokens });
  });
  growButton.addEventListener("click", () => {
    const tokens = readNumber(growTokens);
    if (tokens === null || !seqSelect.value) return;
    exampleStep = null;
    run({ op: "grow", seq: seqSelect.value, tokens });
  });
  finishButton.addEventListener("click", () => {
    if (!seqSelect.value) return;
    exampleStep = null;
    run({ op: "finish", seq: seqSelect.value });
  });
  exampleButton.addEventListener("click", () => {
    if (exampleStep === null || exampleStep >= example.ops.length) {
      reset();
      exampleStep = 0;
    }
    const step = example.ops[exampleStep];
    exampleStep += 1;
    run(step);
  });
  resetButton.addEventListener("click", () => {
    reset();
    exampleStep = null;
    status.textContent = `The pool is empty: ${plural(numBlocks, "block")} on the free list.`;
    render();
  });

  reset();
  render();
}
