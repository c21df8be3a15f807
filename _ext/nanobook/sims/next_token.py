"""The next-token stepper of chapter 1: the autoregressive loop, one step per press.

Each step shows the five most likely next tokens with their probabilities, appends the chosen
one, and grows the KV cache by one token in every layer. For the first three steps the reader
picks any of the three most likely tokens (27 paths); every path then continues greedily.
Nothing is typed by hand: when the book is built, the bundled model runs every prefix of
every path through the engine's own model (``ModelRunner.model`` on the plain CPU path) and
the page gets each step's five most likely tokens, keyed by the choices that led there.

``replay(scenario)`` computes a path's steps again with the engine, independently of the page
data; ``_static/sim/next-token/logic.js`` walks the page data. The logic test compares the two
on generated paths, step by step, and ``tests/ext/test_next_token.py`` checks that the greedy
path is what ``LLM.generate`` produces at temperature 0.

The probabilities are the softmax of the logits (temperature 1), rounded to six decimals.
"""

from __future__ import annotations

import functools
import random
from types import SimpleNamespace

from docutils import nodes

from . import Param, ParamError, Widget, printed

TOP = 5  # tokens shown at each step
BRANCHES = 3  # of which the reader may pick any of the first three ...
BRANCH_STEPS = 3  # ... at each of the first three steps
DEFAULT_PROMPT = "ROMEO:\nBut soft, what light"


MAX_BATCH = 32  # prefixes computed in one forward pass


@functools.lru_cache(maxsize=1)
def engine():
    """One engine on the bundled model for every page and test: the weights load once."""
    from nanovllm.engine.llm_engine import LLMEngine

    return LLMEngine(device="cpu", enforce_eager=True, num_kvcache_blocks=128, block_size=16,
                     enable_prefix_caching=False)


_TOPS: dict[tuple[int, ...], tuple[tuple[int, float], ...]] = {}


def compute_tops(prefixes: list[tuple[int, ...]]) -> None:
    """The five most likely next tokens after each prefix, and their probabilities.

    Each prefix goes through the model as one prefill (the plain path of
    ``model_runner.prepare``), up to ``MAX_BATCH`` of them in one forward pass, as the
    engine batches sequences; the results are kept, so every prefix is computed once.
    """
    import torch

    todo = list(dict.fromkeys(p for p in prefixes if p not in _TOPS))
    threads = torch.get_num_threads()
    # The tiny model's matrices are too small to share out: on a busy machine more threads
    # only wait on each other (on a loaded 2-core machine, twenty times slower).
    torch.set_num_threads(1)
    try:
        for start in range(0, len(todo), MAX_BATCH):
            _compute_batch(todo[start:start + MAX_BATCH])
    finally:
        torch.set_num_threads(threads)


