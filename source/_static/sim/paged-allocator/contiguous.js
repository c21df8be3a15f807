// The contiguous allocator the paged one is compared with (chapter 4), without any drawing.
//
// An arena of numSlots token slots in a row. A sequence is admitted with a reservation: one
// run of neighbouring slots, as long as its prompt plus the most tokens it may generate, placed
// in the free hole with the lowest address that is long enough (first fit). Its tokens then
// fill the region from the start; it never gets more room, and finishing frees the region.
// A request whose reservation fits in no hole is refused, even when the free slots add up to
// enough: they are not next to each other.
//
// tests/ext/test_contiguous_allocator.py runs replay() below and a slot-by-slot Python
// reference on the same random scenarios and requires the same state after every step.

export function createArena({ numSlots }) {
  if (!Number.isInteger(numSlots) || numSlots < 1) throw new RangeError("numSlots must be a positive integer");
  const regions = new Map(); // name -> { start, size, tokens }

  /** Free runs of slots, lowest address first: [[start, length], ...]. */
  function holes() {
    const taken = [...regions.values()].sort((a, b) => a.start - b.start);
    const out = [];
    let cursor = 0;
    for (const r of taken) {
      if (r.start > cursor) out.push([cursor, r.start - cursor]);
      cursor = r.start + r.size;
    }
    if (cursor < numSlots) out.push([cursor, numSlots - cursor]);
    return out;
  }

  const free = () => holes().reduce((sum, [, length]) => sum + length, 0);

  return {
    numSlots,
    has: (name) => regions.has(name),
    holes,
    free,
    largestHole: () => holes().reduce((most, [, length]) => Math.max(most, length), 0),

    /** Reserve `reserve` slots for a sequence with `tokens` prompt tokens; false if no hole fits. */
    add(name, tokens, reserve) {
      if (regions.has(name)) throw new Error(`sequence ${name} exists already`);
      if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError("tokens must be a positive integer");
      if (!Number.isInteger(reserve) || reserve < tokens) throw new RangeError("reserve must be a whole number >= tokens");
      const hole = holes().find(([, length]) => length >= reserve);
      if (!hole) return false;
      regions.set(name, { start: hole[0], size: reserve, tokens });
      return true;
    },

    /** Fill `tokens` more slots of the region; false (nothing changes) past its end. */
    grow(name, tokens) {
      const region = regions.get(name);
      if (!region) throw new Error(`no sequence ${name}`);
      if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError("tokens must be a positive integer");
      if (region.tokens + tokens > region.size) return false;
      region.tokens += tokens;
      return true;
    },

    finish(name) {
      if (!regions.delete(name)) throw new Error(`no sequence ${name}`);
      return true;
    },

    /** The state, in the form the Python reference reports it. */
    snapshot() {
      const byAddress = [...regions.entries()].sort((a, b) => a[1].start - b[1].start);
      const out = {};
      for (const [name, r] of byAddress) out[name] = [r.start, r.size, r.tokens];
      return { regions: out, holes: holes() };
    },
  };
}

/** Apply one operation of a scenario; returns whether it was accepted. */
export function apply(arena, step) {
  switch (step.op) {
    case "add": return arena.add(step.seq, step.tokens, step.reserve);
    case "grow": return arena.grow(step.seq, step.tokens);
    case "finish": return arena.finish(step.seq);
    default: throw new Error(`unknown operation ${step.op}`);
  }
}

/** Run a whole scenario ({ numSlots, ops }); the state after every step. */
export function replay(scenario) {
  const arena = createArena(scenario);
  return scenario.ops.map((step) => ({ ok: apply(arena, step), ...arena.snapshot() }));
}
