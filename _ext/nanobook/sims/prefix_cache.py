"""The prefix-cache explorer of chapter 7: type prompts, submit and finish them, and watch the
cache find, share, keep and finally reuse their blocks.

The reader's prompts are tokenized in the browser by the bundled model's own tokenizer
(``_static/sim/tokenizer/bpe.js`` reading a copy of its ``tokenizer.json``, tested against the
engine's tokenizer). The bookkeeping is ``_static/sim/prefix-cache/logic.js``: the engine's
``BlockManager`` with prefix caching on, its keys the engine's xxh64 keys (``xxh64.js``).

A scenario is ``{"numBlocks", "blockSize", "keyBits", "ops": [...]}`` with operations

* ``{"op": "submit", "seq": "A", "tokens": [ids]}``: the scheduler's admission of a waiting
  request whose whole prompt fits the step's budget: ``match_prefix``, then, if the pool has
  the free blocks (``num_blocks_needed``), ``allocate`` with the hits and the prompt computed;
  otherwise refused, changing nothing;
* ``{"op": "finish", "seq": "A"}``: ``free``.

``keyBits`` below 64 keeps the low bits of every key (the key function
``compute_block_key(t, p) & mask``), so that collisions, which 64-bit keys make rare, happen
in front of the reader. The state after each step: ``ok``, ``hits``, ``lookups`` (what the
lookup found block by block, up to its first miss), the block tables, each request's cached
tokens, ref counts, the free list, every block's key and whether the cache can find it.
"""

from __future__ import annotations

import random

from docutils import nodes

from . import Param, ParamError, Widget, printed
from .tokenizer_playground import TOKENIZER_URL, bundled_folder, static_files

KEY_BITS = (64, 8, 4)  # the widths the reader can choose; 64 is the engine's

# The example the page steps through and the PDF prints: two requests share a system prompt,
# both finish, a third revives the shared blocks, an unrelated prompt reuses the pool (the
# uncached blocks first, then the cached block freed longest ago), and the first prompt comes
# back to find all but the block that was reused.
SYSTEM = "You are Friar Laurence. Answer in one line, in verse.\n"
EXAMPLE = (
    ("submit", "A", SYSTEM + "Q: Where is Romeo?\nA:"),
    ("submit", "B", SYSTEM + "Q: Who loves Juliet?\nA:"),
    ("finish", "A", ""),
    ("finish", "B", ""),
    ("submit", "C", SYSTEM + "Q: What is in thy basket?\nA:"),
    ("submit", "D", "HAMLET: To be, or not to be, that is the question."),
    ("submit", "E", SYSTEM + "Q: Where is Romeo?\nA:"),
)


def key_function(bits: int):
    """The engine's key function, or its low ``bits`` bits."""
    from nanovllm.engine.block_manager import compute_block_key

    if bits == 64:
        return compute_block_key
    mask = (1 << bits) - 1
    return lambda tokens, prev: compute_block_key(tokens, prev) & mask


def hex_key(key: int | None) -> str | None:
    return None if key is None else f"{key:016x}"


