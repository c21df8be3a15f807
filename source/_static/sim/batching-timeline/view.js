// The batching timeline (chapter 5): the same requests under static and continuous batching,
// as slots per step. Both runs are computed by ../scheduler-replay/logic.js, the port of the
// engine's Scheduler (tested against the engine); static batching is staticBatching() there:
// the next group of `slots` requests joins only when the engine has finished the group before.
// This module only draws. Built with the widget kit (../kit/).

import { el, fill, letters, plural } from "../kit/dom.js";
import { button, choice, group, integerField } from "../kit/controls.js";
import { drawing, group as svgGroup, rect, text as svgText } from "../kit/svg.js";
import { seqColour } from "../kit/theme.js";
import { frame, view } from "../kit/widget.js";
import { run, slotUse } from "../scheduler-replay/logic.js";

const BATCHINGS = ["static", "continuous"];
const ORDERS = [
  { value: "given", text: "as listed" },
  { value: "sorted", text: "sorted, longest first" },
  { value: "equal", text: "all of the mean length" },
];

/** Which slot each request holds at each step: the lowest free one, kept until it leaves. */
function placements(steps, slots) {
  let holder = new Map();
  return steps.map((step) => {
    const ids = step.batch.seq_ids;
    holder = new Map([...holder].filter(([seq]) => ids.includes(seq)));
    for (const seq of ids) {
      if (holder.has(seq)) continue;
      const taken = new Set(holder.values());
      let k = 0;
      while (taken.has(k)) k += 1;
      holder.set(seq, k);
    }
    const row = new Array(slots).fill(null);
    for (const [seq, k] of holder) row[k] = seq;
    return row;
  });
}

function finishSteps(steps) {
  const out = new Map();
  steps.forEach((step) => step.finished.forEach((f) => out.set(f.seq_id, step.step + 1)));
  return out;
}

