"""Tiny random checkpoints shared by the engine tests (written once per test process).

Weights are drawn with std 0.1 rather than the usual 0.02 so that the logits of these
tiny models are spread out: greedy decoding then has clear winners, and comparisons of
greedy outputs test the engine rather than float rounding on near ties.
"""

import functools
import tempfile
from pathlib import Path

from nanovllm.utils.random_checkpoint import PRESETS, write_random_checkpoint

_ROOT = Path(tempfile.mkdtemp(prefix="nanovllm-test-models-"))

VARIANTS = {
    "qwen3": {},
    "qwen3-tied": {"tie_word_embeddings": True},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "attention_bias": True},
    "llama": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "attention_bias": False},
}


@functools.cache
def tiny_checkpoint(variant: str = "qwen3", dtype: str = "float32") -> Path:
    config = {**PRESETS["tiny"], **VARIANTS[variant]}
    folder = _ROOT / f"{variant}-{dtype}"
    # small shards, so that every test also loads a multi-file checkpoint
    return write_random_checkpoint(folder, config, dtype=dtype, seed=0, std=0.1,
                                   max_shard_bytes=200_000)
