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


@jit
def round_to_e4m3(x):
    """``x`` (float32) rounded to the nearest float8 e4m3 number, ties to even, saturating at
    448 (torch's own cast of larger numbers depends on its version), signed zeros and NaN
    kept. Done in float32 arithmetic, so that the cast which follows is exact (Triton's CPU
    interpreter, the tests' GPU stand-in, rounds some casts wrongly), with powers of two only,
    so every step is exact on any hardware."""
    bits = x.to(tl.int32, bitcast=True)
    size = tl.minimum(tl.abs(x), 448.0)
    exponent = tl.maximum(((size.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127, -6)
    spacing = ((exponent - 3 + 127) << 23).to(tl.float32, bitcast=True)  # 3 mantissa bits
    per_spacing = ((127 - (exponent - 3)) << 23).to(tl.float32, bitcast=True)  # 1 / spacing
    magic = 12582912.0  # 1.5 * 2**23: adding it and taking it away rounds to an integer
    rounded = ((size * per_spacing + magic) - magic) * spacing
    rounded = tl.where(x != x, x, rounded)  # NaN stays NaN
    # the sign, as a bit: -0.0 included (Triton 3.6 compiles -x as 0 - x, which gives +0.0)
    return (rounded.to(tl.int32, bitcast=True) | (bits & -2147483648)).to(tl.float32,
                                                                          bitcast=True)


@jit
def store_rows_fp8(rows_ptr, stride, cache_ptr, scales_ptr, token, slot,
                   HEADS: tl.constexpr, HEADS_POW2: tl.constexpr, HEAD_DIM: tl.constexpr):
    """One token's rows (one per kv head), each scaled by its largest number (``fp8.py``)."""
    heads = tl.arange(0, HEADS_POW2)
    columns = heads[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    mask = heads[:, None] < HEADS
    rows = tl.load(rows_ptr + token * stride + columns, mask=mask, other=0.0).to(tl.float32)
    largest = tl.max(tl.abs(rows), axis=1)
    largest = tl.where(largest < 1.1754943508222875e-38, 1.1754943508222875e-38, largest)
    has_nan = tl.max((rows != rows).to(tl.int32), axis=1) > 0  # a NaN row: NaN scale, as torch
    largest = tl.where(has_nan, float("nan"), largest)
    # IEEE division, as torch's (a GPU's plain float32 division may be off by an ulp or two)
    scales = tl.math.div_rn(largest, tl.full(largest.shape, 448.0, tl.float32))
    stored = round_to_e4m3(tl.math.div_rn(rows, scales[:, None]))
    stored = stored.to(cache_ptr.dtype.element_ty)
    tl.store(cache_ptr + slot * HEADS * HEAD_DIM + columns, stored, mask=mask)
    tl.store(scales_ptr + slot * HEADS + heads, scales, mask=heads < HEADS)


@jit
def store_kvcache_fp8_kernel(key_ptr, value_ptr, k_cache_ptr, v_cache_ptr, k_scales_ptr,
                             v_scales_ptr, slot_mapping_ptr, key_stride, value_stride,
                             HEADS: tl.constexpr, HEADS_POW2: tl.constexpr,
                             HEAD_DIM: tl.constexpr):
    token = tl.program_id(0)  # one program per token
    slot = tl.load(slot_mapping_ptr + token).to(tl.int64)
    if slot < 0:
        return
    store_rows_fp8(key_ptr, key_stride, k_cache_ptr, k_scales_ptr, token, slot, HEADS,
                   HEADS_POW2, HEAD_DIM)
    store_rows_fp8(value_ptr, value_stride, v_cache_ptr, v_scales_ptr, token, slot, HEADS,
                   HEADS_POW2, HEAD_DIM)


def store_kvcache_fp8(key: torch.Tensor, value: torch.Tensor, k_cache: torch.Tensor,
                      v_cache: torch.Tensor, k_scales: torch.Tensor, v_scales: torch.Tensor,
                      slot_mapping: torch.Tensor) -> None:
    """``store_kvcache`` into an 8-bit cache: ``layers/attention.store_kv`` with scales."""
    require_triton()
    num_tokens, num_kv_heads, head_dim = key.shape
    assert key.stride(1) == head_dim and key.stride(2) == 1, "key rows must be contiguous"
    assert value.stride(1) == head_dim and value.stride(2) == 1, "value rows must be contiguous"
    assert head_dim & (head_dim - 1) == 0, "the Triton kernel needs a power-of-two head_dim"
    for cache in (k_cache, v_cache, k_scales, v_scales):
        assert cache.is_contiguous()
    store_kvcache_fp8_kernel[(num_tokens,)](
        key, value, k_cache, v_cache, k_scales, v_scales, slot_mapping, key.stride(0),
        value.stride(0), HEADS=num_kv_heads, HEADS_POW2=triton.next_power_of_2(num_kv_heads),
        HEAD_DIM=head_dim)