def _compute_batch(chunk: list[tuple[int, ...]]) -> None:
    import torch

    from nanovllm.engine.model_runner import prepare

    runner = engine().model_runner
    block_size = runner.block_size
    seqs, first = [], 0
    for ids in chunk:
        blocks = -(-len(ids) // block_size)
        seqs.append(SimpleNamespace(token_ids=list(ids), num_computed_tokens=0,
                                    block_table=list(range(first, first + blocks))))
        first += blocks
    if first > runner.num_blocks:
        raise ParamError(f"paths of up to {max(map(len, chunk))} tokens need more than the "
                         f"{runner.num_blocks * block_size} tokens of the stepper's cache")
    batch = SimpleNamespace(seqs=seqs, num_new_tokens=[len(ids) for ids in chunk],
                            do_sample=[True] * len(chunk))
    with torch.inference_mode():
        inputs = prepare(batch, block_size).to(runner.device)
        hidden = runner.model(inputs)
        logits = runner.model.compute_logits(hidden[inputs.sample_rows])
        top = logits.float().softmax(dim=-1).topk(TOP)
    for ids, values, indices in zip(chunk, top.values.tolist(), top.indices.tolist(),
                                    strict=True):
        _TOPS[ids] = tuple((int(i), round(float(p), 6)) for p, i in zip(values, indices,
                                                                         strict=True))


def top_tokens(ids: tuple[int, ...]) -> tuple[tuple[int, float], ...]:
    if ids not in _TOPS:
        compute_tops([ids])
    return _TOPS[ids]


def path_key(ranks: list[int]) -> str:
    return ".".join(map(str, ranks))


def walk(prompt_ids: list[int], choices: list[int], steps: int) -> list[dict]:
    """The states of one path: step k shows the top tokens after the prompt and the k - 1
    tokens chosen before, takes the one at rank ``choices[k - 1]`` (0 once choices run out),
    and leaves the prompt and those k - 1 tokens in the KV cache."""
    ids, ranks, states = list(prompt_ids), [], []
    for step in range(steps):
        top = top_tokens(tuple(ids))
        rank = choices[step] if step < len(choices) else 0
        states.append({"key": path_key(ranks), "top": [list(t) for t in top], "rank": rank,
                       "chosen": top[rank][0], "kvTokens": len(ids)})
        ids.append(top[rank][0])
        ranks.append(rank)
    return states


def build(prompt: str, steps: int) -> dict:
    """Every step of the 27 paths: {path key: top tokens}, and the text of every token seen."""
    tokenizer = engine().tokenizer
    prompt_ids = tokenizer.encode(prompt)
    paths = {(): prompt_ids}  # ranks taken -> the tokens so far; computed a step at a time
    for step in range(steps):
        compute_tops([tuple(ids) for ids in paths.values()])
        ranks = range(BRANCHES) if step < BRANCH_STEPS else range(1)
        paths = {(*taken, r): [*ids, top_tokens(tuple(ids))[r][0]]
                 for taken, ids in paths.items() for r in ranks}
    tops: dict[str, list] = {}
    for first in range(BRANCHES):
        for second in range(BRANCHES):
            for third in range(BRANCHES):
                for state in walk(prompt_ids, [first, second, third], steps):
                    tops[state["key"]] = state["top"]
    seen = {t for top in tops.values() for t, _ in top}
    config = engine().model_config
    runner = engine().model_runner
    return {
        "prompt": prompt,
        "promptIds": prompt_ids,
        "steps": steps,
        "branchSteps": BRANCH_STEPS,
        "branches": BRANCHES,
        "tops": tops,
        "tokenText": {str(t): tokenizer.decode([t]) for t in sorted(seen | set(prompt_ids))},
        "layers": config.num_hidden_layers,
        "kvBytesPerToken": (2 * config.num_hidden_layers * config.num_key_value_heads
                            * config.head_dim * runner.dtype.itemsize),
        "dtype": str(runner.dtype).removeprefix("torch."),
    }


def data(params: dict) -> dict:
    if not params["prompt"].strip():
        raise ParamError(":prompt: is empty; give the text the model continues")
    return build(params["prompt"], params["steps"])


# -- the Python side of the logic test ------------------------------------------------------------

def replay(scenario: dict) -> list[dict]:
    """A path's states computed by the engine anew (the page data is not read)."""
    ids = engine().tokenizer.encode(scenario["data"]["prompt"])
    return walk(ids, scenario["choices"], scenario["stepsShown"])


@functools.lru_cache(maxsize=1)
def _default_data() -> str:
    import json

    return json.dumps(build(DEFAULT_PROMPT, PARAMS["steps"].default))


def scenarios(seed: int, count: int) -> list[dict]:
    """Paths of the default page: every choice of the first three steps, any number of steps."""
    import json

    rng = random.Random(seed)
    page = json.loads(_default_data())
    out = []
    for i in range(count):
        choices = ([i % 3, i // 3 % 3, i // 9 % 3] if i < 27
                   else [rng.randrange(BRANCHES) for _ in range(BRANCH_STEPS)])
        out.append({"data": page, "choices": choices,
                    "stepsShown": page["steps"] if i < 27 or rng.random() < 0.6
                    else rng.randint(1, page["steps"])})
    return out


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    ends = {states[BRANCH_STEPS]["key"] for states in all_states if len(states) > BRANCH_STEPS}
    return {"all 27 paths walked past their third choice": len(ends) == BRANCHES ** BRANCH_STEPS,
            "a path walked to its last step": any(len(s) == PARAMS["steps"].default
                                                  for s in all_states)}


# -- the PDF ------------------------------------------------------------------------------------

def shown(text: str) -> str:
    return text.replace(" ", "␣").replace("\n", "↵")


def breaks(text: str) -> str:
    """Running text with its line breaks shown, and its spaces left as spaces to break at."""
    return text.replace("\n", "↵")


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The greedy path as a table: each step's five most likely tokens, the one taken, and the
    tokens the KV cache holds in every layer once the step has run."""
    token_text = payload["tokenText"]
    states = walk(payload["promptIds"], [], payload["steps"])
    rows = []
    for number, state in enumerate(states, start=1):
        top = ", ".join(f"{shown(token_text[str(t)])} {p:.0%}" for t, p in state["top"])
        rows.append([str(number), top, shown(token_text[str(state["chosen"])]),
                     str(state["kvTokens"])])
    table = printed.table(
        (8, 64, 14, 14), ["Step", "Five most likely next tokens", "Taken", "KV cache (tokens)"],
        rows, ["nb-nt-table"])
    text = "".join(token_text[str(s["chosen"])] for s in states)
    caption = printed.caption(
        f"The greedy path: the bundled model continues “{breaks(payload['prompt'])}” with "
        f"“{breaks(text)}”. The last column is what the KV cache holds in each of the model's "
        f"{payload['layers']} layers once the step has run. ␣ is a space, ↵ a line break.")
    return [caption, table]


PARAMS = {
    "prompt": Param(str, DEFAULT_PROMPT, help="the text the model continues"),
    "steps": Param(int, BRANCH_STEPS + 12, BRANCH_STEPS + 12, 40,
                   "steps in every path: three with a choice, then greedy ones"),
}

WIDGET = Widget(
    name="next-token",
    title="Next-token stepper",
    view="sim/next-token/view.js",
    logic="sim/next-token/logic.js",
    params=PARAMS,
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/next-token/style.css",),
    engine_modules=("nanovllm.engine.llm_engine", "nanovllm.engine.model_runner"),
    engine_files=("nanovllm/data/**/*",),
)
