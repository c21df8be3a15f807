// The scheduler replay widget (chapter 5): a run of the real engine, made when the book was
// built, shown step by step: each step's batch, every request's state and block table, the
// pool and its free list. "What if" runs the same requests under other settings with
// logic.js (a port of the scheduler tested against the engine); each request then generates
// the same tokens as in the engine's run. Drawing only: the decisions are in the trace or in
// logic.js. Built with the widget kit (../kit/).

import { el, fill, letters, plural } from "../kit/dom.js";
import { button, checkbox, group, integerField } from "../kit/controls.js";
import { createStepper } from "../kit/stepper.js";
import { drawing, grid, group as svgGroup, rect, text as svgText } from "../kit/svg.js";
import { seqColour } from "../kit/theme.js";
import { frame, view } from "../kit/widget.js";
import { run, withSettings } from "./logic.js";

let instances = 0;

/** A token's text with its whitespace visible: "\n" as ↵. */
function shown(text) {
  return text.replace(/\n/g, "↵");
}

/** What happened to every request up to each step: statuses, outputs, end reasons. */
function history(steps, requests) {
  const out = [];
  const generated = new Map(requests.map((r) => [r.seq_id, []]));
  const ended = new Map();
  const arrived = new Set();
  out.push({ generated: new Map([...generated].map(([k, v]) => [k, [...v]])), ended: new Map(), arrived: new Set() });
  for (const step of steps) {
    step.added.forEach((r) => arrived.add(r.seq_id));
    let next = 0;
    step.batch.seq_ids.forEach((id, i) => {
      if (!step.batch.do_sample[i]) return;
      generated.get(id).push(step.sampled_token_ids[next]);
      next += 1;
    });
    step.finished.forEach((f) => ended.set(f.seq_id, { step: step.step + 1, reason: f.finish_reason }));
    out.push({ generated: new Map([...generated].map(([k, v]) => [k, [...v]])), ended: new Map(ended), arrived: new Set(arrived) });
  }
  return out;
}

function blocksNeeded(request, config) {
  const kv = Math.min(request.prompt_token_ids.length + request.max_tokens, config.max_model_len) - 1;
  return Math.ceil(kv / config.block_size);
}

