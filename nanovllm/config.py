"""Engine configuration: one dataclass, checked when it is built.

Every knob of the engine lives here, so a bad value is caught once, up front, with a message
that names the field and says what is allowed, instead of surfacing later as a confusing
failure deep inside the scheduler or a kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def is_int(value: object) -> bool:
    """True for a real int (``True`` is an int to Python, but never a sensible count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """True for a finite int or float (again excluding bools)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def check_field(ok: bool, name: str, value: object, allowed: str) -> None:
    """Raise ValueError naming the field, the value it got, and what is allowed."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: {allowed}")


@dataclass
class Config:
    """How the engine runs: model, batching limits, KV-cache size and features.

    ``num_kvcache_blocks`` may stay 0: the model runner then sizes the block pool from the
    memory it finds and writes the number back here before the scheduler is built.
    """

    model: str = ""  # Hugging Face folder; "" means the bundled tiny model
    max_num_batched_tokens: int = 8192  # token budget of one step
    max_num_seqs: int = 256  # sequences in one step
    max_model_len: int = 4096  # prompt + completion cap
    block_size: int = 16  # tokens per KV block
    num_kvcache_blocks: int = 0  # 0 = sized by the model runner
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    gpu_memory_utilization: float = 0.9
    cpu_kvcache_gib: float = 0.25
    tensor_parallel_size: int = 1
    tp_timeout_s: float = 120.0  # longest wait on tensor-parallel workers (start-up or a step)
    enforce_eager: bool = False  # True = no CUDA graphs
    enable_torch_compile: bool = True  # GPU only: fuse norms, activation
    # schedule step N+1 while step N runs (engine/overlap.py); "auto": on a GPU, one process
    overlap_steps: bool | str = "auto"
    gemv_max_rows: int = 16  # GPU: products of at most this many rows in kernels/gemv.py
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"  # "fp8": keys and values in 8 bits (layers/fp8.py)
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_field(isinstance(self.model, str), "model", self.model,
                    "a path to a Hugging Face model folder, or '' for the bundled tiny model")
        for name in ("max_num_batched_tokens", "max_num_seqs", "tensor_parallel_size"):
            value = getattr(self, name)
            check_field(is_int(value) and value >= 1, name, value, "an int >= 1")
        check_field(is_int(self.max_model_len) and self.max_model_len >= 2, "max_model_len",
                    self.max_model_len, "an int >= 2 (room for one prompt and one new token)")
        bs = self.block_size
        check_field(is_int(bs) and bs >= 1 and bs & (bs - 1) == 0, "block_size", bs,
                    "a power of two (1, 2, 4, ..., 16, ...); the attention kernels tile by it")
        check_field(is_int(self.num_kvcache_blocks) and self.num_kvcache_blocks >= 0,
                    "num_kvcache_blocks", self.num_kvcache_blocks,
                    "an int >= 0 (0 lets the model runner size the pool from memory)")
        for name in ("enable_prefix_caching", "enable_chunked_prefill", "enforce_eager",
                     "enable_torch_compile"):
            check_field(isinstance(getattr(self, name), bool), name, getattr(self, name),
                        "True or False")
        check_field(self.overlap_steps is True or self.overlap_steps is False
                    or self.overlap_steps == "auto", "overlap_steps", self.overlap_steps,
                    "True, False or 'auto'")
        check_field(not (self.overlap_steps is True and self.tensor_parallel_size > 1),
                    "overlap_steps",
                    self.overlap_steps, "True needs tensor_parallel_size=1 (one process)")
        check_field(is_int(self.gemv_max_rows) and 0 <= self.gemv_max_rows <= 16,
                    "gemv_max_rows", self.gemv_max_rows,
                    "an int in [0, 16] (0: every product in torch's F.linear)")
        check_field(is_real(self.gpu_memory_utilization) and 0 < self.gpu_memory_utilization <= 1,
                    "gpu_memory_utilization", self.gpu_memory_utilization, "a number in (0, 1]")
        check_field(is_real(self.tp_timeout_s) and self.tp_timeout_s > 0, "tp_timeout_s",
                    self.tp_timeout_s, "a number of seconds > 0")
        check_field(is_real(self.cpu_kvcache_gib) and self.cpu_kvcache_gib > 0,
                    "cpu_kvcache_gib", self.cpu_kvcache_gib, "a number > 0 (GiB)")
        check_field(self.dtype in ("auto", "float32", "float16", "bfloat16"), "dtype",
                    self.dtype, "one of 'auto', 'float32', 'float16', 'bfloat16'")
        check_field(self.kv_cache_dtype in ("auto", "fp8"), "kv_cache_dtype",
                    self.kv_cache_dtype, "'auto' (the model's dtype) or 'fp8' (float8 e4m3 "
                    "with a scale per token and kv head)")
        check_field(self.device in ("auto", "cpu", "cuda"), "device", self.device,
                    "one of 'auto', 'cpu', 'cuda'")
        check_field(is_int(self.seed) and 0 <= self.seed < 2**64, "seed", self.seed,
                    "an int in [0, 2**64)")
        # Without chunking, a step must hold a whole prompt -- and, after a preemption, the
        # prompt plus everything generated so far, which can reach max_model_len - 1 tokens.
        check_field(self.enable_chunked_prefill
                    or self.max_num_batched_tokens >= self.max_model_len,
                    "max_num_batched_tokens", self.max_num_batched_tokens,
                    f"with enable_chunked_prefill=False it must be >= max_model_len "
                    f"({self.max_model_len}) so any prompt fits in one step; raise it, lower "
                    f"max_model_len, or enable chunked prefill")
