"""``{value}`` functions about a model's size and the cost of a step, from the engine's roofline.

Chapters 1 and 6 count a model's parameters and weight bytes, and the bytes and FLOPs of a
decode or a prefill step. Every count comes from ``nanovllm/bench/roofline.py`` (the formulas
the benchmark's bound uses), applied to a model's ``config.json``, so the book and the
benchmark cannot disagree and the page is read again when either changes.

=============================================  ==============================================
``param_count:MODEL[,PART]``                   parameters; PART is ``total`` (default),
                                               ``embedding``, ``layer_matrices``,
                                               ``layer_other``, ``final_norm`` or ``lm_head``
``weight_bytes:MODEL[,DTYPE]``                 all parameters stored in DTYPE (default: the
                                               config's own dtype)
``step_weight_bytes:MODEL[,DTYPE]``            weights one step reads (every layer, the final
                                               norm and the LM head)
``decode_step:MODEL,BATCH,CONTEXT,QUANTITY``   one decode step of BATCH sequences that each
                                               attend to CONTEXT tokens
``prefill_step:MODEL,BATCH,PROMPT,QUANTITY``   one step prefilling BATCH prompts of PROMPT
                                               tokens (each sampling its first token)
``hardware:GPU,QUANTITY``                      ``bandwidth`` (bytes/s), ``peak_flops``
                                               (FLOP/s) or ``ridge`` (FLOP per byte) of the
                                               datasheet figures roofline.py uses (H100, H200)
=============================================  ==============================================

QUANTITY of a step: ``bytes``, ``flops``, ``intensity`` (FLOPs per byte) or ``seconds-h100``
/ ``seconds-h200`` (the least time on that GPU). An optional last argument of a step gives
the dtype (default: the config's).

The roofline counts dense decoders. A mixture-of-experts config (Qwen3-30B-A3B) is refused
by name: its KV bytes per token (``kv_bytes_per_token``) are right, its parameter and FLOP
counts would not be. Rotary scaling (Llama 3.1's ``rope_type: llama3``) changes angles, not
sizes, so it is set aside before the engine's ``ModelConfig`` reads the shape.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .values import DTYPE_BYTES

PARTS = ("total", "embedding", "layer_matrices", "layer_other", "final_norm", "lm_head")
STEP_QUANTITIES = ("bytes", "flops", "intensity", "seconds-h100", "seconds-h200")
HARDWARE_QUANTITIES = ("bandwidth", "peak_flops", "ridge")


def _roofline(ctx):
    """The engine's roofline module; the page depends on it and on the config reader."""
    roofline = importlib.import_module("nanovllm.bench.roofline")
    model_config = importlib.import_module("nanovllm.models.model_config")
    ctx.note(Path(roofline.__file__))
    ctx.note(Path(model_config.__file__))
    return roofline, model_config.ModelConfig


def engine_config(ctx, model: str):
    """The roofline module and the engine's ``ModelConfig`` of a dense model's config.json."""
    roofline, model_config_class = _roofline(ctx)
    raw = ctx.model_config(model)
    architecture = (raw.get("architectures") or [raw.get("model_type") or "?"])[0]
    if "num_experts" in raw or "moe" in str(architecture).lower():
        raise ValueError(f"{model} is a mixture-of-experts model ({architecture}); roofline.py "
                         "counts the parameters and FLOPs of dense decoders only")
    shape = {k: v for k, v in raw.items() if k not in ("rope_scaling", "rope_parameters")}
    return roofline, model_config_class.from_dict(shape, source=f"{model} config.json")


def _dtype_bytes(config, dtype: str) -> int:
    dtype = dtype or config.torch_dtype
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def _count(text: str, what: str) -> int:
    if not (text.isdigit() and int(text) > 0):
        raise ValueError(f"{what} must be a positive whole number, got {text!r}")
    return int(text)


def param_count(ctx, model: str, part: str = "total") -> int:
    roofline, config = engine_config(ctx, model)
    if part not in PARTS:
        raise ValueError(f"part {part!r} is not one of {', '.join(PARTS)}")
    return roofline.parameter_count(config)[part]


def weight_bytes(ctx, model: str, dtype: str = "") -> int:
    roofline, config = engine_config(ctx, model)
    return roofline.parameter_count(config)["total"] * _dtype_bytes(config, dtype)


def step_weight_bytes(ctx, model: str, dtype: str = "") -> int:
    roofline, config = engine_config(ctx, model)
    return roofline.model_cost(config, _dtype_bytes(config, dtype)).weight_bytes_per_step


def _quantity(roofline, step: dict, quantity: str, seconds) -> object:
    if quantity == "bytes":
        return step["bytes"]
    if quantity == "flops":
        return step["flops"]
    if quantity == "intensity":
        return step["flops"] / step["bytes"]
    if quantity in ("seconds-h100", "seconds-h200"):
        return seconds(roofline.H100_SXM if quantity.endswith("h100") else roofline.H200_SXM)
    raise ValueError(f"quantity {quantity!r} is not one of {', '.join(STEP_QUANTITIES)}")


def decode_step(ctx, model: str, batch: str, context: str, quantity: str, dtype: str = ""):
    roofline, config = engine_config(ctx, model)
    cost = roofline.model_cost(config, _dtype_bytes(config, dtype))
    lens = [_count(context, "CONTEXT")] * _count(batch, "BATCH")
    step = roofline.decode_step_cost(cost, lens)
    return _quantity(roofline, step, quantity,
                     lambda hw: roofline.decode_step_bound(cost, lens, hw))


def prefill_step(ctx, model: str, batch: str, prompt: str, quantity: str, dtype: str = ""):
    roofline, config = engine_config(ctx, model)
    cost = roofline.model_cost(config, _dtype_bytes(config, dtype))
    lengths = [(_count(prompt, "PROMPT"), 1)] * _count(batch, "BATCH")
    tokens = sum(p for p, _ in lengths)  # one step: its token budget holds every prompt

    def bound(hw):
        return roofline.workload_bound(cost, lengths, hw, max_num_batched_tokens=tokens)

    result = bound(roofline.H100_SXM)
    step = {"bytes": result["total_bytes"], "flops": result["flops"]}
    return _quantity(roofline, step, quantity, lambda hw: bound(hw)["bound_time_s"])


def hardware(ctx, gpu: str, quantity: str) -> float:
    roofline, _ = _roofline(ctx)
    sheets = {"H100": roofline.H100_SXM, "H200": roofline.H200_SXM}
    if gpu not in sheets:
        raise ValueError(f"GPU {gpu!r} is not one of {', '.join(sheets)}")
    sheet = sheets[gpu]
    values = {"bandwidth": sheet.bandwidth, "peak_flops": sheet.peak_flops,
              "ridge": sheet.peak_flops / sheet.bandwidth}
    if quantity not in values:
        raise ValueError(f"quantity {quantity!r} is not one of {', '.join(HARDWARE_QUANTITIES)}")
    return values[quantity]


VALUES = {
    "param_count": param_count,
    "weight_bytes": weight_bytes,
    "step_weight_bytes": step_weight_bytes,
    "decode_step": decode_step,
    "prefill_step": prefill_step,
    "hardware": hardware,
}
