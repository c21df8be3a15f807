"""The roofline bound: the least time a workload can take, from its bytes and its FLOPs.

Whatever the engine does, every step must read the model's weights from GPU memory,
every new token must read the keys and values of the tokens it attends to and write
its own, and the multiply-adds must be done. With memory bandwidth ``B`` and peak
arithmetic rate ``F``, moving ``bytes`` and doing ``flops`` takes at least
``max(bytes / B, flops / F)`` even if the two overlap perfectly. Output tokens over
that time is the most tokens/s any engine of this design could reach; a measured
rate is reported as a fraction of it.

Counted, per model (``ModelCost``), with ``b`` bytes per number:

* weights read by one step: every layer's parameters, the final norm and the whole LM
  head (vocab x hidden, read in full whenever a token is sampled; the embedding lookup
  reads only a few rows and is left out): ``W`` bytes;
* K/V of one token: ``2 (K and V) x layers x kv_heads x head_dim x b`` bytes;
* FLOPs per computed token: ``2 x`` (parameters of the layers' matrices); per sampled
  token ``2 x vocab x hidden`` more for the LM head; per (query, key) pair attended
  ``4 x layers x heads x head_dim`` (``QK^T`` and ``PV``, a multiply-add each).

And per workload of requests with prompt ``P`` and output ``O`` tokens (the first
output token is sampled at the end of the prompt's prefill; each of the other ``O - 1``
is a decode step whose query, at position ``P + k - 1``, attends to ``P + k`` tokens):

* steps >= max(longest O, prompt tokens / token budget of a step); each reads ``W``;
* K/V read >= every prompt's K/V once (prefill) + ``sum_k (P + k)`` tokens (decode);
  K/V written = every computed token once;
* FLOPs = linear + LM head + attention, causal prefill attending to ``P (P + 1) / 2``
  pairs.

Activations, the sampler and the KV writes' read-modify-write are left out: small, and
leaving out only makes the bound looser (higher), never wrong.
"""

from dataclasses import asdict, dataclass

from nanovllm.layers.fp8 import SCALE_BYTES
from nanovllm.models.model_config import ModelConfig


@dataclass(frozen=True)
class Hardware:
    name: str
    bandwidth: float  # bytes / s
    peak_flops: float  # FLOP / s, dense, in the model's dtype
    source: str


# NVIDIA H100 Tensor Core GPU datasheet, SXM5 column (see references.md):
# 3.35 TB/s of HBM3; BF16 Tensor Core 1,979 TFLOP/s *with sparsity*, so 989 dense.
H100_SXM = Hardware("NVIDIA H100 SXM5 (datasheet)", 3.35e12, 989e12,
                    "NVIDIA H100 Tensor Core GPU datasheet: 3.35 TB/s, 989 TFLOP/s dense BF16")
# NVIDIA H200 Tensor Core GPU datasheet, SXM column: the same chip with 4.8 TB/s of HBM3e;
# the same 1,979 TFLOP/s BF16 with sparsity, 989 dense.
H200_SXM = Hardware("NVIDIA H200 SXM (datasheet)", 4.8e12, 989e12,
                    "NVIDIA H200 Tensor Core GPU datasheet: 4.8 TB/s, 989 TFLOP/s dense BF16")


def hardware_for(device_name: str) -> Hardware:
    """The datasheet to bound a run on this GPU: the H200's for an H200, else the H100's.

    The H100 is the GPU the targets are set for; on any other GPU the record's roofline
    names the H100 datasheet it was computed from, so nobody reads it as that GPU's bound.
    """
    return H200_SXM if "H200" in device_name else H100_SXM


@dataclass(frozen=True)
class ModelCost:
    weight_bytes_per_step: int
    kv_bytes_per_token: int
    linear_flops_per_token: int
    lm_head_flops_per_token: int
    attention_flops_per_pair: int


def parameter_count(config: ModelConfig) -> dict:
    """Parameters by part. Tied embeddings count once (under "embedding")."""
    hidden, head_dim = config.hidden_size, config.head_dim
    q_size = config.num_attention_heads * head_dim
    kv_size = config.num_key_value_heads * head_dim
    matrices = (hidden * (q_size + 2 * kv_size) + q_size * hidden
                + 2 * hidden * config.intermediate_size + config.intermediate_size * hidden)
    biases = (q_size + 2 * kv_size) if config.qkv_bias else 0
    norms = 2 * hidden + (2 * head_dim if config.qk_norm else 0)
    embedding = config.vocab_size * hidden
    counts = {"embedding": embedding,
              "layer_matrices": config.num_hidden_layers * matrices,
              "layer_other": config.num_hidden_layers * (biases + norms),
              "final_norm": hidden,
              "lm_head": 0 if config.tie_word_embeddings else embedding}
    counts["total"] = sum(counts.values())
    return counts


