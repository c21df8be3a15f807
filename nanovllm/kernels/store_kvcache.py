"""Write this step's keys and values into the paged KV cache: ``layers/attention.store_kv``
as one program per token. Row ``t`` of ``key`` goes to cache row ``slot_mapping[t]`` (the
cache seen as one row per slot); slot -1 is padding, stored nowhere.
"""

from __future__ import annotations

import torch

from nanovllm.kernels.triton_support import jit, require_triton, tl, triton


@jit
def store_kvcache_kernel(key_ptr, value_ptr, k_cache_ptr, v_cache_ptr, slot_mapping_ptr,
                         key_stride, value_stride,
                         ROW: tl.constexpr, ROW_POW2: tl.constexpr):
    # One program per token: copy its row of ROW = kv_heads * head_dim numbers.
    token = tl.program_id(0)
    slot = tl.load(slot_mapping_ptr + token).to(tl.int64)  # slot * ROW may pass 2**31
    if slot < 0:  # a padding token: nothing to store
        return
    columns = tl.arange(0, ROW_POW2)  # tl.arange needs a power of two; mask the excess
    mask = columns < ROW
    k = tl.load(key_ptr + token * key_stride + columns, mask=mask)
    v = tl.load(value_ptr + token * value_stride + columns, mask=mask)
    tl.store(k_cache_ptr + slot * ROW + columns, k, mask=mask)
    tl.store(v_cache_ptr + slot * ROW + columns, v, mask=mask)


def store_kvcache(key: torch.Tensor, value: torch.Tensor, k_cache: torch.Tensor,
                         v_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    require_triton()
    num_tokens, num_kv_heads, head_dim = key.shape
    # Each token's heads must sit side by side; the token stride may be anything
    # (key and value are often views into one fused QKV output).
    assert key.stride(1) == head_dim and key.stride(2) == 1, "key rows must be contiguous"
    assert value.stride(1) == head_dim and value.stride(2) == 1, "value rows must be contiguous"
    assert k_cache.is_contiguous() and v_cache.is_contiguous()
    row = num_kv_heads * head_dim
    store_kvcache_kernel[(num_tokens,)](
        key, value, k_cache, v_cache, slot_mapping, key.stride(0), value.stride(0),
        ROW=row, ROW_POW2=triton.next_power_of_2(row))
