"""Config and SamplingParams: defaults are valid, every bad value names its field."""

from __future__ import annotations

import dataclasses
import re

import pytest

from nanovllm import Config, SamplingParams


def test_config_defaults_match_the_contract():
    c = Config()
    assert (c.model, c.max_num_batched_tokens, c.max_num_seqs, c.max_model_len) == ("", 8192, 256,
                                                                                    4096)
    assert (c.block_size, c.num_kvcache_blocks, c.tensor_parallel_size, c.seed) == (16, 0, 1, 0)
    assert c.enable_prefix_caching and c.enable_chunked_prefill and not c.enforce_eager
    assert (c.gpu_memory_utilization, c.cpu_kvcache_gib, c.dtype, c.device) == (0.9, 0.25, "auto",
                                                                                "auto")


@pytest.mark.parametrize("field, value", [
    ("model", None),
    ("max_num_batched_tokens", 0), ("max_num_batched_tokens", 8.0),
    ("max_num_seqs", 0), ("max_num_seqs", True),
    ("max_model_len", 1),
    ("block_size", 0), ("block_size", 12), ("block_size", 16.0),
    ("num_kvcache_blocks", -1),
    ("enable_prefix_caching", 1), ("enable_chunked_prefill", "no"), ("enforce_eager", None),
    ("gpu_memory_utilization", 0), ("gpu_memory_utilization", 1.5),
    ("gpu_memory_utilization", float("nan")),
    ("cpu_kvcache_gib", 0), ("cpu_kvcache_gib", float("inf")),
    ("tensor_parallel_size", 0),
    ("dtype", "fp8"), ("device", "mps"), ("seed", 1.5),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match="^" + re.escape(f"{field}={value!r} is invalid: ")):
        Config(**{field: value})


def test_config_accepts_edge_values():
    Config(block_size=1, max_model_len=2, gpu_memory_utilization=1, num_kvcache_blocks=0)


def test_without_chunked_prefill_the_budget_must_hold_the_longest_sequence():
    Config(enable_chunked_prefill=False, max_num_batched_tokens=64, max_model_len=64)
    message = "max_num_batched_tokens=63 is invalid: with enable_chunked_prefill=False it must be"
    with pytest.raises(ValueError, match=message + r" >= max_model_len \(64\)"):
        Config(enable_chunked_prefill=False, max_num_batched_tokens=63, max_model_len=64)


def test_sampling_params_defaults_match_the_contract():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.max_tokens) == (1.0, -1, 1.0, 64)
    assert (p.ignore_eos, p.seed, p.stop_token_ids) == (False, None, ())


@pytest.mark.parametrize("field, value", [
    ("temperature", -0.1), ("temperature", float("nan")), ("temperature", "0"),
    ("top_k", -2), ("top_k", 2.0),
    ("top_p", 0), ("top_p", 1.01),
    ("max_tokens", 0), ("max_tokens", False),
    ("ignore_eos", "yes"),
    ("seed", -1), ("seed", 1.0),
    ("stop_token_ids", 5), ("stop_token_ids", [1, -2]), ("stop_token_ids", "ab"),
])
def test_sampling_params_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match="^" + re.escape(f"{field}={value!r} is invalid: ")):
        SamplingParams(**{field: value})


def test_sampling_params_edge_values_and_frozen():
    p = SamplingParams(temperature=0, top_k=0, top_p=1, max_tokens=1, seed=0, stop_token_ids=[3])
    assert p.stop_token_ids == (3,)  # stored as a tuple: immutable and hashable
    assert hash(p) == hash(SamplingParams(temperature=0, top_k=0, top_p=1, max_tokens=1, seed=0,
                                          stop_token_ids=(3,)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_tokens = 5


def test_package_exports_without_torch():
    import subprocess
    import sys

    code = ("import sys, nanovllm, nanovllm.engine.scheduler, nanovllm.engine.trace; "
            "assert 'torch' not in sys.modules; print(sorted(nanovllm.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['Config', 'LLM', 'SamplingParams']"
