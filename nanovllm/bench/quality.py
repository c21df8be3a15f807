"""What an 8-bit KV cache costs in quality, measured through the engine's own cache.

Two measurements of one model with its cache in the model's dtype and in fp8
(``kv_cache_dtype``), each through the engine (``SamplingParams(prompt_logprobs=True)``,
``engine/scoring.py``), so the numbers include every rounding the engine's cache makes:

* **perplexity** on a text, ``exp(-mean log p(token | tokens before))``: the text is
  tokenised once and cut into windows of ``window`` tokens, each scored from its start
  (so every token after a window's first is predicted from up to ``window - 1`` before it);
* **greedy agreement**: the same prompts (windows of the text), ``new_tokens`` greedy tokens
  each; for every prompt, how many of its tokens match before the first that differs.

A third run stores the cache in fp8 with one fixed scale of 1 for every row, the scheme the
engine rejected (``layers/fp8.py``), on the torch path only: the kernels know one scheme.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch

from nanovllm.bench.record import environment
from nanovllm.layers import fp8
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams

TEXT = Path(__file__).resolve().parents[2] / "tests" / "data" / "romeo_and_juliet_validation.txt"


@contextlib.contextmanager
def fixed_scale():
    """fp8 rows stored as ``row`` itself rounded, scale 1 for all: the rejected scheme."""
    original = fp8.quantize

    def quantize(rows):
        return rows.float().clamp(-fp8.FP8_MAX, fp8.FP8_MAX).to(fp8.FP8), torch.ones(
            rows.shape[:-1], dtype=torch.float32, device=rows.device)

    fp8.quantize = quantize
    try:
        yield
    finally:
        fp8.quantize = original


def windows(tokens: list[int], size: int) -> list[list[int]]:
    """The text in pieces of ``size`` tokens (a last piece of one token has nothing to score)."""
    pieces = [tokens[i:i + size] for i in range(0, len(tokens), size)]
    return [piece for piece in pieces if len(piece) > 1]


def measure(llm: LLM, texts: list[list[int]], prompts: list[list[int]], new_tokens: int) -> dict:
    score = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=True)
    logprobs = [lp for out in llm.generate(texts, score, use_tqdm=False)
                for lp in out.prompt_logprobs[1:]]
    greedy = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    completions = [out.token_ids for out in llm.generate(prompts, greedy, use_tqdm=False)]
    return {"perplexity": math.exp(-sum(logprobs) / len(logprobs)),
            "scored_tokens": len(logprobs), "completions": completions}


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    """Tokens matching before the first difference, per prompt, and in all."""
    leading = []
    for x, y in zip(a, b, strict=True):
        pairs = enumerate(zip(x, y, strict=False))  # a completion may end early (EOS)
        same = next((i for i, (s, t) in pairs if s != t), min(len(x), len(y)))
        leading.append(same)
    total = sum(len(x) for x in a)
    return {"identical_prompts": sum(n == len(x) for n, x in zip(leading, a, strict=True)),
            "prompts": len(a), "matching_tokens": sum(leading), "tokens": total,
            "share": sum(leading) / total}


def run_quality(model: str = "", device: str = "auto", dtype: str = "auto", window: int = 256,
                num_prompts: int = 32, prompt_len: int = 32, new_tokens: int = 64,
                out_dir: str | Path | None = None) -> dict:
    variants = {"auto": ("auto", contextlib.nullcontext), "fp8": ("fp8", contextlib.nullcontext),
                "fp8-fixed-scale": ("fp8", fixed_scale)}
    results, setup = {}, None
    for name, (kind, scheme) in variants.items():
        if name == "fp8-fixed-scale" and setup is not None and setup["device"] == "cuda":
            continue  # the GPU kernels compute each row's scale; nothing to patch there
        # closed as soon as measured: its cache would leave the next one no room on a GPU
        with LLM(model, device=device, dtype=dtype, kv_cache_dtype=kind, overlap_steps=False,
                 max_model_len=max(window, prompt_len + new_tokens) + 1) as llm:
            runner = llm.engine.model_runner
            if setup is None:
                tokens = llm.engine.tokenize(TEXT.read_text(encoding="utf-8"))
                texts = windows(tokens, window)
                step = max(1, (len(tokens) - prompt_len) // num_prompts)
                prompts = [tokens[i:i + prompt_len] for i in range(0, step * num_prompts, step)]
                setup = {"text": TEXT.name, "text_tokens": len(tokens), "window": window,
                         "num_prompts": len(prompts), "prompt_len": prompt_len,
                         "new_tokens": new_tokens, "device": runner.device.type,
                         "dtype": str(runner.dtype).removeprefix("torch."),
                         "model": Path(model).name if model else "(bundled tiny model)"}
            with scheme():
                results[name] = measure(llm, texts, prompts, new_tokens)
            results[name]["num_kvcache_blocks"] = runner.num_blocks
    base = results["auto"]
    summary = {name: {"perplexity": r["perplexity"],
                      "perplexity_vs_auto": r["perplexity"] / base["perplexity"] - 1,
                      "scored_tokens": r["scored_tokens"],
                      "num_kvcache_blocks": r["num_kvcache_blocks"],
                      "greedy_agreement_with_auto": agreement(base["completions"],
                                                              r["completions"])}
               for name, r in results.items()}
    record = {"kind": "kv-cache-quality", "setup": setup, "results": summary,
              "environment": environment()}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"quality_{setup['device']}_{setup['dtype']}.json").write_text(
            json.dumps(record, indent=2) + "\n")
    return record
