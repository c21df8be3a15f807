// The block-table walk widget (chapter 4): a sequence's positions, its block table, the cache's
// blocks, and the tiles one decode attention reads, in order. The arithmetic is in logic.js
// (tested against the engine's gather_context); this file only draws, with the widget kit.

import { el, fill, plural } from "../kit/dom.js";
import { button, group, integerField } from "../kit/controls.js";
import { createStepper } from "../kit/stepper.js";
import { seqColour } from "../kit/theme.js";
import { frame, view } from "../kit/widget.js";
import { locate, walk } from "./logic.js";

let instances = 0;

/** "3, 6–7, 9": runs of consecutive numbers. */
function runs(values) {
  const out = [];
  for (const v of values) {
    const last = out[out.length - 1];
    if (last && v === last[1] + 1) last[1] = v;
    else out.push([v, v]);
  }
  return out.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
}

export function mount(root, params) {
  const id = `nb-btw-${++instances}`;
  const { contextLen, blockSize, tile, numSplits, table, tables, numBlocks } = params;
  const tiles = walk(params);
  const combine = numSplits > 1 ? 1 : 0; // a last step: the pieces' results are combined
  const owner = new Map();
  for (const [name, blocks] of Object.entries(tables)) blocks.forEach((b, i) => owner.set(b, { name, entry: i }));
  const names = Object.keys(tables);
  let looked = null; // the position looked up, or null

  const { box, controls, announcer, views } = frame(root, "nb-btw");

  // -- controls ------------------------------------------------------------------------------
  const position = integerField({ label: "Position", min: 0, max: contextLen - 1, value: Math.min(contextLen - 1, blockSize + 1), unit: "", onEnter: lookUp });
  const lookButton = button("Look up", lookUp);
  const stepper = createStepper({ count: tiles.length + combine, show, announcer, label: "Tile" });
  controls.append(group("One position", position.element, lookButton), group("One decode attention, tile by tile", stepper.element));

  // -- views ---------------------------------------------------------------------------------
  const sequence = el("ol", { class: "nb-btw-positions", "aria-label": `Sequence A: positions 0 to ${contextLen - 1}, in blocks of ${blockSize}` });
  const tableView = el("ol", { class: "nb-btw-table nb-kit-chips", "aria-label": "A's block table: entry, then block" });
  const cache = el("ol", { class: "nb-btw-cache", "aria-label": `The cache: ${plural(numBlocks, "block")} of ${plural(blockSize, "slot")}` });
  const detail = el("div", { class: "nb-btw-detail" });
  views.append(
    view(`${id}-seq`, `Sequence A: ${plural(contextLen, "position")}`, sequence),
    view(`${id}-table`, "A's block table", tableView),
    view(`${id}-cache`, `The cache's blocks (A's decoded beside ${names.slice(1).join(" and ")})`,
      el("p", { class: "nb-btw-note", text: "Each block: its number, the table entry it holds (A5 is entry 5 of A's table), its slots." }), cache),
    view(`${id}-tile`, "What the kernel reads", detail));

  function current() {
    const i = stepper.index();
    return i >= 1 && i <= tiles.length ? tiles[i - 1] : null;
  }

  function render() {
    const now = current();
    const reading = new Set(now ? now.positions.map((p) => p.position) : []);
    const blocksRead = new Set(now ? now.positions.map((p) => p.block) : []);
    const slotsRead = new Set(now ? now.positions.map((p) => p.slot) : []);
    const here = looked === null ? null : locate(table, blockSize, looked);
    fill(sequence, Array.from({ length: Math.ceil(contextLen / blockSize) }, (_, entry) => el("li", {
      class: "nb-btw-logical", "aria-label": `Entry ${entry}: positions ${entry * blockSize} to ${Math.min(contextLen, (entry + 1) * blockSize) - 1}`,
    }, Array.from({ length: Math.min(blockSize, contextLen - entry * blockSize) }, (_, k) => {
      const p = entry * blockSize + k;
      const classes = ["nb-btw-pos"];
      if (reading.has(p)) classes.push("nb-btw-reading");
      if (here && here.position === p) classes.push("nb-btw-looked");
      return el("span", { class: classes.join(" "), text: String(p), style: reading.has(p) ? { "--nb-seq": seqColour(now.split) } : {} });
    }))));
    fill(tableView, table.map((block, entry) => el("li", {
      class: (now && blocksRead.has(block)) || (here && here.entry === entry) ? "nb-btw-hit" : "",
      "aria-label": `entry ${entry}: block ${block}`,
    }, el("span", { class: "nb-btw-entry", text: `${entry}→` }), String(block))));
    fill(cache, Array.from({ length: numBlocks }, (_, block) => {
      const own = owner.get(block);
      const mine = own && own.name === names[0];
      const classes = ["nb-btw-block", mine ? "nb-btw-mine" : "nb-btw-other"];
      if (blocksRead.has(block) || (here && here.block === block)) classes.push("nb-btw-hit");
      const slots = Array.from({ length: blockSize }, (_, k) => {
        const slot = block * blockSize + k;
        const hit = slotsRead.has(slot) || (here && here.slot === slot);
        return el("span", { class: `nb-btw-slot${hit ? " nb-btw-slot-hit" : ""}`, text: String(slot) });
      });
      return el("li", {
        class: classes.join(" "),
        "aria-label": own ? `Block ${block}: ${own.name}'s entry ${own.entry}` : `Block ${block}: free`,
      }, el("span", { class: "nb-btw-block-id", text: own ? `${block} · ${own.name}${own.entry}` : `${block} · free` }),
      el("span", { class: "nb-btw-slots" }, slots));
    }));
    renderDetail(now, here);
  }

  function renderDetail(now, here) {
    if (here && !now) {
      fill(detail, el("p", { text: `Position ${here.position}: entry ${here.position} ÷ ${blockSize} = ${here.entry} of the table holds block ${here.block}; offset ${here.position} mod ${blockSize} = ${here.offset}; slot ${here.block} × ${blockSize} + ${here.offset} = ${here.slot}.` }));
      return;
    }
    if (!now) {
      const i = stepper.index();
      fill(detail, el("p", { class: "nb-kit-none", text: i === 0
        ? `Step through the tiles: ${plural(numSplits, "program")} (one per piece of the context), ${plural(tile, "position")} per tile.`
        : `Each program wrote its partial result and its log-sum-exp; a second kernel weighs the ${numSplits} results by them into one.` }));
      return;
    }
    if (!now.positions.length) {
      fill(detail, el("p", { text: `Piece ${now.split} starts at position ${now.start}, past the end of the context: its program reads nothing.` }));
      return;
    }
    const head = el("tr", {}, ["position", "table entry", "block", "offset", "slot"].map((h) => el("th", { scope: "col", text: h })));
    const rows = now.positions.map((p) => el("tr", {}, [p.position, p.entry, p.block, p.offset, p.slot].map((v) => el("td", { text: String(v) }))));
    fill(detail, el("p", { text: `Piece ${now.split}, positions ${now.start} to ${now.end - 1}:` }),
      el("table", { class: "nb-btw-rows" }, el("thead", {}, head), el("tbody", {}, rows)));
  }

  function show(i) {
    looked = null;
    render();
    if (i === 0) return `Before the first tile: ${plural(tiles.length, "tile")} in ${plural(numSplits, "piece")}.`;
    if (i > tiles.length) return `Combine: the ${numSplits} pieces' partial results are weighed into one.`;
    const now = tiles[i - 1];
    if (!now.positions.length) return `Tile ${i} of ${tiles.length}: piece ${now.split} starts past the end and reads nothing.`;
    const blocks = [...new Set(now.positions.map((p) => p.block))];
    return `Tile ${i} of ${tiles.length}, piece ${now.split}: positions ${now.start} to ${now.end - 1} from ${blocks.length === 1 ? "block" : "blocks"} ${blocks.join(", ")}, slots ${runs(now.positions.map((p) => p.slot))}.`;
  }

  function lookUp() {
    const p = position.read(announcer.say);
    if (p === null) return;
    stepper.stop();
    stepper.go(0, true);
    looked = p;
    render();
    const here = locate(table, blockSize, p);
    announcer.say(`Position ${p}: table entry ${here.entry} holds block ${here.block}; offset ${here.offset}; slot ${here.slot}.`);
  }

  stepper.go(0, true);
}
