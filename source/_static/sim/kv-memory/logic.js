// The KV-memory calculator's logic (chapter 1): bytes of keys and values, and what fits.
//
// One token keeps a key and a value (2) in every layer, for every KV head, each head_dim
// numbers of the dtype's size: 2 x layers x kvHeads x headDim x bytes. A conversation of
// `context` tokens keeps that many; `requests` conversations keep that many times more. On a
// GPU the engine takes `utilization` of the memory (Config.gpu_memory_utilization); the
// weights come first, the rest can hold keys and values (activations are left out here).
// The book counts the weights of dense models only: for a mixture of experts (weights null)
// there is no room to compare with, so room, fits and all are null.
// Plain module, no DOM; tests/ext/test_simulator_logic.py holds it to the book's Python
// values (kv_bytes_per_token, weight_bytes).

/** Bytes of keys and values of one token, over all layers. */
export function kvBytesPerToken(model, bytesPerValue) {
  return 2 * model.layers * model.kvHeads * model.headDim * bytesPerValue;
}

/** What one setting ({ model, dtype, context, requests }) needs, and what fits on each GPU. */
export function plan(data, settings) {
  const model = data.models.find((m) => m.name === settings.model);
  if (!model) throw new Error(`no model ${JSON.stringify(settings.model)} in the page data`);
  const perToken = kvBytesPerToken(model, data.dtypeBytes[settings.dtype]);
  const perConversation = perToken * settings.context;
  const weights = model.weights[settings.dtype];
  const gpus = data.gpus.map((gpu) => {
    const usable = Math.floor(gpu.bytes * data.utilization);
    if (weights === null) return { name: gpu.name, usable, room: null, fits: null, all: null };
    const room = usable - weights;
    return {
      name: gpu.name, usable, room,
      fits: room > 0 ? Math.max(0, Math.floor(room / perConversation)) : 0,
      all: perConversation * settings.requests <= room,
    };
  });
  return { perToken, perConversation, total: perConversation * settings.requests, weights, gpus };
}

/** The logic test's entry point: { data, settings: [...] } -> the plan of each setting. */
export function replay(scenario) {
  return scenario.settings.map((settings) => plan(scenario.data, settings));
}
