// The scheduler of chapter 5 and the block manager under it, without any drawing: the same
// decisions as nanovllm/engine/scheduler.py (Scheduler) and block_manager.py (BlockManager),
// step for step, recorded in the engine's trace format (nanovllm/engine/trace.py).
//
// One difference of means, none of behaviour: the engine keys a full block of the prefix
// cache by a 64-bit xxhash of its tokens chained to the previous key; here the key is the
// chain of tokens itself, as a string. The engine confirms every key match by the block's
// tokens and its parent, so with or without a collision it finds what exact keys find.
//
// A scenario is {config, requests}: the engine settings of a trace (with eos_token_id) and
// requests {seq_id, prompt_token_ids, max_tokens, ignore_eos, stop_token_ids, arrival,
// completion}. The token a request samples at its k-th step of output is completion[k]: the
// token the engine produced, so a run with other settings generates the same text and ends
// at the same length. A request may instead give only its lengths, {seq_id, prompt_length,
// output_length, arrival} (see lengthRequest), and a scenario may ask for static batching
// ({batching: "static"}, see staticBatching). tests/ext/test_simulator_logic.py runs replay()
// below and the Python scheduler on the same generated scenarios and requires identical
// traces: the scheduler replay's, the scheduler stepper's and the batching timeline's.

export const STATUS = { WAITING: "waiting", RUNNING: "running", FINISHED: "finished" };

function ceilDiv(a, b) {
  return Math.ceil(a / b);
}