def model_cost(config: ModelConfig, bytes_per_number: int = 2,
               kv_cache_fp8: bool = False) -> ModelCost:
    """``kv_cache_fp8``: keys and values of 1 byte, with a 4-byte scale a row (``fp8.py``)."""
    params = parameter_count(config)
    kv_row_bytes = (config.head_dim + SCALE_BYTES if kv_cache_fp8
                    else config.head_dim * bytes_per_number)
    read_per_step = (params["layer_matrices"] + params["layer_other"] + params["final_norm"]
                     + config.vocab_size * config.hidden_size)  # the LM head, tied or not
    return ModelCost(
        weight_bytes_per_step=read_per_step * bytes_per_number,
        kv_bytes_per_token=(2 * config.num_hidden_layers * config.num_key_value_heads
                            * kv_row_bytes),
        linear_flops_per_token=2 * params["layer_matrices"],
        lm_head_flops_per_token=2 * config.vocab_size * config.hidden_size,
        attention_flops_per_pair=(4 * config.num_hidden_layers * config.num_attention_heads
                                  * config.head_dim))


def workload_bound(cost: ModelCost, lengths: list[tuple[int, int]], hardware: Hardware,
                   max_num_batched_tokens: int) -> dict:
    """The bound for requests given as (prompt tokens, output tokens) pairs."""
    prompt = sum(p for p, _ in lengths)
    output = sum(o for _, o in lengths)
    steps = max(max(o for _, o in lengths), -(-prompt // max_num_batched_tokens))
    # sum over k = 1 .. O-1 of (P + k) = (O - 1) P + (O - 1) O / 2
    decode_context = sum((o - 1) * p + (o - 1) * o // 2 for p, o in lengths)
    computed = prompt + sum(o - 1 for _, o in lengths)
    prefill_pairs = sum(p * (p + 1) // 2 for p, _ in lengths)
    weight_bytes = steps * cost.weight_bytes_per_step
    kv_read_bytes = (prompt + decode_context) * cost.kv_bytes_per_token
    kv_write_bytes = computed * cost.kv_bytes_per_token
    flops = (computed * cost.linear_flops_per_token + output * cost.lm_head_flops_per_token
             + (prefill_pairs + decode_context) * cost.attention_flops_per_pair)
    total_bytes = weight_bytes + kv_read_bytes + kv_write_bytes
    memory_s, compute_s = total_bytes / hardware.bandwidth, flops / hardware.peak_flops
    seconds = max(memory_s, compute_s)
    return {"hardware": asdict(hardware), "model_cost": asdict(cost),
            "prompt_tokens": prompt, "output_tokens": output, "min_steps": steps,
            "weight_bytes": weight_bytes, "kv_read_bytes": kv_read_bytes,
            "kv_write_bytes": kv_write_bytes, "total_bytes": total_bytes, "flops": flops,
            "memory_time_s": memory_s, "compute_time_s": compute_s, "bound_time_s": seconds,
            "bound": "memory" if memory_s >= compute_s else "compute",
            "output_tokens_per_s": output / seconds,
            "total_tokens_per_s": (prompt + output) / seconds}


def decode_step_cost(cost: ModelCost, context_lens: list[int]) -> dict:
    """Bytes moved and FLOPs done by one decode step of sequences with these context lengths.

    Each sequence computes one new token that attends to its whole context: the step reads
    the weights once, every context token's K/V, and writes one token's K/V per sequence.
    """
    tokens = len(context_lens)
    total_bytes = (cost.weight_bytes_per_step
                   + (sum(context_lens) + tokens) * cost.kv_bytes_per_token)
    flops = (tokens * (cost.linear_flops_per_token + cost.lm_head_flops_per_token)
             + sum(context_lens) * cost.attention_flops_per_pair)
    return {"bytes": total_bytes, "flops": flops}


def decode_step_bound(cost: ModelCost, context_lens: list[int], hardware: Hardware) -> float:
    """Least seconds for one decode step of sequences with these context lengths (TPOT floor)."""
    step = decode_step_cost(cost, context_lens)
    return max(step["bytes"] / hardware.bandwidth, step["flops"] / hardware.peak_flops)
