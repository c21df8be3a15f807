"""Tiny random checkpoints shared by the engine tests (written once per test process).

Weights are drawn with std 0.1 rather than the usual 0.02 so that the logits of these
tiny models are spread out: greedy decoding then has clear winners, and comparisons of
greedy outputs test the engine rather than float rounding on near ties.
"""

import functools
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from nanovllm.engine.model_runner import prepare
from nanovllm.utils.random_checkpoint import PRESETS, write_random_checkpoint

# Models this small gain nothing from intra-op threads, and idle OpenMP threads spinning
# on a busy 2-core machine can make the suite ten times slower.
torch.set_num_threads(1)

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


def packed_logits(runner, token_lists):
    """Logits of every position of every prompt, as one packed prefill step."""
    seqs, next_block = [], 0
    for tokens in token_lists:
        count = -(-len(tokens) // runner.block_size)
        seqs.append(SimpleNamespace(token_ids=tokens, num_computed_tokens=0,
                                    block_table=list(range(next_block, next_block + count))))
        next_block += count
    batch = SimpleNamespace(seqs=seqs, num_new_tokens=[len(t) for t in token_lists],
                            is_prefill=[True] * len(seqs), do_sample=[True] * len(seqs))
    with torch.inference_mode():
        inputs = prepare(batch, runner.block_size).to(runner.device)
        return runner.model.compute_logits(runner.model(inputs))