function sameTokens(a, b) {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

// -- the block manager -------------------------------------------------------------------------

export class BlockManager {
  // keyFunction(tokens, previousKey) keys a full block, as BlockManager.key_function does in
  // the engine; the prefix-cache explorer passes the engine's own xxh64 keys.
  constructor(numBlocks, blockSize, prefixCaching, keyFunction = BlockManager.key) {
    this.blockSize = blockSize;
    this.prefixCaching = prefixCaching;
    this.keyFunction = keyFunction;
    this.blocks = Array.from({ length: numBlocks }, (_, id) => ({
      id, refCount: 0, key: null, tokens: [], content: null, parent: null,
    }));
    this.free = Array.from({ length: numBlocks }, (_, id) => id); // front first
    this.cached = new Map(); // key -> block id
    this.nextContent = 0;
  }

  get numFreeBlocks() {
    return this.free.length;
  }

  static key(tokens, previous) {
    return (previous === null ? "" : `${previous}|`) + tokens.join(",");
  }

  matchPrefix(seq) {
    if (!this.prefixCaching) return [];
    const bs = this.blockSize;
    const hits = [];
    let key = null;
    let parent = null;
    for (let start = 0; start < Math.floor((seq.numTokens - 1) / bs) * bs; start += bs) {
      const tokens = seq.tokenIds.slice(start, start + bs);
      key = this.keyFunction(tokens, key);
      const block = this.cachedCopy(key, tokens, parent);
      if (block === null) break;
      hits.push(block.id);
      parent = block.content;
    }
    return hits;
  }

  cachedCopy(key, tokens, parent) {
    const id = this.cached.get(key);
    if (id === undefined) return null;
    const block = this.blocks[id];
    return sameTokens(block.tokens, tokens) && block.parent === parent ? block : null;
  }

  numBlocksNeeded(seq, numNewTokens, hits = []) {
    const end = seq.numComputedTokens + hits.length * this.blockSize + numNewTokens;
    const fresh = ceilDiv(end, this.blockSize) - seq.blockTable.length - hits.length;
    return fresh + hits.filter((id) => this.blocks[id].refCount === 0).length;
  }

  allocate(seq, numNewTokens, hits = []) {
    const bs = this.blockSize;
    if (seq.blockTable.length === 0) {
      for (const id of hits) this.revive(id);
      seq.blockTable = [...hits];
      seq.numComputedTokens = seq.numCachedTokens = hits.length * bs;
    }
    const start = seq.numComputedTokens;
    const end = start + numNewTokens;
    while (seq.blockTable.length * bs < end) seq.blockTable.push(this.takeFreeBlock());
    if (this.prefixCaching) {
      for (let i = Math.floor(start / bs); i < Math.floor(end / bs); i += 1) this.publish(seq, i);
    }
  }

  freeSeq(seq) {
    const bs = this.blockSize;
    for (let i = seq.blockTable.length - 1; i >= 0; i -= 1) {
      const block = this.blocks[seq.blockTable[i]];
      if ((i + 1) * bs > seq.numComputedTokens && this.isCached(block)) this.forget(block);
      block.refCount -= 1;
      if (block.refCount === 0) {
        // Cached blocks wait at the back (the start of a prompt leaves last); others go first.
        if (this.isCached(block)) this.free.push(block.id);
        else this.free.unshift(block.id);
      }
    }
    seq.blockTable = [];
  }

  isCached(block) {
    return block.key !== null && this.cached.get(block.key) === block.id;
  }

  revive(id) {
    const block = this.blocks[id];
    if (block.refCount === 0) this.free.splice(this.free.indexOf(id), 1);
    block.refCount += 1;
  }

  takeFreeBlock() {
    const id = this.free.shift();
    const block = this.blocks[id];
    this.forget(block);
    block.refCount = 1;
    return id;
  }

  forget(block) {
    if (this.isCached(block)) this.cached.delete(block.key);
    block.key = null;
    block.tokens = [];
    block.content = null;
    block.parent = null;
  }

  publish(seq, i) {
    const bs = this.blockSize;
    const block = this.blocks[seq.blockTable[i]];
    const before = i > 0 ? this.blocks[seq.blockTable[i - 1]] : null;
    block.tokens = seq.tokenIds.slice(i * bs, (i + 1) * bs);
    block.parent = before ? before.content : null;
    block.key = this.keyFunction(block.tokens, before ? before.key : null);
    const same = this.cachedCopy(block.key, block.tokens, block.parent);
    block.content = same ? same.content : this.nextContent++;
    this.cached.set(block.key, block.id);
  }
}

// -- sequences and the scheduler ---------------------------------------------------------------

export function createSequence(request) {
  return {
    seqId: request.seq_id,
    tokenIds: [...request.prompt_token_ids],
    numTokens: request.prompt_token_ids.length,
    numPromptTokens: request.prompt_token_ids.length,
    maxTokens: request.max_tokens,
    ignoreEos: request.ignore_eos,
    stopTokenIds: [...request.stop_token_ids],
    status: STATUS.WAITING,
    numComputedTokens: 0,
    numCachedTokens: 0,
    blockTable: [],
    finishReason: null,
  };
}

function isDecode(seq) {
  return seq.numTokens > seq.numPromptTokens && seq.numComputedTokens === seq.numTokens - 1;
}

/** Config's own checks on the settings a reader can change, with Config's messages. */
export function checkConfig(c) {
  const problems = [];
  const whole = (name, min) => {
    if (!Number.isInteger(c[name]) || c[name] < min) problems.push(`${name}=${c[name]} is invalid: an int >= ${min}`);
  };
  whole("max_num_batched_tokens", 1);
  whole("max_num_seqs", 1);
  whole("num_kvcache_blocks", 1);
  if (problems.length) return problems[0];
  if (!c.enable_chunked_prefill && c.max_num_batched_tokens < c.max_model_len) {
    return `max_num_batched_tokens=${c.max_num_batched_tokens} is invalid: with ` +
      `enable_chunked_prefill=False it must be >= max_model_len (${c.max_model_len}) so any ` +
      "prompt fits in one step; raise it, lower max_model_len, or enable chunked prefill";
  }
  return null;
}

export class Scheduler {
  constructor(config) {
    const problem = checkConfig(config);
    if (problem) throw new RangeError(problem);
    this.config = config;
    this.eosTokenId = config.eos_token_id;
    this.blockManager = new BlockManager(config.num_kvcache_blocks, config.block_size,
      config.enable_prefix_caching);
    this.waiting = [];
    this.running = [];
  }

  /** Scheduler.add: queue a request, or throw (changing nothing) if it could never run. */
  add(seq) {
    const n = seq.numTokens;
    const maxLen = this.config.max_model_len;
    const bs = this.config.block_size;
    if (n >= maxLen) {
      throw new RangeError(`the prompt has ${n} tokens; it must be shorter than ` +
        `max_model_len=${maxLen} to leave room for output`);
    }
    const kvTokens = Math.min(n + seq.maxTokens, maxLen) - 1;
    const pool = this.blockManager.blocks.length;
    if (ceilDiv(kvTokens, bs) > pool) {
      throw new RangeError(`prompt plus max_tokens needs up to ${ceilDiv(kvTokens, bs)} KV ` +
        `blocks, but the pool has ${pool} blocks of ${bs} tokens; lower max_tokens or give ` +
        "the KV cache more memory");
    }
    this.waiting.push(seq);
  }

  isFinished() {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  schedule() {
    const batch = { seqs: [], numNewTokens: [], isPrefill: [], doSample: [], preempted: [] };
    let budget = this.config.max_num_batched_tokens;
    for (let i = 0; i < this.running.length; i += 1) {
      const seq = this.running[i];
      const n = Math.min(seq.numTokens - seq.numComputedTokens, budget);
      if (n > 0 && this.makeRoom(seq, n, batch)) {
        this.addToBatch(batch, seq, n);
        budget -= n;
      }
    }
    const bm = this.blockManager;
    while (this.waiting.length && budget > 0 && batch.preempted.length === 0
      && this.running.length < this.config.max_num_seqs) {
      const seq = this.waiting[0];
      const hits = bm.matchPrefix(seq);
      const todo = seq.numTokens - hits.length * bm.blockSize;
      const n = Math.min(todo, budget);
      if (n < todo && !this.config.enable_chunked_prefill) break;
      if (bm.numBlocksNeeded(seq, n, hits) > bm.numFreeBlocks) break;
      this.waiting.shift();
      seq.status = STATUS.RUNNING;
      this.running.push(seq);
      this.addToBatch(batch, seq, n, hits);
      budget -= n;
    }
    return batch;
  }

  makeRoom(seq, n, batch) {
    const bm = this.blockManager;
    while (bm.numBlocksNeeded(seq, n) > bm.numFreeBlocks) {
      const victim = this.running.pop();
      bm.freeSeq(victim);
      victim.status = STATUS.WAITING;
      victim.numComputedTokens = victim.numCachedTokens = 0;
      this.waiting.unshift(victim);
      batch.preempted.push(victim.seqId);
      if (victim === seq) return false;
    }
    return true;
  }

  addToBatch(batch, seq, n, hits = []) {
    this.blockManager.allocate(seq, n, hits);
    batch.seqs.push(seq);
    batch.numNewTokens.push(n);
    batch.isPrefill.push(!isDecode(seq));
    batch.doSample.push(seq.numComputedTokens + n === seq.numTokens);
  }

  postprocess(batch, sampled) {
    const wanted = batch.doSample.filter(Boolean).length;
    if (sampled.length !== wanted) {
      throw new RangeError(`sampled_token_ids has ${sampled.length} ids; the batch samples ${wanted}`);
    }
    let next = 0;
    batch.seqs.forEach((seq, i) => {
      seq.numComputedTokens += batch.numNewTokens[i];
      if (!batch.doSample[i]) return;
      const token = sampled[next];
      next += 1;
      seq.tokenIds.push(token);
      seq.numTokens += 1;
      const reason = this.finishReason(seq, token);
      if (reason !== null) this.finish(seq, reason);
    });
  }

  finishReason(seq, token) {
    if (seq.stopTokenIds.includes(token)) return "stop";
    if (token === this.eosTokenId && !seq.ignoreEos) return "stop";
    if (seq.numTokens - seq.numPromptTokens >= seq.maxTokens
      || seq.numTokens >= this.config.max_model_len) return "length";
    return null;
  }

  finish(seq, reason) {
    if (seq.status === STATUS.RUNNING) {
      this.blockManager.freeSeq(seq);
      this.running.splice(this.running.indexOf(seq), 1);
    } else if (seq.status === STATUS.WAITING) {
      this.waiting.splice(this.waiting.indexOf(seq), 1);
    }
    seq.status = STATUS.FINISHED;
    seq.finishReason = reason;
  }
}

// -- the trace recorder ------------------------------------------------------------------------

function request(seq) {
  return {
    seq_id: seq.seqId, prompt_token_ids: seq.tokenIds.slice(0, seq.numPromptTokens),
    max_tokens: seq.maxTokens, ignore_eos: seq.ignoreEos, stop_token_ids: [...seq.stopTokenIds],
  };
}

/** TraceRecorder.record_step: one step of the trace, after postprocess. */
export function recordStep(scheduler, batch, sampled, seen, index) {
  const bm = scheduler.blockManager;
  const added = [];
  for (const seq of [...batch.seqs, ...scheduler.waiting]) {
    if (!seen.has(seq.seqId)) {
      seen.add(seq.seqId);
      added.push(request(seq));
    }
  }
  return {
    step: index,
    added,
    batch: {
      seq_ids: batch.seqs.map((s) => s.seqId), num_new_tokens: [...batch.numNewTokens],
      is_prefill: [...batch.isPrefill], do_sample: [...batch.doSample],
      preempted_seq_ids: [...batch.preempted],
    },
    sampled_token_ids: [...sampled],
    finished: batch.seqs.filter((s) => s.status === STATUS.FINISHED)
      .map((s) => ({ seq_id: s.seqId, finish_reason: s.finishReason })),
    seqs: [...scheduler.running, ...scheduler.waiting].map((s) => ({
      seq_id: s.seqId, status: s.status, num_tokens: s.numTokens,
      num_computed_tokens: s.numComputedTokens, num_cached_tokens: s.numCachedTokens,
      block_table: [...s.blockTable],
    })),
    pool: {
      free_block_ids: [...bm.free],
      ref_counts: bm.blocks.map((b) => b.refCount),
      cached_block_ids: [...bm.cached.values()].sort((a, b) => a - b),
      num_cached_keys: bm.cached.size,
    },
  };
}

// -- a whole run -------------------------------------------------------------------------------

/**
 * Run a scenario to the end; the trace's steps. Requests join before the step their arrival
 * names; when nothing is left to run, the next arrivals join at once (no empty steps).
 * `maxSteps` stops a run that would not end (it throws).
 */
export function run(scenario, maxSteps = 10000) {
  scenario = prepared(scenario);
  const scheduler = new Scheduler(scenario.config);
  const completion = new Map(scenario.requests.map((r) => [r.seq_id, r.completion]));
  const pending = [...scenario.requests].sort((a, b) => a.arrival - b.arrival || a.seq_id - b.seq_id);
  const seen = new Set();
  const steps = [];
  while (pending.length || !scheduler.isFinished()) {
    let now = steps.length;
    if (scheduler.isFinished()) now = Math.max(now, pending[0].arrival);
    while (pending.length && pending[0].arrival <= now) scheduler.add(createSequence(pending.shift()));
    const batch = scheduler.schedule();
    if (batch.seqs.length === 0) throw new Error("the scheduler found nothing to run although requests remain");
    const sampled = [];
    batch.seqs.forEach((seq, i) => {
      if (!batch.doSample[i]) return;
      const k = seq.numTokens - seq.numPromptTokens;
      const tokens = completion.get(seq.seqId);
      if (k >= tokens.length) throw new Error(`request ${seq.seqId} has no token number ${k + 1}`);
      sampled.push(tokens[k]);
    });
    scheduler.postprocess(batch, sampled);
    steps.push(recordStep(scheduler, batch, sampled, seen, steps.length));
    if (steps.length > maxSteps) throw new Error(`the run takes more than ${maxSteps} steps`);
  }
  return steps;
}

// -- requests by lengths, and static batching ---------------------------------------------------

// Token ids of a request given by lengths: request i uses i * TOKEN_STRIDE + 1 onwards, so no
// two requests share a token (no prefix-cache hit, whatever the setting) and none samples
// end-of-sequence (id 0) or a stop token. The engine's prompts are at most 2,048 tokens.
export const TOKEN_STRIDE = 4096;

/**
 * A request known by its lengths alone: `promptLength` prompt tokens, then `outputLength`
 * generated ones, end-of-sequence ignored; lengths decide its whole run.
 */
export function lengthRequest(seqId, promptLength, outputLength, arrival = 0) {
  const first = seqId * TOKEN_STRIDE + 1;
  const ids = (start, count) => Array.from({ length: count }, (_, k) => start + k);
  return {
    seq_id: seqId, prompt_token_ids: ids(first, promptLength), max_tokens: outputLength,
    ignore_eos: true, stop_token_ids: [], arrival, completion: ids(first + promptLength, outputLength),
  };
}

// An arrival later than any run: such requests join only when the engine is idle.
export const WHEN_IDLE = 1e9;

/**
 * Static batching with the same scheduler: at most `max_num_seqs` requests at a time, and the
 * next group of that many joins only when the engine has finished the group before. Group g
 * arrives at step g x WHEN_IDLE, long after the engine has fallen idle, and run() lets the next
 * arrivals join as soon as it is idle: the scheduler is then finished, exactly when a static
 * server adds its next batch.
 */
export function staticBatching(scenario) {
  const size = scenario.config.max_num_seqs;
  return {
    ...scenario, batching: "continuous",
    requests: scenario.requests.map((r, i) => ({ ...r, arrival: Math.floor(i / size) * WHEN_IDLE })),
  };
}

/** The scenario with its requests as token ids and its batching as arrivals. */
function prepared(scenario) {
  const requests = scenario.requests.map((r) => (r.prompt_token_ids ? r
    : lengthRequest(r.seq_id, r.prompt_length, r.output_length, r.arrival)));
  const full = { ...scenario, requests };
  return scenario.batching === "static" ? staticBatching(full) : full;
}

/** Sequences computed in each step of a run, and the places a step had but did not use. */
export function slotUse(steps, slots) {
  const used = steps.map((step) => step.batch.seq_ids.length);
  return { used, idle: slots * steps.length - used.reduce((a, b) => a + b, 0) };
}

/** What the test harness calls: the steps of a scenario's run. */
export function replay(scenario) {
  return run(scenario);
}

/** The scenario with some engine settings changed (the "what if" of the widget). */
export function withSettings(scenario, settings) {
  return { ...scenario, config: { ...scenario.config, ...settings } };
}
