"""The paged KV allocator of chapter 4: add, grow and finish sequences on a pool of blocks.

The widget's logic (``_static/sim/paged-allocator/logic.js``) reproduces
``nanovllm.engine.block_manager.BlockManager`` with prefix caching off: which
block each sequence gets, the order of the free list, the ref counts. Prefix
caching is chapter 7's subject and has its own explorer; with it off, token
values do not matter and the allocator is about counts alone, which is what
chapter 4 teaches.

A scenario is ``{"numBlocks", "blockSize", "ops": [...]}`` with operations

* ``{"op": "add", "seq": "A", "tokens": 10}``: admit a sequence with a 10-token prompt
  and compute it (``allocate`` then ``num_computed_tokens += 10``);
* ``{"op": "grow", "seq": "A", "tokens": 3}``: append and compute 3 more tokens;
* ``{"op": "finish", "seq": "A"}``: ``free`` its blocks.

An add or grow that needs more free blocks than there are is refused and changes
nothing (the engine's scheduler would make room by preemption: chapter 5). The
state after each step is ``{"ok", "freeList", "refCounts", "tables", "tokens"}``.

Beside the pool the widget runs the same requests on a contiguous allocator
(``contiguous.js``): an arena of as many slots, where an add also names its
``"reserve"``, the prompt plus the most it may generate, and gets that many neighbouring
slots at once, first fit. Its test (``tests/ext/test_contiguous_allocator.py``) compares it
with a slot-by-slot reference; ``side_by_side`` runs both sides for the PDF, the paged one
on the engine's BlockManager and the contiguous one on ``nanobook.fragmentation``'s arena.
"""

from __future__ import annotations

import random

from docutils import nodes

from . import Param, Widget, printed


class PagedPool:
    """Sequences by name on the engine's BlockManager (prefix caching off)."""

    def __init__(self, num_blocks: int, block_size: int):
        from nanovllm.engine.block_manager import BlockManager

        self.manager = BlockManager(num_blocks, block_size, enable_prefix_caching=False)
        self.seqs: dict = {}
        self.next_id = 0

    def add(self, name: str, tokens: int) -> bool:
        from nanovllm.engine.sequence import Sequence

        seq = Sequence([0] * tokens, seq_id=self.next_id)
        if self.manager.num_blocks_needed(seq, tokens) > self.manager.num_free_blocks:
            return False
        self.next_id += 1
        self.manager.allocate(seq, tokens)
        seq.num_computed_tokens += tokens
        self.seqs[name] = seq
        return True

    def grow(self, name: str, tokens: int) -> bool:
        seq = self.seqs[name]
        if self.manager.num_blocks_needed(seq, tokens) > self.manager.num_free_blocks:
            return False
        for _ in range(tokens):
            seq.append_token(0)
        self.manager.allocate(seq, tokens)
        seq.num_computed_tokens += tokens
        return True

    def finish(self, name: str) -> bool:
        self.manager.free(self.seqs.pop(name))
        return True

    def apply(self, step: dict) -> bool:
        if step["op"] == "finish":
            return self.finish(step["seq"])
        if step["op"] in ("add", "grow"):
            return getattr(self, step["op"])(step["seq"], step["tokens"])
        raise ValueError(f"unknown operation {step['op']!r}")

    def state(self) -> dict:
        return {"freeList": list(self.manager.free_block_ids),
                "refCounts": [block.ref_count for block in self.manager.blocks],
                "tables": {n: list(s.block_table) for n, s in self.seqs.items()},
                "tokens": {n: s.num_tokens for n, s in self.seqs.items()}}


def replay(scenario: dict) -> list[dict]:
    """Run the scenario through the engine's BlockManager; the state after every step."""
    pool = PagedPool(scenario["numBlocks"], scenario["blockSize"])
    return [{"ok": pool.apply(step), **pool.state()} for step in scenario["ops"]]


