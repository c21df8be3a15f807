// The paged KV allocator widget (chapter 4): the block pool, block tables and free list, and
// beside them a contiguous arena of as many slots that serves the same requests. All
// bookkeeping is in logic.js (the paged pool, tested against the engine) and contiguous.js
// (tested against a reference); this file only draws, with the widget kit (../kit/).
//
// A request names its prompt and the most tokens it may generate. The paged pool takes a
// block whenever the last one is full; the contiguous arena reserves the prompt plus that
// maximum at once, in one run of neighbouring slots. Neither side lets a sequence hold more
// than its prompt plus its maximum.

import { el, fill, letters, plural } from "../kit/dom.js";
import { button, choice, group, integerField } from "../kit/controls.js";
import { drawing, group as svgGroup, rect, scale, text as svgText } from "../kit/svg.js";
import { seqColour } from "../kit/theme.js";
import { frame, view } from "../kit/widget.js";
import { createAllocator, apply } from "./logic.js";
import { createArena, apply as applyContiguous } from "./contiguous.js";

let instances = 0;

const percent = (part, whole) => (whole ? `${Math.round((100 * part) / whole)}%` : "0%");
const span = (start, size) => (size === 1 ? `${start}` : `${start}–${start + size - 1}`);

export function mount(root, params) {
  const id = `nb-pa-${++instances}`;
  const { numBlocks, blockSize } = params;
  const example = params.example;
  const capacity = numBlocks * blockSize;
  let allocator; // the paged pool (logic.js)
  let arena; // the contiguous arena (contiguous.js)
  let made; // sequences created so far (names are never reused)
  let colour; // name -> colour index
  let room; // name -> prompt + most tokens it may generate
  let order; // names, in the order they were added
  let exampleStep = null; // index of the next example step, or null when not following it
  let changed = new Set();

  const { box, controls, announcer, views } = frame(root, "nb-pa");
  box.classList.add("nb-pa");

  // -- controls ------------------------------------------------------------------------------
  const addTokens = integerField({ label: "Prompt tokens", min: 1, max: capacity * 2, value: 2 * blockSize + 1, unit: "tokens", onEnter: addSequence });
  const maxNew = integerField({ label: "Max new tokens", min: 1, max: capacity * 2, value: 2 * blockSize, unit: "tokens", onEnter: addSequence });
  const seqChoice = choice({ label: "Sequence", options: [] });
  const growTokens = integerField({ label: "Grow by", min: 1, max: capacity * 2, value: 1, unit: "tokens", onEnter: growSequence });
  const addButton = button("Add sequence", addSequence);
  const growButton = button("Grow", growSequence);
  const finishButton = button("Finish", finishSequence);
  const exampleButton = button("", stepExample, { class: "nb-pa-example" });
  const resetButton = button("Empty both", emptyBoth);
  controls.append(
    group("New sequence", addTokens.element, maxNew.element, addButton),
    group("Running sequence", seqChoice.element, growTokens.element, growButton, finishButton),
    group("Example", exampleButton, resetButton));

  // -- views ---------------------------------------------------------------------------------
  const pool = el("ol", { class: "nb-pa-pool", "aria-label": `Block pool: ${plural(numBlocks, "block")} of ${plural(blockSize, "token slot")}` });
  const tables = el("ul", { class: "nb-pa-tables" });
  const freeList = el("ol", { class: "nb-pa-free nb-kit-chips", "aria-label": "Free list, front first" });
  const summary = el("p", { class: "nb-pa-summary" });
  const bar = el("div", { class: "nb-pa-arena" });
  const regions = el("ul", { class: "nb-pa-regions" });
  const arenaSummary = el("p", { class: "nb-pa-summary" });
  views.append(
    view(`${id}-pool`, "Paged: the block pool", pool, summary),
    view(`${id}-tables`, "Paged: block tables", tables),
    view(`${id}-free`, "Paged: free list (front first)", freeList),
    view(`${id}-arena`, `Contiguous: an arena of ${capacity} slots, first fit`, bar, regions, arenaSummary));

  function reset() {
    allocator = createAllocator({ numBlocks, blockSize });
    arena = createArena({ numSlots: capacity });
    made = 0;
    colour = new Map();
    room = new Map();
    order = [];
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

  function renderArena(state) {
    const width = 600;
    const x = scale([0, capacity], [0, width]);
    const names = Object.keys(state.regions);
    const label = names.length
      ? `Contiguous arena: ${names.map((n) => `${n} in slots ${span(state.regions[n][0], state.regions[n][1])}`).join(", ")}; ${plural(arena.free(), "slot")} free`
      : `Contiguous arena: all ${capacity} slots free`;
    const svg = drawing({ width, height: 58, label, className: "nb-kit-drawing nb-pa-arena-drawing" });
    for (const [start, size] of state.holes) {
      svg.append(rect(x(start) + 1, 4, Math.max(0, x(start + size) - x(start) - 2), 34, { class: "nb-pa-hole" }));
    }
    for (const name of names) {
      const [start, size, used] = state.regions[name];
      const style = { "--nb-seq": seqColour(colour.get(name)) };
      const w = x(start + size) - x(start);
      svg.append(svgGroup({ class: "nb-pa-region", style, "data-seq": name },
        rect(x(start) + 1, 4, Math.max(0, w - 2), 34, { class: "nb-pa-reserved" }),
        rect(x(start) + 1, 4, Math.max(0, x(start + used) - x(start) - 2), 34, { class: "nb-pa-used" }),
        w >= 16 ? svgText(x(start) + w / 2, 25, name, { "text-anchor": "middle", class: "nb-pa-region-name" }) : null));
    }
    svg.append(svgText(0, 53, "slot 0", { class: "nb-kit-muted" }),
      svgText(width, 53, `slot ${capacity - 1}`, { class: "nb-kit-muted", "text-anchor": "end" }));
    fill(bar, svg);
    fill(regions, names.length
      ? names.map((name) => {
        const [start, size, used] = state.regions[name];
        return el("li", { style: { "--nb-seq": seqColour(colour.get(name)) } },
          el("span", { class: "nb-pa-swatch", "aria-hidden": "true" }), el("strong", { text: name }),
          `: slots ${span(start, size)}, ${used} of ${size} hold tokens`);
      })
      : el("li", { class: "nb-pa-none", text: "No sequences yet." }),
    el("li", { class: "nb-pa-holes", text: state.holes.length
      ? `Free holes: ${state.holes.map(([start, size]) => `${span(start, size)} (${plural(size, "slot")})`).join(", ")}`
      : "Free holes: none" }));
  }

  function render() {
    const state = allocator.snapshot();
    const cont = arena.snapshot();
    renderPool(state);
    renderArena(cont);
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
    summary.textContent = `${used} of ${numBlocks} blocks in use: ${slots} slots reserved, ${tokens} of them hold tokens (${percent(tokens, slots)}).`;
    const reserved = capacity - arena.free();
    const held = Object.values(cont.regions).reduce((a, r) => a + r[2], 0);
    arenaSummary.textContent = `${reserved} of ${capacity} slots reserved, ${held} of them hold tokens (${percent(held, reserved)}); ` +
      `${plural(arena.free(), "slot")} free, the largest hole ${plural(arena.largestHole(), "slot")}.`;
    const live = order.filter((name) => allocator.has(name) || arena.has(name));
    const selected = seqChoice.value();
    seqChoice.setOptions(live.map((name) => ({ value: name, text: name })), live.includes(selected) ? selected : null);
    growButton.disabled = finishButton.disabled = live.length === 0;
    exampleButton.textContent = exampleStep === null ? "Step through the example"
      : exampleStep >= example.ops.length ? "Restart the example"
        : `Example step ${exampleStep + 1} of ${example.ops.length}`;
  }

  // -- what each action did, in words ---------------------------------------------------------

  function pagedRefusal(step, before) {
    const needed = step.op === "add" ? Math.ceil(step.tokens / blockSize)
      : Math.ceil((before.tokens[step.seq] + step.tokens) / blockSize) - before.tables[step.seq].length;
    const what = step.op === "add" ? `${plural(step.tokens, "prompt token")} ${step.tokens === 1 ? "needs" : "need"} ${plural(needed, "block")}`
      : `growing ${step.seq} by ${plural(step.tokens, "token")} needs ${plural(needed, "more block")}`;
    const free = before.freeList.length;
    return `The paged pool refused it: ${what}, and ${plural(free, "block")} ${free === 1 ? "is" : "are"} free. ` +
      "The scheduler would have to preempt a sequence to make room (chapter 5).";
  }

  function contiguousRefusal(step, free, largest) {
    if (free >= step.reserve) {
      return `The contiguous arena refused it: ${plural(free, "slot is", "slots are")} free, but not next to each other; the largest hole has ${largest}.`;
    }
    return `The contiguous arena refused it: it needs ${step.reserve} slots in a row and ${plural(free, "slot is", "slots are")} free.`;
  }

  function addSentence(step, beforePaged, afterPaged, pagedOk, contOk, free, largest) {
    const head = `${step.seq}: ${plural(step.tokens, "prompt token")}, room for ${step.reserve}.`;
    const took = pagedOk ? afterPaged.tables[step.seq] : [];
    took.forEach((b) => changed.add(b));
    const paged = pagedOk ? `The paged pool gave it ${took.length === 1 ? "block" : "blocks"} ${took.join(", ")}.` : pagedRefusal(step, beforePaged);
    const region = contOk ? arena.snapshot().regions[step.seq] : null;
    const cont = contOk ? `The contiguous arena reserved slots ${span(region[0], region[1])}.` : contiguousRefusal(step, free, largest);
    return `${pagedOk || contOk ? "Added" : "Refused"} ${head} ${paged} ${cont}`;
  }

  function run(step) {
    const beforePaged = allocator.snapshot();
    const free = arena.free();
    const largest = arena.largestHole();
    changed = new Set();
    if (step.op === "add") {
      const pagedOk = apply(allocator, step);
      const contOk = applyContiguous(arena, step);
      if (pagedOk || contOk) {
        colour.set(step.seq, made);
        room.set(step.seq, step.reserve);
        order.push(step.seq);
        made += 1;
      }
      announcer.say(addSentence(step, beforePaged, allocator.snapshot(), pagedOk, contOk, free, largest));
    } else if (step.op === "grow") {
      const held = allocator.has(step.seq) ? beforePaged.tokens[step.seq] : arena.snapshot().regions[step.seq][2];
      if (held + step.tokens > room.get(step.seq)) {
        announcer.say(`${step.seq} may hold at most ${plural(room.get(step.seq), "token")}, its prompt and the most it may generate; it holds ${held}. Finish it instead.`);
      } else {
        const parts = [];
        if (allocator.has(step.seq)) {
          if (apply(allocator, step)) {
            const fresh = allocator.snapshot().tables[step.seq].slice(beforePaged.tables[step.seq].length);
            fresh.forEach((b) => changed.add(b));
            parts.push(fresh.length ? `the paged pool gave it ${fresh.length === 1 ? "block" : "blocks"} ${fresh.join(", ")}` : "the paged pool needed no new block");
          } else {
            parts.push(pagedRefusal(step, beforePaged));
          }
        }
        if (arena.has(step.seq)) {
          applyContiguous(arena, step);
          parts.push("its contiguous region had room already");
        }
        announcer.say(`${step.seq} grew by ${plural(step.tokens, "token")} to ${held + step.tokens}: ${parts.join("; ")}.`);
      }
    } else {
      const parts = [];
      if (allocator.has(step.seq)) {
        const blocks = beforePaged.tables[step.seq];
        blocks.forEach((b) => changed.add(b));
        apply(allocator, step);
        parts.push(`blocks ${blocks.join(", ")} went back to the front of the free list`);
      }
      if (arena.has(step.seq)) {
        const [start, size] = arena.snapshot().regions[step.seq];
        applyContiguous(arena, step);
        parts.push(`slots ${span(start, size)} became a hole`);
      }
      announcer.say(`Finished ${step.seq}: ${parts.join("; ")}.`);
    }
    render();
  }

  function addSequence() {
    const tokens = addTokens.read(announcer.say);
    if (tokens === null) return;
    const most = maxNew.read(announcer.say);
    if (most === null) return;
    exampleStep = null;
    let name = letters(made);
    while (allocator.has(name) || arena.has(name)) name = letters(++made);
    run({ op: "add", seq: name, tokens, reserve: tokens + most });
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

  function emptyBoth() {
    reset();
    exampleStep = null;
    announcer.say(`Both are empty: ${plural(numBlocks, "block")} on the free list, ${capacity} free slots in one hole.`);
    render();
  }

  reset();
  render();
}