export function mount(root, params) {
  const id = `nb-sr-${++instances}`;
  const engineSteps = params.trace.steps;
  const scenario = params.scenario;
  const requests = scenario.requests;
  const tokenText = params.tokenText;
  const texts = params.texts;
  const base = scenario.config;
  let steps = engineSteps;
  let config = base;
  let past = history(steps, requests);
  const tokenOf = (t) => tokenText[String(t)] ?? `#${t}`;

  const { controls, announcer, views } = frame(root, "nb-sr");

  // -- controls ------------------------------------------------------------------------------
  const stepper = createStepper({ count: steps.length, show, announcer });
  const blocksField = integerField({
    label: "KV blocks", min: 1, max: 4096, unit: "blocks",
    value: base.num_kvcache_blocks, onEnter: rerun,
  });
  const budgetField = integerField({
    label: "Token budget", min: 1, max: 16384, unit: "tokens",
    value: base.max_num_batched_tokens, onEnter: rerun,
  });
  const seqsField = integerField({
    label: "Sequences per step", min: 1, max: 256, unit: "sequences",
    value: base.max_num_seqs, onEnter: rerun,
  });
  const prefixBox = checkbox({ label: "Prefix caching", checked: base.enable_prefix_caching });
  const chunkBox = checkbox({ label: "Chunked prefill", checked: base.enable_chunked_prefill });
  const rerunButton = button("Run with these settings", rerun, { class: "nb-sr-rerun" });
  const engineButton = button("Back to the engine's run", backToEngine, { class: "nb-sr-engine" });
  controls.append(stepper.element, group("What if",
    blocksField.element, budgetField.element, seqsField.element,
    prefixBox.element, chunkBox.element, rerunButton, engineButton));

  // -- views ---------------------------------------------------------------------------------
  const source = el("p", { class: "nb-sr-source" });
  const batchList = el("ul", { class: "nb-sr-batch" });
  const table = el("tbody");
  const poolHolder = el("div", { class: "nb-sr-pool" });
  const freeList = el("ol", { class: "nb-kit-chips nb-sr-free", "aria-label": "Free list, front first" });
  const legend = el("p", { class: "nb-sr-legend", text: "Dashed: a free block, with its place in the free list. " +
    "Dot: the prefix cache can find the block's content. Two letters: a block shared by two requests." });
  views.append(
    source,
    view(`${id}-batch`, "This step's batch", batchList),
    view(`${id}-requests`, "Requests", el("div", { class: "nb-sr-scroll" }, el("table", { class: "nb-sr-table" },
      el("thead", {}, el("tr", {}, ...["Request", "State", "Tokens computed", "Block table", "Output so far"]
        .map((h) => el("th", { scope: "col", text: h })))), table))),
    view(`${id}-pool`, "Block pool", poolHolder, el("p", { class: "nb-sr-free-label", text: "Free list, front first:" }), freeList, legend));

  function settingsText(c) {
    return `${plural(c.num_kvcache_blocks, "block")} of ${c.block_size} tokens, a budget of ` +
      `${plural(c.max_num_batched_tokens, "token")} and at most ${plural(c.max_num_seqs, "sequence")} a step, ` +
      `prefix caching ${c.enable_prefix_caching ? "on" : "off"}, chunked prefill ${c.enable_chunked_prefill ? "on" : "off"}`;
  }

  function showSource() {
    source.textContent = steps === engineSteps
      ? `The engine's run, made when this book was built: ${settingsText(config)}.`
      : `Your settings, run in this page by the scheduler's JavaScript port: ${settingsText(config)}. ` +
        `${plural(steps.length, "step")}; the engine's run took ${engineSteps.length}.`;
  }

  // -- one step ------------------------------------------------------------------------------
  function batchItems(step, previous) {
    const wasRunning = new Set((previous?.seqs ?? []).filter((s) => s.status === "running").map((s) => s.seq_id));
    const after = new Map(step.seqs.map((s) => [s.seq_id, s]));
    const items = [];
    let next = 0;
    step.batch.seq_ids.forEach((seqId, i) => {
      const n = step.batch.num_new_tokens[i];
      const sample = step.batch.do_sample[i];
      const name = letters(seqId);
      let what;
      if (!step.batch.is_prefill[i]) what = "decode, 1 token";
      else {
        const recompute = past[step.step].generated.get(seqId).length > 0;
        what = `${recompute ? "recompute" : "prompt"}${sample ? "" : " chunk"}, ${plural(n, "token")}`;
      }
      const cached = after.get(seqId)?.num_cached_tokens ?? 0;
      if (!wasRunning.has(seqId) && cached) what += ` (${cached} more from the prefix cache)`;
      let sampled = "";
      if (sample) {
        sampled = ` → “${shown(tokenOf(step.sampled_token_ids[next]))}”`;
        next += 1;
      }
      items.push(el("li", { style: { "--nb-seq": seqColour(seqId) } },
        el("span", { class: "nb-sr-swatch", "aria-hidden": "true" }), el("strong", { text: name }), `: ${what}${sampled}`));
    });
    const total = step.batch.num_new_tokens.reduce((a, b) => a + b, 0);
    items.push(el("li", { class: "nb-sr-total", text: `${total} of ${config.max_num_batched_tokens} budget tokens used.` }));
    if (step.batch.preempted_seq_ids.length) {
      items.push(el("li", { class: "nb-sr-event", text: `Preempted: ${step.batch.preempted_seq_ids.map(letters).join(", ")} ` +
        "(blocks given back; to the front of the waiting queue)." }));
    }
    if (step.finished.length) {
      items.push(el("li", { class: "nb-sr-event", text: `Finished: ${step.finished.map((f) => `${letters(f.seq_id)} (${f.finish_reason})`).join(", ")}.` }));
    }
    return items;
  }

  function requestRows(index) {
    const step = index > 0 ? steps[index - 1] : null;
    const live = new Map((step?.seqs ?? []).map((s) => [s.seq_id, s]));
    const state = past[index];
    return requests.map((r) => {
      const name = letters(r.seq_id);
      const s = live.get(r.seq_id);
      const ended = state.ended.get(r.seq_id);
      const arrivedYet = state.arrived.has(r.seq_id) || (index === 0 && r.arrival === 0);
      let status;
      let computed = "-";
      let blocks = "-";
      if (s) {
        status = s.status;
        computed = `${s.num_computed_tokens} of ${s.num_tokens}`;
        blocks = s.block_table.join(" ") || "-";
      } else if (ended) status = `finished at step ${ended.step} (${ended.reason})`;
      else status = arrivedYet ? "waiting" : `arrives before step ${r.arrival + 1}`;
      const prompt = texts[r.seq_id] ?? `${r.prompt_token_ids.length} tokens`;
      const output = state.generated.get(r.seq_id).map(tokenOf).join("");
      return el("tr", { style: { "--nb-seq": seqColour(r.seq_id) }, dataset: { status: s ? s.status : ended ? "finished" : "waiting" } },
        el("th", { scope: "row" }, el("span", { class: "nb-sr-swatch", "aria-hidden": "true" }), name,
          el("span", { class: "nb-sr-prompt", text: `“${shown(prompt)}”` })),
        el("td", { text: status, "data-label": "State" }), el("td", { text: computed, "data-label": "Tokens computed" }),
        el("td", { "data-label": "Block table" }, el("code", { text: blocks })),
        el("td", { class: "nb-sr-output", text: shown(output), "data-label": "Output so far" }));
    });
  }

  function drawPool(index) {
    const count = config.num_kvcache_blocks;
    const step = index > 0 ? steps[index - 1] : null;
    const pool = step?.pool ?? { free_block_ids: Array.from({ length: count }, (_, i) => i), ref_counts: new Array(count).fill(0), cached_block_ids: [] };
    const owners = new Map();
    for (const s of step?.seqs ?? []) for (const b of s.block_table) owners.set(b, [...(owners.get(b) ?? []), s.seq_id]);
    const cached = new Set(pool.cached_block_ids);
    const freeAt = new Map(pool.free_block_ids.map((b, i) => [b, i + 1]));
    const columns = Math.max(1, Math.min(count, 12, Math.floor((poolHolder.clientWidth || 560) / 46)));
    poolColumns = columns;
    const cell = 40;
    const cells = grid({ count, columns, cell, gap: 6, x: 2, y: 2 });
    const rows = Math.ceil(count / columns);
    const used = count - pool.free_block_ids.length;
    const svg = drawing({ width: columns * 46, height: rows * 46, label: `Block pool after step ${index}: ` +
      `${used} of ${count} blocks in use, ${pool.free_block_ids.length} free, ${cached.size} findable in the prefix cache.` });
    svg.style.maxWidth = `${columns * 46}px`; // one unit, one pixel, where there is room
    cells.forEach(({ x, y }, block) => {
      const who = owners.get(block) ?? [];
      const parts = [];
      const props = { class: who.length ? "nb-sr-block" : "nb-sr-block nb-sr-block-free", rx: 4 };
      if (who.length) props.style = { "--nb-seq": seqColour(who[0]) };
      parts.push(rect(x, y, cell, cell, props));
      parts.push(svgText(x + 4, y + 11, String(block), { class: "nb-kit-muted nb-sr-block-id" }));
      if (who.length) parts.push(svgText(x + cell / 2, y + cell / 2 + 8, who.map(letters).join(" "), { class: "nb-sr-owner", "text-anchor": "middle" }));
      else parts.push(svgText(x + cell / 2, y + cell / 2 + 8, `#${freeAt.get(block)}`, { class: "nb-kit-muted nb-sr-free-pos", "text-anchor": "middle" }));
      if (cached.has(block)) parts.push(svgGroup({ class: "nb-sr-cached" }, rect(x + cell - 10, y + 4, 6, 6, { rx: 3 })));
      svg.append(svgGroup({ "data-block": block }, ...parts));
    });
    fill(poolHolder, svg);
    fill(freeList, pool.free_block_ids.length ? pool.free_block_ids.map((b) => el("li", { text: String(b) }))
      : el("li", { class: "nb-kit-none", text: "empty" }));
  }

  function sentence(index) {
    if (index === 0) {
      const now = requests.filter((r) => r.arrival === 0).map((r) => letters(r.seq_id));
      return `Before step 1: ${now.join(", ")} ${now.length === 1 ? "waits" : "wait"}; all ${config.num_kvcache_blocks} blocks are free.`;
    }
    const step = steps[index - 1];
    const work = step.batch.seq_ids.map((seqId, i) => {
      if (!step.batch.is_prefill[i]) return `${letters(seqId)} decode`;
      const recompute = past[index - 1].generated.get(seqId).length > 0;
      return `${letters(seqId)} ${recompute ? "recompute" : "prompt"}${step.batch.do_sample[i] ? "" : " chunk"}`;
    });
    const events = [];
    if (step.batch.preempted_seq_ids.length) events.push(`preempted ${step.batch.preempted_seq_ids.map(letters).join(", ")}`);
    if (step.finished.length) events.push(`finished ${step.finished.map((f) => letters(f.seq_id)).join(", ")}`);
    const waiting = step.seqs.filter((s) => s.status === "waiting").map((s) => letters(s.seq_id));
    if (waiting.length) events.push(`waiting ${waiting.join(", ")}`);
    return `Step ${index}: ${work.join(", ")}${events.length ? `; ${events.join("; ")}` : ""}; ` +
      `${step.pool.free_block_ids.length} of ${config.num_kvcache_blocks} blocks free.`;
  }

  function show(index) {
    fill(batchList, index === 0 ? el("li", { class: "nb-kit-none", text: "Nothing has run yet: press Step." })
      : batchItems(steps[index - 1], index > 1 ? steps[index - 2] : null));
    fill(table, requestRows(index));
    drawPool(index);
    return sentence(index);
  }

  // -- what if -------------------------------------------------------------------------------
  function rerun() {
    const say = announcer.say;
    const blocks = blocksField.read(say);
    const budget = blocks === null ? null : budgetField.read(say);
    const seqs = budget === null ? null : seqsField.read(say);
    if (seqs === null) return;
    const settings = {
      num_kvcache_blocks: blocks, max_num_batched_tokens: budget, max_num_seqs: seqs,
      enable_prefix_caching: prefixBox.checked(), enable_chunked_prefill: chunkBox.checked(),
    };
    if (!settings.enable_chunked_prefill && budget < base.max_model_len) {
      say(`With chunked prefill off, a whole prompt must fit in one step: the token budget must be at least ` +
        `${base.max_model_len}, the longest sequence this run allows.`);
      return;
    }
    const next = withSettings(scenario, settings);
    const tooBig = requests.find((r) => blocksNeeded(r, next.config) > blocks);
    if (tooBig) {
      say(`With ${plural(blocks, "block")} request ${letters(tooBig.seq_id)} can never run: it needs up to ` +
        `${plural(blocksNeeded(tooBig, next.config), "block")}. The engine refuses such a request when it arrives.`);
      return;
    }
    let result;
    try {
      result = run(next, 2000);
    } catch (error) {
      say(`These settings cannot run: ${error.message}`);
      return;
    }
    steps = result;
    config = next.config;
    past = history(steps, requests);
    stepper.setCount(steps.length);
    showSource();
    stepper.go(0, true);
    say(`Run again with your settings: ${plural(steps.length, "step")} (the engine's run took ${engineSteps.length}). Step through it.`);
  }

  function backToEngine() {
    steps = engineSteps;
    config = base;
    past = history(steps, requests);
    blocksField.set(base.num_kvcache_blocks);
    budgetField.set(base.max_num_batched_tokens);
    seqsField.set(base.max_num_seqs);
    prefixBox.set(base.enable_prefix_caching);
    chunkBox.set(base.enable_chunked_prefill);
    stepper.setCount(steps.length);
    showSource();
    stepper.go(0, true);
    announcer.say(`Back to the engine's run: ${plural(steps.length, "step")}.`);
  }

  // The pool's rows follow the width it has (a phone gets fewer blocks a row).
  let poolColumns = 0;
  new ResizeObserver(() => {
    const fits = Math.max(1, Math.min(config.num_kvcache_blocks, 12, Math.floor(poolHolder.clientWidth / 46)));
    if (fits !== poolColumns) drawPool(stepper.index());
  }).observe(poolHolder);

  showSource();
  stepper.go(0, true);
}