def _name(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(65 + r) + letters
    return letters


def scenarios(seed: int, count: int) -> list[dict]:
    """Random scenarios: small pools, every block size, adds that do and do not fit."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        num_blocks = rng.randint(1, 24)
        block_size = rng.choice([1, 2, 4, 8, 16])
        capacity = num_blocks * block_size
        active: list[str] = []
        made = 0
        ops = []
        for _ in range(rng.randint(1, 40)):
            roll = rng.random()
            if not active or roll < 0.35:
                name = _name(made)
                made += 1
                tokens = rng.randint(1, max(1, capacity // 2)) if rng.random() < 0.8 else \
                    rng.randint(1, capacity + block_size + 2)
                ops.append({"op": "add", "seq": name, "tokens": tokens})
                active.append(name)  # may be refused: the replay then drops it, see below
            elif roll < 0.75:
                ops.append({"op": "grow", "seq": rng.choice(active),
                            "tokens": rng.randint(1, 2 * block_size + 1)})
            else:
                name = rng.choice(active)
                ops.append({"op": "finish", "seq": name})
                active.remove(name)
        out.append(_drop_refused_names({"numBlocks": num_blocks, "blockSize": block_size,
                                        "ops": ops}))
    return out


def _drop_refused_names(scenario: dict) -> dict:
    """Keep only operations on sequences that exist: a refused add creates no sequence."""
    kept, alive = [], set()
    for step in scenario["ops"]:
        if step["op"] != "add" and step["seq"] not in alive:
            continue
        kept.append(step)
        result = replay({**scenario, "ops": kept})[-1]
        if step["op"] == "add":
            if result["ok"]:
                alive.add(step["seq"])
        elif step["op"] == "finish":
            alive.discard(step["seq"])
    return {**scenario, "ops": kept}


def example(num_blocks: int, block_size: int) -> dict:
    """The scenario the page plays and the PDF prints, on a pool of ``num_blocks * block_size``
    slots. Reservations are fractions of it: A, B and C fill the contiguous arena; when B
    ends, D fits in the free slots but in no hole of them; E reuses the hole A and B leave;
    F needs more than the arena has left, while the paged pool takes every one of them."""
    bs, slots = block_size, num_blocks * block_size

    def add(name: str, tokens: int, reserve: int) -> dict:
        return {"op": "add", "seq": name, "tokens": tokens, "reserve": max(tokens, reserve)}

    ops = [
        add("A", bs + max(1, bs // 2), slots // 3),
        add("B", bs + 1, slots // 4),
        {"op": "grow", "seq": "A", "tokens": bs},
        add("C", 2 * bs + 1, slots // 3),
        {"op": "finish", "seq": "B"},
        add("D", max(1, 2 * bs - 1), slots // 4 + 1),
        {"op": "finish", "seq": "A"},
        add("E", 2 * bs + max(1, bs // 2), slots // 2),
        add("F", 2 * bs, slots // 3),
    ]
    # On a small pool some adds are refused on both sides; later steps of those are dropped.
    kept, alive = [], set()
    scenario = {"numBlocks": num_blocks, "blockSize": block_size, "ops": kept}
    for step in ops:
        if step["op"] != "add" and step["seq"] not in alive:
            continue
        kept.append(step)
        state = side_by_side(scenario)[-1]
        if step["op"] == "add" and (state["paged"]["ok"] or state["contiguous"]["ok"]):
            alive.add(step["seq"])
        elif step["op"] == "finish":
            alive.discard(step["seq"])
    return scenario


def side_by_side(scenario: dict) -> list[dict]:
    """The scenario on both allocators, as the widget runs it: the engine's BlockManager for the
    paged pool, a first-fit arena of as many slots for the contiguous one.

    A sequence holds at most its reservation (prompt plus the most tokens it may generate): a
    grow past it is refused on both sides. An operation on a sequence that one side refused
    leaves that side alone (its ``ok`` is None)."""
    from nanobook.fragmentation import FirstFitArena

    pool = PagedPool(scenario["numBlocks"], scenario["blockSize"])
    arena = FirstFitArena(scenario["numBlocks"] * scenario["blockSize"])
    filled: dict[str, int] = {}  # tokens in each contiguous region
    states = []
    for step in scenario["ops"]:
        name, paged, contiguous = step["seq"], None, None
        if step["op"] == "add":
            paged = pool.add(name, step["tokens"])
            contiguous = arena.place(name, step["reserve"]) is not None
            if contiguous:
                filled[name] = step["tokens"]
        elif step["op"] == "grow":
            held = pool.seqs[name].num_tokens if name in pool.seqs else filled[name]
            within = held + step["tokens"] <= limit_of(scenario, name)
            if name in pool.seqs:
                paged = within and pool.grow(name, step["tokens"])
            if name in filled:
                contiguous = within
                filled[name] += step["tokens"] if within else 0
        else:
            if name in pool.seqs:
                paged = pool.finish(name)
            if name in filled:
                arena.release(name)
                del filled[name]
                contiguous = True
        by_address = sorted(filled, key=lambda n: arena.regions[n][0])
        states.append({
            "paged": {"ok": paged, **pool.state()},
            "contiguous": {"ok": contiguous,
                           "regions": {n: [*arena.regions[n], filled[n]] for n in by_address},
                           "holes": [list(h) for h in arena.holes()]},
        })
    return states


def limit_of(scenario: dict, name: str) -> int:
    """The reservation of ``name``: the tokens it may hold at most."""
    return next(s["reserve"] for s in scenario["ops"] if s["op"] == "add" and s["seq"] == name)


def describe(step: dict, state: dict) -> str:
    name, tokens = step["seq"], step.get("tokens", 0)
    if step["op"] == "add":
        text = f"add {name}: {tokens}-token prompt, room for {step['reserve']}"
    elif step["op"] == "grow":
        text = f"grow {name} by {tokens} token{'s' if tokens != 1 else ''}"
    else:
        return f"finish {name}"
    refused = [side for side in ("paged", "contiguous") if state[side]["ok"] is False]
    if refused:
        text += f" (refused by the {' and the '.join(refused)} side)"
    return text


def _paged_cell(state: dict) -> list[str]:
    tables = "; ".join(f"{n}: {t} ({state['tokens'][n]})" for n, t in state["tables"].items())
    free = " ".join(map(str, state["freeList"])) or "(empty)"
    return [tables or "(none)", f"free: {free}"]


def _contiguous_cell(state: dict) -> list[str]:
    regions = "; ".join(f"{n}: {_span(start, size)} ({used} of {size})"
                        for n, (start, size, used) in state["regions"].items())
    holes = ", ".join(_span(start, size) for start, size in state["holes"])
    return [regions or "(none)", f"holes: {holes or '(none)'}"]


def _span(start: int, size: int) -> str:
    return str(start) if size == 1 else f"{start}-{start + size - 1}"


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    """Refusals and acceptances both happen, or the comparison would prove little."""
    outcomes = [state["ok"] for states in all_states for state in states]
    return {"an operation refused for want of blocks": False in outcomes,
            "more operations accepted than refused": outcomes.count(True) > outcomes.count(False)}


def data(params: dict) -> dict:
    return {"numBlocks": params["blocks"], "blockSize": params["block-size"],
            "example": example(params["blocks"], params["block-size"])}


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The example on both allocators, as a trace table."""
    scenario = payload["example"]
    states = side_by_side(scenario)
    rows = [[str(number), describe(step, state), _paged_cell(state["paged"]),
             _contiguous_cell(state["contiguous"])]
            for number, (step, state) in enumerate(zip(scenario["ops"], states, strict=True),
                                                   start=1)]
    table = printed.table(
        (5, 27, 34, 34), ["Step", "Operation", "Paged: block tables (tokens), free list front "
                          "first", "Contiguous: regions (tokens of slots), free holes"], rows)
    caption = printed.caption(
        f"The example, computed when this book was built: the paged side by the engine's "
        f"BlockManager (prefix caching off) on {scenario['numBlocks']} blocks of "
        f"{scenario['blockSize']} tokens, the contiguous side by a first-fit arena of "
        f"{scenario['numBlocks'] * scenario['blockSize']} slots, where each request reserves its "
        "prompt plus the most it may generate.")
    return [caption, table]


WIDGET = Widget(
    name="paged-allocator",
    title="Paged KV allocator",
    view="sim/paged-allocator/view.js",
    logic="sim/paged-allocator/logic.js",
    params={
        "blocks": Param(int, 12, 2, 64, "blocks in the pool"),
        "block-size": Param(int, 4, 1, 32, "tokens per block"),
    },
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/paged-allocator/style.css",),
    engine_modules=("nanovllm.engine.block_manager", "nanovllm.engine.sequence"),
)
