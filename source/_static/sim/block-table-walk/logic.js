// Where the decode kernel finds each cached token of a sequence (chapter 4), without drawing.
//
// Position p of a sequence lives in the block its table names at entry p / blockSize (rounded
// down), at offset p mod blockSize; in the cache seen as one row per slot that is slot
// block * blockSize + offset. The kernel (nanovllm/kernels/decode_attention.py) cuts the
// context into numSplits pieces of whole tiles, one program each, and each program walks its
// piece a tile of `tile` positions at a time, finding every position's slot through the table
// (attention_tile.py, tile_rows). A piece that starts past the end of the context reads
// nothing.
//
// tests/ext/test_simulator_logic.py runs replay() below and the Python side
// (_ext/nanobook/sims/block_table_walk.py, slots from the engine's gather_context) on the same
// random scenarios and requires the same tiles, positions and slots.

/** Where position `position` of a sequence with block table `table` is in the cache. */
export function locate(table, blockSize, position) {
  const entry = Math.floor(position / blockSize);
  const block = table[entry];
  const offset = position % blockSize;
  return { position, entry, block, offset, slot: block * blockSize + offset };
}

/** The kernel's pieces: [start, end) of each, in order (end <= start for an empty piece). */
export function pieces(contextLen, tile, numSplits) {
  const perSplit = Math.ceil(Math.ceil(contextLen / numSplits) / tile) * tile;
  return Array.from({ length: numSplits }, (_, split) => {
    const start = split * perSplit;
    return { split, start, end: Math.min(contextLen, start + perSplit) };
  });
}

/** Every tile the kernel reads, piece by piece; an empty piece is one entry with no positions. */
export function walk({ contextLen, blockSize, tile, numSplits, table }) {
  const out = [];
  for (const { split, start, end } of pieces(contextLen, tile, numSplits)) {
    if (start >= end) {
      out.push({ split, start, end: start, positions: [] });
      continue;
    }
    for (let first = start; first < end; first += tile) {
      const last = Math.min(end, first + tile);
      const positions = [];
      for (let p = first; p < last; p += 1) positions.push(locate(table, blockSize, p));
      out.push({ split, start: first, end: last, positions });
    }
  }
  return out;
}

/** The logic test's entry point: the tiles of a scenario, one state per tile. */
export function replay(scenario) {
  return walk(scenario);
}
