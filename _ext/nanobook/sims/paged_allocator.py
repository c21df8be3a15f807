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
"""

from __future__ import annotations

import random

from docutils import nodes

from . import Param, Widget


def replay(scenario: dict) -> list[dict]:
    """Run the scenario through the engine's BlockManager; the state after every step."""
    from nanovllm.engine.block_manager import BlockManager
    from nanovllm.engine.sequence import Sequence

    manager = BlockManager(scenario["numBlocks"], scenario["blockSize"], enable_prefix_caching=False)
    seqs: dict[str, Sequence] = {}
    next_id = 0
    states = []
    for step in scenario["ops"]:
        op, name = step["op"], step["seq"]
        ok = True
        if op == "add":
            seq = Sequence([0] * step["tokens"], seq_id=next_id)
            ok = manager.num_blocks_needed(seq, step["tokens"]) <= manager.num_free_blocks
            if ok:
                next_id += 1
                manager.allocate(seq, step["tokens"])
                seq.num_computed_tokens += step["tokens"]
                seqs[name] = seq
        elif op == "grow":
            seq = seqs[name]
            ok = manager.num_blocks_needed(seq, step["tokens"]) <= manager.num_free_blocks
            if ok:
                for _ in range(step["tokens"]):
                    seq.append_token(0)
                manager.allocate(seq, step["tokens"])
                seq.num_computed_tokens += step["tokens"]
        elif op == "finish":
            manager.free(seqs.pop(name))
        else:
            raise ValueError(f"unknown operation {op!r}")
        states.append({
            "ok": ok,
            "freeList": list(manager.free_block_ids),
            "refCounts": [block.ref_count for block in manager.blocks],
            "tables": {n: list(s.block_table) for n, s in seqs.items()},
            "tokens": {n: s.num_tokens for n, s in seqs.items()},
        })
    return states


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
    """The scenario the page plays and the PDF prints: blocks end up scattered, then a refusal."""
    bs = block_size
    ops = [
        {"op": "add", "seq": "A", "tokens": 2 * bs + max(1, bs // 2)},
        {"op": "add", "seq": "B", "tokens": bs + max(1, bs // 2)},
        {"op": "grow", "seq": "A", "tokens": bs},
        {"op": "add", "seq": "C", "tokens": 3 * bs + 1},
        {"op": "finish", "seq": "B"},
        {"op": "add", "seq": "D", "tokens": 2 * bs},
        {"op": "grow", "seq": "C", "tokens": bs},
        {"op": "finish", "seq": "A"},
        {"op": "add", "seq": "E", "tokens": (num_blocks - 2) * bs},
    ]
    # On a small pool some adds are refused; later steps of a refused sequence are dropped.
    return _drop_refused_names({"numBlocks": num_blocks, "blockSize": block_size, "ops": ops})


def describe(step: dict, state: dict, before: dict | None, block_size: int) -> str:
    name, tokens = step["seq"], step.get("tokens", 0)
    if step["op"] == "add":
        text = f"add {name}: {tokens}-token prompt"
    elif step["op"] == "grow":
        text = f"grow {name} by {tokens} token{'s' if tokens != 1 else ''}"
    else:
        return f"finish {name}"
    if not state["ok"]:
        have = len(before["freeList"]) if before else "?"
        return text + f" (refused: not enough free blocks, {have} free)"
    return text


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    """Refusals and acceptances both happen, or the comparison would prove little."""
    outcomes = [state["ok"] for states in all_states for state in states]
    return {"an operation refused for want of blocks": False in outcomes,
            "more operations accepted than refused": outcomes.count(True) > outcomes.count(False)}


def data(params: dict) -> dict:
    return {"numBlocks": params["blocks"], "blockSize": params["block-size"],
            "example": example(params["blocks"], params["block-size"])}


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The example run through the engine, as a trace table."""
    scenario = payload["example"]
    states = replay(scenario)
    table = nodes.table(classes=["nb-sim-trace"])
    group = nodes.tgroup(cols=4)
    table += group
    for width in (6, 30, 40, 34):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body

    def row(cells, into):
        r = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", cell)
            r += entry
        into += r

    row(["Step", "Operation", "Block tables (tokens)", "Free list, front first"], head)
    before = None
    for number, (step, state) in enumerate(zip(scenario["ops"], states, strict=True), start=1):
        tables = "; ".join(f"{n}: {t} ({state['tokens'][n]})" for n, t in state["tables"].items())
        free = " ".join(map(str, state["freeList"])) or "(empty)"
        row([str(number), describe(step, state, before, scenario["blockSize"]), tables or "(none)",
             free], body)
        before = state
    caption = nodes.paragraph(
        "", f"The example run of the allocator on a pool of {scenario['numBlocks']} blocks of "
        f"{scenario['blockSize']} tokens, computed by the engine's BlockManager (prefix caching "
        "off) when this book was built.", classes=["nb-sim-trace-caption"])
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
