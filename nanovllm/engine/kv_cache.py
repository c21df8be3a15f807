"""Size and allocate the KV cache: one tensor, cut into per-layer views.

Layout: ``[2, num_layers, num_blocks, block_size, num_kv_heads, head_dim]``; index 0
holds keys, 1 values. One allocation keeps the cache in one piece of memory, and every
layer's attention gets views ``cache[0, layer]`` and ``cache[1, layer]``, each shaped
``[num_blocks, block_size, kv_heads, head_dim]`` so that a cache *slot*
(``block * block_size + offset``) is a row of the flattened view. An 8-bit cache
(``kv_cache_dtype="fp8"``, ``layers/fp8.py``) has a second tensor beside it, the scales,
shaped the same without ``head_dim``.

How many blocks? Exactly ``Config.num_kvcache_blocks`` when that is set. Otherwise:

* on a GPU, what is left of ``gpu_memory_utilization`` of the card once the weights (and
  anything else on it) and the largest step's activations, measured, have their room;
* on a CPU, the ``cpu_kvcache_gib`` budget: system memory is shared with everything else.
"""

import os

import torch

from nanovllm.layers.fp8 import FP8, SCALE_BYTES
from nanovllm.layers.linear import kv_heads_per_gpu
from nanovllm.models.model_config import ModelConfig


def block_bytes(model_config: ModelConfig, block_size: int, dtype: torch.dtype,
                tp_size: int = 1) -> int:
    """Bytes of keys and values that one block holds, over all layers (in 8 bits: and
    their scales)."""
    kv_heads = kv_heads_per_gpu(model_config.num_key_value_heads, tp_size)
    rows = 2 * model_config.num_hidden_layers * kv_heads * block_size
    row_bytes = model_config.head_dim * dtype.itemsize + (SCALE_BYTES if dtype == FP8 else 0)
    return rows * row_bytes


def kv_cache_budget_bytes(config, device: torch.device, activation_bytes: int) -> int:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        in_use = total - free  # our weights, the CUDA context, other processes
        return int(total * config.gpu_memory_utilization - in_use - activation_bytes)
    return int(config.cpu_kvcache_gib * 2**30)


def memory_bytes(device: torch.device) -> int | None:
    """Memory a cache could take at most: free GPU memory, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): no check
        return None


def choose_num_blocks(config, model_config: ModelConfig, dtype: torch.dtype,
                      device: torch.device, activation_bytes: int = 0) -> int:
    one_block = block_bytes(model_config, config.block_size, dtype, config.tensor_parallel_size)
    if config.num_kvcache_blocks > 0:
        wanted, memory = config.num_kvcache_blocks * one_block, memory_bytes(device)
        if memory is not None and wanted > memory:
            where = "free on the GPU" if device.type == "cuda" else "in this machine"
            raise ValueError(f"num_kvcache_blocks={config.num_kvcache_blocks} is invalid: the "
                             f"cache would take {wanted / 2**30:,.1f} GiB ({one_block:,} bytes "
                             f"a block), but there are {memory / 2**30:,.1f} GiB {where}; "
                             f"lower it, or leave it 0 to size the cache from memory")
        return config.num_kvcache_blocks
    budget = kv_cache_budget_bytes(config, device, activation_bytes)
    num_blocks = budget // one_block
    if num_blocks < 1:
        knob = "gpu_memory_utilization" if device.type == "cuda" else "cpu_kvcache_gib"
        raise RuntimeError(f"no room for the KV cache: {budget / 2**20:.1f} MiB left for it, one "
                           f"block needs {one_block / 2**20:.2f} MiB; raise {knob} or lower "
                           f"max_num_batched_tokens")
    return int(num_blocks)


def allocate_kv_cache(model: torch.nn.Module, model_config: ModelConfig, num_blocks: int,
                      block_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocate the cache and hand each attention layer its two views."""
    attention_layers = [m for m in model.modules() if hasattr(m, "k_cache")]
    kv_heads = attention_layers[0].num_kv_heads  # this GPU's share under tensor parallelism
    # torch.empty, not zeros: every slot is written before any kernel reads it.
    shape = (2, len(attention_layers), num_blocks, block_size, kv_heads)
    cache = torch.empty(*shape, model_config.head_dim, dtype=dtype, device=device)
    scales = torch.empty(shape, dtype=torch.float32, device=device) if dtype == FP8 else None
    for layer, attention in enumerate(attention_layers):
        attention.k_cache = cache[0, layer]
        attention.v_cache = cache[1, layer]
        if scales is not None:
            attention.k_scales, attention.v_scales = scales[0, layer], scales[1, layer]
    return cache


def release_kv_cache(model: torch.nn.Module) -> None:
    """Detach every attention layer from its cache, so that the cache's memory can be freed."""
    for module in model.modules():
        if hasattr(module, "k_cache"):
            module.k_cache = module.v_cache = torch.empty(0)
            module.k_scales = module.v_scales = None