def lookups(manager, seq) -> list[dict]:
    """What ``match_prefix`` finds for each full block it looks at, up to its first miss."""
    bs, steps, key, parent = manager.block_size, [], None, None
    for start in range(0, (seq.num_tokens - 1) // bs * bs, bs):
        tokens = tuple(seq.token_ids[start : start + bs])
        key = manager.key_function(tokens, key)
        found = manager.cached_blocks.get(key)
        copy = manager._cached_copy(key, tokens, parent)
        verdict = "hit" if copy else "no entry" if found is None else "other content"
        steps.append({"key": hex_key(key), "block": found, "verdict": verdict})
        if copy is None:
            break
        parent = copy.content
    return steps


class Run:
    """A scenario going through the engine's BlockManager, one operation at a time."""

    def __init__(self, num_blocks: int, block_size: int, key_bits: int):
        from nanovllm.engine.block_manager import BlockManager

        self.manager = BlockManager(num_blocks, block_size, enable_prefix_caching=True,
                                    key_function=key_function(key_bits))
        self.seqs: dict = {}
        self.next_id = 0

    def apply(self, step: dict) -> dict:
        from nanovllm.engine.sequence import Sequence

        manager, op, name = self.manager, step["op"], step["seq"]
        outcome = {"ok": True, "hits": [], "lookups": []}
        if op == "submit":
            seq = Sequence(step["tokens"], seq_id=self.next_id)
            outcome["lookups"] = lookups(manager, seq)
            hits = manager.match_prefix(seq)
            todo = seq.num_tokens - len(hits) * manager.block_size
            outcome["hits"] = list(hits)
            outcome["ok"] = manager.num_blocks_needed(seq, todo, hits) <= manager.num_free_blocks
            if outcome["ok"]:
                self.next_id += 1
                manager.allocate(seq, todo, hits)
                seq.num_computed_tokens += todo
                self.seqs[name] = seq
        elif op == "finish":
            manager.free(self.seqs.pop(name))
        else:
            raise ValueError(f"unknown operation {op!r}")
        return {**outcome, **self.snapshot()}

    def snapshot(self) -> dict:
        manager = self.manager
        return {
            "tables": {n: list(s.block_table) for n, s in self.seqs.items()},
            "cachedTokens": {n: s.num_cached_tokens for n, s in self.seqs.items()},
            "refCounts": [b.ref_count for b in manager.blocks],
            "freeList": list(manager.free_block_ids),
            "keys": [hex_key(b.key) for b in manager.blocks],
            "cached": [manager._is_cached(b) for b in manager.blocks],
        }


def replay(scenario: dict) -> list[dict]:
    """The scenario through the engine's BlockManager: the state after every step."""
    run = Run(scenario["numBlocks"], scenario["blockSize"], scenario["keyBits"])
    return [run.apply(step) for step in scenario["ops"]]


# -- generated scenarios --------------------------------------------------------------------------

def _name(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(65 + r) + letters
    return letters


def _prompt(rng: random.Random, prefixes: list[list[int]], earlier: list[list[int]],
            limit: int) -> list[int]:
    """A prompt like those a server sees: a shared system prompt and a question of its own, an
    earlier prompt continued (the next turn of a chat), an earlier prompt again, or new text.
    Token ids come from a small range, so blocks repeat by chance as well."""
    roll = rng.random()
    if earlier and roll < 0.2:
        tokens = list(rng.choice(earlier))
    elif earlier and roll < 0.4:
        tokens = rng.choice(earlier) + [rng.randint(1, 5) for _ in range(rng.randint(1, 9))]
    elif roll < 0.85:
        tokens = rng.choice(prefixes) + [rng.randint(1, 5) for _ in range(rng.randint(0, 9))]
    else:
        tokens = [rng.randint(1, 5) for _ in range(rng.randint(1, 12))]
    return (tokens or [rng.randint(1, 5)])[:limit]


def scenarios(seed: int, count: int) -> list[dict]:
    """Random scenarios: small pools (refusals, reuse of cached blocks), shared prefixes (hits
    on held and on free blocks), repeated prompts (the last block computed again), and
    narrow keys (collisions)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        block_size = rng.choice([1, 2, 4, 8])
        num_blocks = rng.randint(2, 24)
        key_bits = rng.choice([64, 64, 64, 64, 8, 4, 3])  # the reader's widths, and 3
        prefixes = [[rng.randint(1, 5) for _ in range(rng.randint(1, 3 * block_size))]
                    for _ in range(3)]
        run, alive, earlier, made, ops = Run(num_blocks, block_size, key_bits), [], [], 0, []
        for _ in range(rng.randint(1, 30)):
            if alive and rng.random() < 0.4:
                name = alive.pop(rng.randrange(len(alive)))
                step = {"op": "finish", "seq": name}
            else:
                name = _name(made)
                made += 1
                tokens = _prompt(rng, prefixes, earlier, num_blocks * block_size + block_size)
                step = {"op": "submit", "seq": name, "tokens": tokens}
                earlier.append(tokens)
            if run.apply(step)["ok"] and step["op"] == "submit":
                alive.append(name)
            ops.append(step)
        out.append({"numBlocks": num_blocks, "blockSize": block_size, "keyBits": key_bits,
                    "ops": ops})
    return out


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    """The cases the comparison must see for it to mean something."""
    steps = [state for states in all_states for state in states]
    reused = False
    for states in all_states:
        for before, after in zip(states, states[1:], strict=False):
            held = {b for table in after["tables"].values() for b in table}
            reused = reused or any(
                before["cached"][b] and b in before["freeList"] and b in held
                and after["keys"][b] != before["keys"][b] for b in range(len(before["keys"])))
    verdicts = {look["verdict"] for state in steps for look in state["lookups"]}
    return {
        "a hit on a block another request holds": any(
            state["ok"] and any(state["refCounts"][b] > 1 for b in state["hits"])
            for state in steps),
        "a hit that revives a free block": any(
            after["ok"] and any(b in before["freeList"] for b in after["hits"])
            for states in all_states for before, after in zip(states, states[1:], strict=False)),
        "a key that finds other content (a collision)": "other content" in verdicts,
        "a cached block reused for other content": reused,
        "a prompt refused for want of blocks": any(not state["ok"] for state in steps),
        "a key the cache no longer finds (a newer copy took it)": any(
            key is not None and not cached
            for state in steps for key, cached in zip(state["keys"], state["cached"],
                                                      strict=True)),
    }


# -- the page's data and the static form ---------------------------------------------------------

def example(num_blocks: int, block_size: int, key_bits: int) -> dict:
    """The example scenario, its prompts tokenized by the engine's tokenizer."""
    from nanovllm.utils.tokenizer import Tokenizer

    tokenizer = Tokenizer(bundled_folder())
    ops, texts = [], {}
    for op, name, text in EXAMPLE:
        if op == "submit":
            ops.append({"op": op, "seq": name, "tokens": tokenizer.encode(text)})
            texts[name] = text
        else:
            ops.append({"op": op, "seq": name})
    return {"numBlocks": num_blocks, "blockSize": block_size, "keyBits": key_bits, "ops": ops,
            "texts": texts}


def data(params: dict) -> dict:
    bs = params["block-size"]
    if bs & (bs - 1):
        raise ParamError(f":block-size: {bs} is not a power of two; the engine's Config takes "
                         "1, 2, 4, 8, 16 or 32 here")
    if params["key-bits"] not in KEY_BITS:
        raise ParamError(f":key-bits: {params['key-bits']} is not one of "
                         f"{', '.join(map(str, KEY_BITS))}")
    return {"numBlocks": params["blocks"], "blockSize": bs, "keyBits": params["key-bits"],
            "keyWidths": list(KEY_BITS), "tokenizer": TOKENIZER_URL,
            "example": example(params["blocks"], bs, params["key-bits"])}


def describe(step: dict, state: dict) -> str:
    name = step["seq"]
    if step["op"] == "finish":
        return f"finish {name}"
    tokens, hits = len(step["tokens"]), len(state["hits"])
    if not state["ok"]:
        return f"submit {name} ({tokens} tokens): refused, too few free blocks"
    return f"submit {name} ({tokens} tokens): {hits} blocks from the cache"


def prompt_list(texts: dict) -> str:
    """The example's prompts, each text once, the system prompt written out once as S."""
    names: dict[str, list[str]] = {}
    for name, text in texts.items():
        names.setdefault(text, []).append(name)
    shown = [f"S = “{SYSTEM}”"]
    for text, who in names.items():
        body = f"S + “{text[len(SYSTEM):]}”" if text.startswith(SYSTEM) else f"“{text}”"
        shown.append(f"{' and '.join(who)}: {body}")
    return "; ".join(shown).replace("\n", "↵")


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The example through the engine's BlockManager, as a table of steps."""
    scenario = payload["example"]
    states, rows = replay(scenario), []
    for number, (step, state) in enumerate(zip(scenario["ops"], states, strict=True), start=1):
        tables = "; ".join(f"{n}: {' '.join(map(str, t))}" for n, t in state["tables"].items())
        free = " ".join(f"{b}{'*' if state['cached'][b] else ''}" for b in state["freeList"])
        rows.append([str(number), describe(step, state), tables or "(none)", free or "(empty)"])
    table = printed.table(
        (6, 34, 32, 28), ["Step", "Operation", "Block tables", "Free list, front first (* cached)"],
        rows, ["nb-pc-steps"], colwidths_given=True)
    caption = printed.caption(
        f"The example on {scenario['numBlocks']} blocks of {scenario['blockSize']} tokens, "
        f"run by the engine's BlockManager at build time. Prompts: "
        f"{prompt_list(scenario['texts'])}")
    return [caption, table]


WIDGET = Widget(
    name="prefix-cache",
    title="Prefix-cache explorer",
    view="sim/prefix-cache/view.js",
    logic="sim/prefix-cache/logic.js",
    params={
        "blocks": Param(int, 16, 4, 64, "blocks in the pool"),
        "block-size": Param(int, 4, 1, 32, "tokens per block, a power of two"),
        "key-bits": Param(int, 64, 4, 64, "bits of each block key at the start: 64 (the engine's), 8 or 4"),
    },
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/prefix-cache/style.css",),
    engine_modules=("nanovllm.engine.block_manager", "nanovllm.engine.sequence",
                    "nanovllm.utils.tokenizer"),
    engine_files=("nanovllm/data/**/tokenizer*.json",),
    static_files=static_files,
)
