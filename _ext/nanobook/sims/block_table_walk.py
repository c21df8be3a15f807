"""The block-table walk of chapter 4: how decode attention finds a sequence's cached tokens.

The page data is a block table made by the engine's ``BlockManager``: the walked sequence
(A) decodes alongside two others (B and C), one token each per step, as a running batch
does, so its blocks are scattered among theirs. The widget shows, for any position, the
table entry, the block and the slot, and steps through the tiles of one decode attention in
the order ``decode_attention_kernel`` reads them: the context cut into ``:splits:`` pieces
of whole tiles (one program each), each piece walked a tile at a time.

``replay(scenario)`` is the Python side of the logic test: the pieces and tiles as the
kernel's lines compute them, and every position's slot read back through the engine's
``gather_context`` from a cache whose rows hold their own slot numbers, so block and offset
come from the engine's arithmetic, not from a copy of it.
"""

from __future__ import annotations

import random

from docutils import nodes

from . import Param, ParamError, Widget, printed


def pieces(context_len: int, tile: int, num_splits: int) -> list[tuple[int, int, int]]:
    """(split, start, end) of each program's piece, as ``decode_attention_kernel`` has them."""
    def cdiv(a: int, b: int) -> int:  # tl.cdiv
        return -(-a // b)

    split_len = cdiv(cdiv(context_len, num_splits), tile) * tile
    return [(s, s * split_len, min(context_len, s * split_len + split_len))
            for s in range(num_splits)]


def replay(scenario: dict) -> list[dict]:
    """Every tile of the scenario with each position's table entry, block, offset and slot."""
    import torch

    from nanovllm.layers.attention import gather_context

    bs, table, context = scenario["blockSize"], scenario["table"], scenario["contextLen"]
    num_blocks = max(table) + 1
    cache = torch.arange(num_blocks * bs).reshape(num_blocks, bs, 1, 1)  # row = its slot
    slots = gather_context(cache, torch.tensor(table), context).flatten().tolist()
    states = []
    for split, start, end in pieces(context, scenario["tile"], scenario["numSplits"]):
        if start >= end:
            states.append({"split": split, "start": start, "end": start, "positions": []})
            continue
        for first in range(start, end, scenario["tile"]):
            last = min(end, first + scenario["tile"])
            states.append({"split": split, "start": first, "end": last, "positions": [
                {"position": p, "entry": p // bs, "block": slots[p] // bs,
                 "offset": slots[p] % bs, "slot": slots[p]} for p in range(first, last)]})
    return states


def scenarios(seed: int, count: int) -> list[dict]:
    """Random contexts, block sizes, tiles and splits over shuffled tables."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        bs = rng.choice([1, 2, 4, 8, 16, 32])
        context = rng.randint(1, 200)
        needed = -(-context // bs)
        pool = list(range(needed + rng.randint(0, 8)))
        rng.shuffle(pool)
        out.append({"contextLen": context, "blockSize": bs, "table": pool[:needed],
                    "tile": rng.choice([4, 8, 16, 32, 64]), "numSplits": rng.randint(1, 12)})
    return out


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    """The cases the comparison must reach to mean something."""
    def lengths(states):
        return {len(t["positions"]) for t in states if t["positions"]}

    def readers(states, block):
        return {t["start"] for t in states if any(p["block"] == block for p in t["positions"])}

    return {
        "a tile reads several blocks": any(len({p["block"] for p in t["positions"]}) > 1
                                           for states in all_states for t in states),
        "a block is read by several tiles": any(
            len(readers(states, p["block"])) > 1
            for states in all_states for t in states for p in t["positions"]),
        "a piece starts past the end of the context": any(
            not t["positions"] for states in all_states for t in states),
        "a tile is cut short": any(len(lengths(states)) > 1 for states in all_states),
    }


def table_from_engine(context: int, block_size: int) -> tuple[list[int], dict[str, list[int]], int]:
    """A's block table after it decoded beside B and C, one token each per step: A's table,
    every sequence's table, and the pool size. A's prompt is a third of its context."""
    from nanovllm.engine.block_manager import BlockManager
    from nanovllm.engine.sequence import Sequence

    prompts = {"A": max(1, context // 3), "B": block_size + 1, "C": max(1, 2 * block_size - 1)}
    steps = context - prompts["A"]
    num_blocks = sum(-(-(p + steps) // block_size) for p in prompts.values())
    manager = BlockManager(num_blocks, block_size, enable_prefix_caching=False)
    seqs = {}
    for i, (name, length) in enumerate(prompts.items()):
        seqs[name] = Sequence([0] * length, seq_id=i)
        manager.allocate(seqs[name], length)
        seqs[name].num_computed_tokens = length
    for _ in range(steps):
        for seq in seqs.values():  # one decode step: each sequence stores one more token
            seq.append_token(0)
            manager.allocate(seq, 1)
            seq.num_computed_tokens += 1
    return seqs["A"].block_table, {n: s.block_table for n, s in seqs.items()}, num_blocks


def _power_of_two(name: str, value: int) -> None:
    if value & (value - 1):
        raise ParamError(f":{name}: {value} is not a power of two (1, 2, 4, 8, ...); the engine's "
                         "blocks and the kernel's tiles are")


def data(params: dict) -> dict:
    bs, tile = params["block-size"], params["tile"]
    _power_of_two("block-size", bs)
    _power_of_two("tile", tile)
    table, tables, num_blocks = table_from_engine(params["context"], bs)
    return {"contextLen": params["context"], "blockSize": bs, "tile": tile,
            "numSplits": params["splits"], "table": table, "tables": tables,
            "numBlocks": num_blocks}


def _span(values: list[int]) -> str:
    """'3, 6-7, 9': runs of consecutive numbers."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """A's block table and every tile of the walk, as the Python side computes them."""
    rows = []
    for state in replay(payload):
        if not state["positions"]:
            rows.append([str(state["split"]), "none: it starts past the end", "-", "-"])
            continue
        blocks = list(dict.fromkeys(p["block"] for p in state["positions"]))
        rows.append([str(state["split"]), f"{state['start']}-{state['end'] - 1}",
                     ", ".join(map(str, blocks)), _span([p["slot"] for p in state["positions"]])])
    table = printed.table(
        (8, 22, 30, 40), ["Piece", "Positions", "Blocks read (in order)", "Slots read"], rows)
    caption = printed.caption(
        f"A decode of sequence A, {payload['contextLen']} tokens in blocks of "
        f"{payload['blockSize']}; A's block table, made by the engine's BlockManager while A "
        f"decoded beside two other sequences: {' '.join(map(str, payload['table']))}. The "
        f"context is cut into {payload['numSplits']} "
        f"piece{'s' if payload['numSplits'] != 1 else ''} of whole tiles of "
        f"{payload['tile']} positions; each row is one tile, in the order its program reads "
        "it.")
    return [caption, table]


WIDGET = Widget(
    name="block-table-walk",
    title="Block-table walk",
    view="sim/block-table-walk/view.js",
    logic="sim/block-table-walk/logic.js",
    params={
        "context": Param(int, 37, 1, 256, "tokens of the sequence in the cache"),
        "block-size": Param(int, 4, 1, 32, "tokens per block, a power of two"),
        "tile": Param(int, 16, 1, 64, "positions per tile, a power of two"),
        "splits": Param(int, 2, 1, 32, "pieces the context is cut into"),
    },
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/block-table-walk/style.css",),
    engine_modules=("nanovllm.engine.block_manager", "nanovllm.engine.sequence",
                    "nanovllm.layers.attention"),
)
