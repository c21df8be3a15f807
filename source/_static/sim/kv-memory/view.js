// The KV-memory calculator (chapter 1): pick a model, a dtype, a context length and a number
// of conversations; see the bytes of keys and values per token and in all, and how many
// conversations fit on each GPU once the weights are in. The arithmetic is logic.js (tested
// against the book's Python values); this file only draws, with the widget kit (../kit/).

import { el, fill, plural } from "../kit/dom.js";
import { button, choice, group, integerField } from "../kit/controls.js";
import { frame, view } from "../kit/widget.js";
import { plan } from "./logic.js";

let instances = 0;

/** Bytes as decimal gigabytes, as GPU datasheets count them. */
function gb(bytes) {
  const value = bytes / 1e9;
  return `${value < 10 ? value.toFixed(2) : value.toLocaleString("en", { maximumFractionDigits: 1 })} GB`;
}

function count(n) {
  return n.toLocaleString("en");
}

/** "1 token", "4,096 tokens". */
function many(n, word) {
  return `${count(n)} ${n === 1 ? word : `${word}s`}`;
}

export function mount(root, params) {
  const id = `nb-kv-${++instances}`;
  const data = params;
  const start = data.initial;

  const { controls, announcer, views } = frame(root, "nb-kv");

  // -- controls ------------------------------------------------------------------------------
  const modelChoice = choice({
    label: "Model", value: start.model, onChange: compute,
    options: data.models.map((m) => ({ value: m.name, text: m.bundled ? `${m.name} (the bundled model)` : m.name })),
  });
  const dtypeChoice = choice({
    label: "dtype", value: start.dtype, onChange: compute,
    options: data.dtypes.map((d) => ({ value: d, text: `${d} (${plural(data.dtypeBytes[d], "byte")})` })),
  });
  const contextField = integerField({ label: "Tokens per conversation", min: 1, max: 1048576, value: start.context, unit: "tokens", onEnter: compute });
  const requestsField = integerField({ label: "Conversations", min: 1, max: 4096, value: start.requests, unit: "conversations", onEnter: compute });
  controls.append(group("Workload", modelChoice.element, dtypeChoice.element, contextField.element,
    requestsField.element, button("Compute", compute)));

  // -- views ---------------------------------------------------------------------------------
  const formula = el("p", { class: "nb-kv-formula" });
  const totals = el("p", { class: "nb-kv-totals" });
  const rows = el("tbody");
  const note = el("p", { class: "nb-kv-note" });
  const headers = ["GPU", "Memory", `Engine's ${Math.round(data.utilization * 100)}%`, "Weights",
    "Room for KV", "Your conversations", "Conversations that fit"];
  views.append(
    view(`${id}-token`, "Keys and values", formula, totals),
    view(`${id}-gpus`, "On each GPU", el("div", { class: "nb-kv-scroll" }, el("table", { class: "nb-kv-table" },
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })))),
      rows)), note));

  function compute() {
    const context = contextField.read(announcer.say);
    if (context === null) return;
    const requests = requestsField.read(announcer.say);
    if (requests === null) return;
    const settings = { model: modelChoice.value(), dtype: dtypeChoice.value(), context, requests };
    const model = data.models.find((m) => m.name === settings.model);
    const result = plan(data, settings);
    formula.textContent = `${settings.model} in ${settings.dtype}: 2 (a key and a value) × ${model.layers} layers × ` +
      `${plural(model.kvHeads, "KV head")} × ${model.headDim} numbers × ${plural(data.dtypeBytes[settings.dtype], "byte")} = ` +
      `${count(result.perToken)} bytes per token.`;
    totals.textContent = `One conversation of ${many(context, "token")}: ${gb(result.perConversation)}. ` +
      `${many(requests, "conversation")}: ${gb(result.total)}.`;
    fill(rows, result.gpus.map((g, i) => {
      const gpu = data.gpus[i];
      const share = (bytes) => `${Math.min(100, Math.max(0, (100 * bytes) / gpu.bytes)).toFixed(2)}%`;
      const bar = el("span", { class: "nb-kv-bar", "aria-hidden": "true" },
        el("span", { class: "nb-kv-weights", style: { width: share(result.weights ?? 0) } }),
        el("span", { class: `nb-kv-need${g.all === false ? " nb-kv-over" : ""}`, style: { width: share(Math.min(result.total, Math.max(0, g.room ?? result.total))) } }));
      const verdict = g.room === null ? "—" : g.room <= 0 ? "weights do not fit" : g.all ? "fit" : "do not fit";
      const cell = (column, ...content) => el("td", { dataset: { label: headers[column] } }, ...content);
      return el("tr", { class: g.all === null ? "" : g.all ? "nb-kv-ok" : "nb-kv-no" },
        el("th", { scope: "row", text: g.name }),
        cell(1, gb(gpu.bytes)),
        cell(2, gb(g.usable)),
        cell(3, result.weights === null ? "not counted" : gb(result.weights)),
        cell(4, g.room === null ? "—" : g.room > 0 ? gb(g.room) : "none"),
        cell(5, el("span", { class: "nb-kv-verdict", text: verdict }), bar),
        cell(6, g.fits === null ? "—" : count(g.fits)));
    }));
    note.textContent = result.weights === null
      ? `${settings.model} is a mixture of experts: the book counts the weights of dense models only, so it cannot say what fits.`
      : "GB are 10⁹ bytes, as the datasheets count; the cards report a little more, so the engine's cache holds a few percent more than shown. Activations (a step's working numbers, which the engine measures when it starts) are left out.";
    const fitting = result.gpus.filter((g) => g.all).map((g) => g.name);
    const short = result.gpus.filter((g) => g.all === false).map((g) => g.room > 0 ? `${g.name} holds ${count(g.fits)}` : `${g.name} cannot hold the weights`);
    announcer.say(`${settings.model}, ${settings.dtype}: ${count(result.perToken)} bytes per token; ` +
      `${many(requests, "conversation")} of ${many(context, "token")} need ${gb(result.total)}. ` +
      (result.weights === null ? "Its weights are not counted, so no GPU gets a verdict." : "") +
      (fitting.length ? `They fit on ${fitting.join(" and ")}. ` : "") + (short.length ? `${short.join("; ")}.` : ""));
  }

  compute();
  announcer.say("");
}
