"""The KV-memory calculator of chapter 1: how much memory the keys and values of a
conversation take, and how many conversations fit on a GPU.

For a model (the book's configurations under ``source/_data/models/`` and the bundled model),
a dtype, a context length and a number of conversations, ``_static/sim/kv-memory/logic.js``
computes the KV bytes per token (``2 x layers x KV heads x head size x bytes``, the formula of
``kv_bytes_per_token``), the bytes of all the conversations, and what is left for them on each
GPU below once the engine's share of the memory (``gpu_memory_utilization``, by default 0.9)
has room for the weights. Activations, which the engine measures at start-up, are left out.
The book counts the weights of dense models only: for a mixture of experts (Qwen3-30B-A3B)
there is no room to compare with, so no GPU gets a verdict.

The GPUs and their memories are cited in ``source/references.md``; the calculator counts in
GB of 10^9 bytes, as the datasheets do. The cards report a little more than their datasheets
(``nvidia-smi`` in the bench records), and the engine sizes its cache from what the card
reports, so it holds a few percent more than the calculator shows.

``replay(scenario)`` computes the same numbers with the book's value functions
(``kv_bytes_per_token``, ``weight_bytes``): the logic test compares them on generated settings,
and ``tests/ext/test_kv_memory.py`` compares the per-token formula for every configuration and
every dtype the values know.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from types import SimpleNamespace

from docutils import nodes

from . import Param, Widget, printed

ROOT = Path(__file__).resolve().parents[3]  # the repository: conf.py, nanovllm/, source/
MODEL_DIR = "source/_data/models"
BUNDLED = {"tiny-shakespeare": "nanovllm/data/tiny-shakespeare"}
DTYPES = ("bfloat16", "float16", "float32")  # the dtypes the engine runs in (Config.dtype)

# name, memory in bytes, the entry of source/references.md that gives it
GPUS = (
    {"name": "H100 SXM", "bytes": 80 * 10**9, "ref": "ref-h100-datasheet"},
    {"name": "H200 SXM", "bytes": 141 * 10**9, "ref": "ref-h200-datasheet"},
    {"name": "RTX 4070 Laptop GPU", "bytes": 8 * 10**9, "ref": "ref-nano-vllm-benchmark"},
)


def value_context():
    from nanobook.values import ValueContext

    config = SimpleNamespace(nanobook_models=BUNDLED, nanobook_model_dirs=[MODEL_DIR],
                             nanobook_engine_packages=["nanovllm"])
    return ValueContext(ROOT, config)


def model_names() -> list[str]:
    found = sorted(p.parent.relative_to(ROOT / MODEL_DIR).as_posix()
                   for p in (ROOT / MODEL_DIR).glob("*/*/config.json"))
    return [*BUNDLED, *found]


@functools.lru_cache(maxsize=1)
def utilization() -> float:
    from nanovllm.config import Config

    return Config().gpu_memory_utilization


def weights(ctx, model: str, dtype: str) -> int | None:
    """Bytes of the weights in ``dtype``; None for a model the roofline does not count (a
    mixture of experts)."""
    from nanobook.model_values import weight_bytes

    try:
        return weight_bytes(ctx, model, dtype)
    except ValueError as error:
        if "mixture-of-experts" in str(error):
            return None
        raise


def model_entry(ctx, name: str) -> dict:
    cfg = ctx.model_config(name)
    heads = cfg["num_attention_heads"]
    return {
        "name": name,
        "bundled": name in BUNDLED,
        "layers": cfg["num_hidden_layers"],
        "kvHeads": cfg.get("num_key_value_heads") or heads,
        "headDim": cfg.get("head_dim") or cfg["hidden_size"] // heads,
        "dtype": cfg.get("torch_dtype") or cfg.get("dtype") or "float32",
        "weights": {dtype: weights(ctx, name, dtype) for dtype in DTYPES},
    }


def data(params: dict) -> dict:
    from nanobook.values import DTYPE_BYTES

    ctx = value_context()
    models = [model_entry(ctx, name) for name in model_names()]
    if params["model"] not in {m["name"] for m in models}:
        from . import ParamError

        raise ParamError(f":model: {params['model']!r} is not one of "
                         f"{', '.join(m['name'] for m in models)}")
    return {"models": models, "gpus": list(GPUS), "dtypes": list(DTYPES),
            "dtypeBytes": {d: DTYPE_BYTES[d] for d in DTYPES}, "utilization": utilization(),
            "initial": {"model": params["model"], "dtype": "bfloat16",
                        "context": params["context"], "requests": params["requests"]}}


# -- the Python side of the logic test ------------------------------------------------------------

def plan(ctx, settings: dict) -> dict:
    """What the page shows for one setting, from the book's value functions."""
    from nanobook.values import kv_bytes_per_token

    per_token = kv_bytes_per_token(ctx, settings["model"], settings["dtype"])
    per_conversation = per_token * settings["context"]
    weight = weights(ctx, settings["model"], settings["dtype"])
    gpus = []
    for gpu in GPUS:
        usable = int(gpu["bytes"] * utilization())
        if weight is None:  # weights not counted: nothing to say about what fits
            gpus.append({"name": gpu["name"], "usable": usable, "room": None, "fits": None,
                         "all": None})
            continue
        room = usable - weight
        gpus.append({"name": gpu["name"], "usable": usable, "room": room,
                     "fits": max(0, room // per_conversation) if room > 0 else 0,
                     "all": per_conversation * settings["requests"] <= room})
    return {"perToken": per_token, "perConversation": per_conversation,
            "total": per_conversation * settings["requests"], "weights": weight, "gpus": gpus}


def replay(scenario: dict) -> list[dict]:
    ctx = value_context()
    return [plan(ctx, settings) for settings in scenario["settings"]]


@functools.lru_cache(maxsize=1)
def _page_data() -> str:
    import json

    return json.dumps(data({key: p.default for key, p in PARAMS.items()}))


def scenarios(seed: int, count: int) -> list[dict]:
    """Random settings: every model and dtype, contexts from one token to a million, crowds."""
    import json

    rng = random.Random(seed)
    page = json.loads(_page_data())
    names = [m["name"] for m in page["models"]]
    out = []
    for _ in range(count):
        settings = [{"model": rng.choice(names), "dtype": rng.choice(DTYPES),
                     "context": rng.choice([1, 2, 512, 4096, 32768, 131072, 1 << 20,
                                            rng.randint(1, 200000)]),
                     "requests": rng.choice([1, 8, 64, 256, rng.randint(1, 4096)])}
                    for _ in range(rng.randint(8, 16))]  # a reader trying one setting after another
        out.append({"data": page, "settings": settings})
    return out


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    gpus = [g for states in all_states for s in states for g in s["gpus"]
            if s["weights"] is not None]
    return {"a model whose weights alone do not fit": any(g["room"] <= 0 for g in gpus),
            "requests that fit": any(g["all"] for g in gpus),
            "requests that do not fit": any(not g["all"] and g["room"] > 0 for g in gpus),
            "a mixture of experts": any(s["weights"] is None for st in all_states for s in st)}


# -- the PDF ------------------------------------------------------------------------------------

def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The per-token bytes of every model, and how many conversations fit on each GPU."""
    ctx = value_context()
    context = params["context"]
    rows = []
    for model in payload["models"]:
        result = plan(ctx, {"model": model["name"], "dtype": "bfloat16", "context": context,
                            "requests": 1})
        fits = [NO_VERDICT if g["room"] is None else "weights do not fit" if g["room"] <= 0
                else f"{g['fits']:,}" for g in result["gpus"]]
        rows.append([shown_name(model["name"]), f"{result['perToken']:,}", *fits])
    table = printed.table(
        [30, 16] + [18] * len(GPUS),
        ["Model (bfloat16)", "KV bytes per token"] + [g["name"] for g in GPUS], rows,
        ["nb-kv-table"])
    caption = printed.caption(
        f"How many conversations of {context:,} tokens each GPU can hold, for every model "
        f"the calculator knows; {NO_VERDICT} for a mixture of experts, whose weights the book "
        "does not count.")
    return [caption, table]


NO_VERDICT = "—"


def shown_name(model: str) -> str:
    """A model's name as the calculator lists it: the bundled model says that it is."""
    return f"{model} (the bundled model)" if model in BUNDLED else model


PARAMS = {
    "model": Param(str, "Qwen/Qwen3-0.6B", help="the model shown first"),
    "context": Param(int, 4096, 1, 1 << 20, "tokens per conversation"),
    "requests": Param(int, 64, 1, 4096, "conversations at once"),
}

WIDGET = Widget(
    name="kv-memory",
    title="KV-memory calculator",
    view="sim/kv-memory/view.js",
    logic="sim/kv-memory/logic.js",
    params=PARAMS,
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/kv-memory/style.css",),
    engine_modules=("nanovllm.bench.roofline", "nanovllm.models.model_config", "nanovllm.config"),
    engine_files=("source/_data/models/*/*/config.json", "nanovllm/data/*/config.json"),
)