export function mount(root, params) {
  const { promptLength, maxSlots } = params;
  const given = params.outputLengths;
  const { controls, announcer, views } = frame(root, "nb-bt");
  const say = announcer.say;

  const slotsField = integerField({ label: "Slots per step", min: 1, max: maxSlots, unit: "slots", value: params.slots, onEnter: update });
  const order = choice({ label: "Output lengths", options: ORDERS, value: "given", onChange: update });
  controls.append(group("Requests and slots", slotsField.element, order.element, button("Run both", update, { class: "nb-bt-run" })));

  const lengthsLine = el("p", { class: "nb-bt-lengths" });
  const panels = Object.fromEntries(BATCHINGS.map((b) => [b, { summary: el("p", { class: "nb-bt-summary" }), holder: el("div", { class: "nb-bt-drawing" }) }]));
  const table = el("tbody");
  views.append(
    lengthsLine,
    ...BATCHINGS.map((b) => view(`nb-bt-${b}`, `${b[0].toUpperCase()}${b.slice(1)} batching`, panels[b].summary, panels[b].holder)),
    view("nb-bt-requests", "When each request finishes", el("div", { class: "nb-bt-scroll" }, el("table", { class: "nb-bt-table" },
      el("thead", {}, el("tr", {}, ...["Request", "Output tokens", "Static: done after step", "Continuous: done after step"]
        .map((h) => el("th", { scope: "col", text: h })))), table))));

  function lengths() {
    if (order.value() === "sorted") return [...given].sort((a, b) => b - a);
    if (order.value() === "equal") {
      const mean = Math.round(given.reduce((a, b) => a + b, 0) / given.length);
      return given.map(() => mean);
    }
    return [...given];
  }

  function scenario(outputs, slots, batching) {
    return {
      config: { ...params.base.config, max_num_seqs: slots }, batching,
      requests: outputs.map((n, i) => ({ seq_id: i, prompt_length: promptLength, output_length: n, arrival: 0 })),
    };
  }

  // One drawing unit is one pixel of the column the drawing has, so text stays readable.
  function drawWidth() {
    return Math.max(280, Math.min(900, panels.static.holder.clientWidth || 620));
  }

  function draw(steps, slots, width) {
    const rows = placements(steps, slots);
    const full = drawWidth();
    const cellW = (full - 20) / width;
    const rowH = 16;
    const { idle } = slotUse(steps, slots);
    const svg = drawing({ width: full, height: slots * rowH + 18,
      label: `${plural(slots, "slot")} over ${plural(steps.length, "step")}, ${plural(idle, "idle slot")}.` });
    for (let k = 0; k < slots; k += 1) {
      svg.append(rect(16, k * rowH, steps.length * cellW, rowH - 2, { class: "nb-bt-track" }),
        svgText(0, k * rowH + 11, String(k + 1), { class: "nb-kit-muted nb-bt-slot" }));
    }
    // One bar per stretch of steps a request holds a slot, its letter at the start.
    for (let k = 0; k < slots; k += 1) {
      let start = 0;
      for (let step = 1; step <= rows.length; step += 1) {
        const seq = rows[start][k];
        if (step < rows.length && rows[step][k] === seq) continue;
        if (seq !== null) {
          const x = 16 + start * cellW;
          svg.append(svgGroup({ "data-seq": seq },
            rect(x, k * rowH, (step - start) * cellW, rowH - 2, { class: "nb-bt-cell", rx: 2, style: { "--nb-seq": seqColour(seq) } }),
            (step - start) * cellW >= 9 ? svgText(x + 2, k * rowH + 11, letters(seq), { class: "nb-bt-letter" }) : null));
        }
        start = step;
      }
    }
    svg.append(svgText(16, slots * rowH + 14, "step 1", { class: "nb-kit-muted nb-bt-axis" }),
      svgText(16 + steps.length * cellW, slots * rowH + 14, `step ${steps.length}`, { class: "nb-kit-muted nb-bt-axis", "text-anchor": "end" }));
    return svg;
  }

  function update() {
    const slots = slotsField.read(say);
    if (slots === null) return;
    const outputs = lengths();
    const runs = Object.fromEntries(BATCHINGS.map((b) => [b, run(scenario(outputs, slots, b))]));
    last = { runs, slots, width: Math.max(...BATCHINGS.map((b) => runs[b].length)) };
    lengthsLine.textContent = `${plural(outputs.length, "request")} of ${plural(promptLength, "prompt token")}, generating ` +
      `${outputs.join(", ")} tokens; ${plural(slots, "slot")} (max_num_seqs) per step.`;
    const sums = {};
    for (const b of BATCHINGS) {
      const { idle } = slotUse(runs[b], slots);
      sums[b] = `${plural(runs[b].length, "step")}, ${plural(idle, "idle slot")}`;
      panels[b].summary.textContent = `${sums[b]}.`;
    }
    redraw();
    const done = Object.fromEntries(BATCHINGS.map((b) => [b, finishSteps(runs[b])]));
    fill(table, outputs.map((n, i) => el("tr", { style: { "--nb-seq": seqColour(i) } },
      el("th", { scope: "row" }, el("span", { class: "nb-bt-swatch", "aria-hidden": "true" }), letters(i)),
      el("td", { "data-label": "Output tokens", text: String(n) }),
      el("td", { "data-label": "Static: done after step", text: String(done.static.get(i)) }),
      el("td", { "data-label": "Continuous: done after step", text: String(done.continuous.get(i)) }))));
    const orderText = ORDERS.find((o) => o.value === order.value()).text;
    say(`Lengths ${orderText}, ${plural(slots, "slot")}: static batching ${sums.static}; continuous batching ${sums.continuous}.`);
  }

  let last = null;
  let drawnFor = 0;
  function redraw() {
    drawnFor = drawWidth();
    for (const b of BATCHINGS) fill(panels[b].holder, draw(last.runs[b], last.slots, last.width));
  }

  new ResizeObserver(() => {
    if (last && Math.abs(drawWidth() - drawnFor) > 40) redraw();
  }).observe(panels.static.holder);

  update();
  say("");
}
