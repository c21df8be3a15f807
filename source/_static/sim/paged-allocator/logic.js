// The paged KV allocator of chapter 4, without any drawing: the same bookkeeping as
// nanovllm/engine/block_manager.py (BlockManager) with prefix caching off.
//
// A pool of numBlocks blocks of blockSize token slots. Each sequence has a block table:
// entry i is the block holding its tokens [i * blockSize, (i + 1) * blockSize).
// The free list is ordered: allocation takes from the front. A finished sequence gives its
// blocks back last block first, and each one goes to the *front* of the free list (with
// prefix caching off no freed block is worth keeping), so the next allocation reuses them
// first, in their old order.
//
// tests/ext/test_simulator_logic.py runs replay() below and the Python engine on the same
// random scenarios and requires the same state after every step.

export function createAllocator({ numBlocks, blockSize }) {
  if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new RangeError("numBlocks must be a positive integer");
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError("blockSize must be a positive integer");
  const refCounts = new Array(numBlocks).fill(0);
  let freeList = Array.from({ length: numBlocks }, (_, i) => i);
  const seqs = new Map(); // name -> { tokens, computed, table }

  // BlockManager.num_blocks_needed: blocks to hold `extra` more tokens after `computed`.
  function blocksNeeded(seq, extra) {
    const end = seq.computed + extra;
    return Math.ceil(end / blockSize) - seq.table.length;
  }

  // BlockManager._take_free_block: the front of the free list.
  function takeFreeBlock() {
    const block = freeList.shift();
    refCounts[block] = 1;
    return block;
  }

  // BlockManager.allocate (no prefix hits): grow the table to cover `extra` more tokens.
  function allocate(seq, extra) {
    const end = seq.computed + extra;
    while (seq.table.length * blockSize < end) seq.table.push(takeFreeBlock());
    seq.computed = end;
    seq.tokens = end;
  }

  return {
    numBlocks,
    blockSize,
    has: (name) => seqs.has(name),
    names: () => [...seqs.keys()],

    /** Admit a sequence with a prompt of `tokens` tokens; false (nothing changes) if it cannot fit. */
    add(name, tokens) {
      if (seqs.has(name)) throw new Error(`sequence ${name} exists already`);
      if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError("tokens must be a positive integer");
      const seq = { tokens: 0, computed: 0, table: [] };
      if (blocksNeeded(seq, tokens) > freeList.length) return false;
      allocate(seq, tokens);
      seqs.set(name, seq);
      return true;
    },

    /** Append and compute `tokens` more tokens; false (nothing changes) if the blocks are missing. */
    grow(name, tokens) {
      const seq = seqs.get(name);
      if (!seq) throw new Error(`no sequence ${name}`);
      if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError("tokens must be a positive integer");
      if (blocksNeeded(seq, tokens) > freeList.length) return false;
      allocate(seq, tokens);
      return true;
    },

    /** BlockManager.free: last block first, each freed block to the front of the free list. */
    finish(name) {
      const seq = seqs.get(name);
      if (!seq) throw new Error(`no sequence ${name}`);
      for (const block of [...seq.table].reverse()) {
        refCounts[block] -= 1;
        if (refCounts[block] === 0) freeList.unshift(block);
      }
      seqs.delete(name);
      return true;
    },

    /** The state, in the form the Python replay reports it. */
    snapshot() {
      const tables = {};
      const tokens = {};
      for (const [name, seq] of seqs) {
        tables[name] = [...seq.table];
        tokens[name] = seq.tokens;
      }
      return { freeList: [...freeList], refCounts: [...refCounts], tables, tokens };
    },
  };
}

/** Apply one operation of a scenario; returns whether it was accepted. */
export function apply(allocator, step) {
  switch (step.op) {
    case "add": return allocator.add(step.seq, step.tokens);
    case "grow": return allocator.grow(step.seq, step.tokens);
    case "finish": return allocator.finish(step.seq);
    default: throw new Error(`unknown operation ${step.op}`);
  }
}

/** Run a whole scenario; the state after every step (what the test compares with the engine). */
export function replay(scenario) {
  const allocator = createAllocator(scenario);
  return scenario.ops.map((step) => ({ ok: apply(allocator, step), ...allocator.snapshot() }));
}
