// The prefix-cache explorer of chapter 7, without any drawing: the engine's block manager with
// prefix caching on (nanovllm/engine/block_manager.py, BlockManager), keyed as the engine keys
// its blocks, so every key, hit, reference count and free-list position is the engine's.
//
// The bookkeeping is the BlockManager of ../scheduler-replay/logic.js (the scheduler replay's
// port, tested against the engine step by step); this module gives it the engine's keys:
// compute_block_key's xxh64 over the previous key (8 bytes, little-endian, left out for a
// first block) and the block's token ids (4 bytes each, little-endian). With `keyBits` below
// 64 the key keeps only its low bits, as a BlockManager does with key_function =
// lambda t, p: compute_block_key(t, p) & mask, so that collisions happen often enough to see.
//
// A scenario is {numBlocks, blockSize, keyBits, ops}, the operations
//   {op: "submit", seq: "A", tokens: [ids]}  admit a prompt as the scheduler admits a waiting
//     request with room in its budget: look it up, take its hits and new blocks, compute it;
//     refused, changing nothing, when the pool lacks the free blocks;
//   {op: "finish", seq: "A"}  the request ends: free its blocks.
// tests/ext/test_simulator_logic.py runs replay() below and the Python engine on the same
// generated scenarios and requires the same state after every step.

import { BlockManager } from "../scheduler-replay/logic.js";
import { xxh64 } from "./xxh64.js";

/** compute_block_key: the key of a full block of `tokens` after the block keyed `previous`. */
export function blockKey(tokens, previous) {
  const head = previous === null ? 0 : 8;
  const bytes = new Uint8Array(head + 4 * tokens.length);
  const view = new DataView(bytes.buffer);
  if (previous !== null) view.setBigUint64(0, previous, true);
  tokens.forEach((token, i) => view.setUint32(head + 4 * i, token, true));
  return xxh64(bytes);
}

/** The key function of a cache whose keys keep their low `bits` bits (64: the engine's). */
export function keyFunction(bits) {
  if (bits === 64) return blockKey;
  const mask = (1n << BigInt(bits)) - 1n;
  return (tokens, previous) => blockKey(tokens, previous) & mask;
}

/** A key as 16 hex digits, as the Python side prints it (f"{key:016x}"). */
export function hex(key) {
  return key === null ? null : key.toString(16).padStart(16, "0");
}

export function createExplorer({ numBlocks, blockSize, keyBits = 64 }) {
  const manager = new BlockManager(numBlocks, blockSize, true, keyFunction(keyBits));
  const seqs = new Map(); // name -> the fields of a Sequence the block manager reads

  /** What match_prefix finds for each full block it looks at, and why it stops: "hit", "no
   * entry" (no block has the key) or "other content" (the key's block holds other tokens, or
   * follows another prefix: a collision). The walk ends at the first miss. */
  function lookUp(tokens) {
    const steps = [];
    let key = null;
    let parent = null;
    for (let start = 0; start < Math.floor((tokens.length - 1) / blockSize) * blockSize; start += blockSize) {
      const block = tokens.slice(start, start + blockSize);
      key = manager.keyFunction(block, key);
      const found = manager.cached.get(key);
      const copy = manager.cachedCopy(key, block, parent);
      steps.push({ key: hex(key), block: found ?? null, verdict: copy ? "hit" : found === undefined ? "no entry" : "other content" });
      if (!copy) break;
      parent = copy.content;
    }
    return steps;
  }

  return {
    numBlocks,
    blockSize,
    keyBits,
    has: (name) => seqs.has(name),
    names: () => [...seqs.keys()],
    tokens: (name) => [...seqs.get(name).tokenIds],

    /** Admit and compute a prompt; {ok, hits, lookups}. Nothing changes when it does not fit. */
    submit(name, tokens) {
      if (seqs.has(name)) throw new Error(`request ${name} exists already`);
      if (!Array.isArray(tokens) || tokens.length === 0) throw new RangeError("a prompt needs at least one token");
      const seq = { tokenIds: [...tokens], numTokens: tokens.length, numComputedTokens: 0, numCachedTokens: 0, blockTable: [] };
      const lookups = lookUp(seq.tokenIds);
      const hits = manager.matchPrefix(seq);
      const todo = seq.numTokens - hits.length * blockSize;
      if (manager.numBlocksNeeded(seq, todo, hits) > manager.numFreeBlocks) return { ok: false, hits, lookups };
      manager.allocate(seq, todo, hits);
      seq.numComputedTokens += todo;
      seqs.set(name, seq);
      return { ok: true, hits, lookups };
    },

    /** The request ends: BlockManager.free. */
    finish(name) {
      const seq = seqs.get(name);
      if (!seq) throw new Error(`no request ${name}`);
      manager.freeSeq(seq);
      seqs.delete(name);
      return { ok: true, hits: [], lookups: [] };
    },

    /** The pool, the tables and the cache, in the form the Python replay reports them. */
    snapshot() {
      const tables = {};
      const cachedTokens = {};
      for (const [name, seq] of seqs) {
        tables[name] = [...seq.blockTable];
        cachedTokens[name] = seq.numCachedTokens;
      }
      return {
        tables,
        cachedTokens,
        refCounts: manager.blocks.map((b) => b.refCount),
        freeList: [...manager.free],
        keys: manager.blocks.map((b) => hex(b.key)),
        cached: manager.blocks.map((b) => manager.isCached(b)),
      };
    },

    /** A block's tokens as its key covers them (empty when it has no key). */
    blockTokens: (id) => [...manager.blocks[id].tokens],
  };
}

/** Apply one operation of a scenario. */
export function apply(explorer, step) {
  switch (step.op) {
    case "submit": return explorer.submit(step.seq, step.tokens);
    case "finish": return explorer.finish(step.seq);
    default: throw new Error(`unknown operation ${step.op}`);
  }
}

/** Run a whole scenario; the state after every step (what the test compares with the engine).
 * A step that throws ends the run with {error}, which no state of the engine's equals. */
export function replay(scenario) {
  const explorer = createExplorer(scenario);
  const states = [];
  for (const step of scenario.ops) {
    try {
      states.push({ ...apply(explorer, step), ...explorer.snapshot() });
    } catch (error) {
      states.push({ error: error.message });
      break;
    }
  }
  return states;
}
