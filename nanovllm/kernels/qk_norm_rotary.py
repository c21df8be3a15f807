"""Normalise and rotate every query and key head in one kernel.

Between the QKV projection and attention, each layer of Qwen3 normalises every query
head (``q_norm``) and key head (``k_norm``), then rotates q and k (RoPE). As layers that
is four kernels per layer, each moving a few kilobytes in a decode step: their cost is
almost all launch latency. None needs more than the head it works on, so one kernel does
all four:

* **One program per token.** It loads the token's angle row (``cos`` and ``sin`` at its
  position) once, then takes all the token's query heads as one small tile, and all its
  key heads as another.
* **Each head as two halves.** The rotation pairs number ``i`` of a head with number
  ``i + head_dim / 2``, so the program loads the first and the second halves as two
  ``[heads, head_dim / 2]`` tiles. The norm's sum of squares adds up both; the rotation
  is then element-wise between the two tiles.
* **In place.** q and k are views into the projection's output row (``[q | k | v]`` per
  token), and nothing else reads their unrotated values, so the results go back where
  they came from: each number crosses memory once each way, and no new tensor is made.

The arithmetic is exactly that of the layers the plain path runs (``models/qwen3.py``
off the GPU): ``rms_norm`` (statistics in float32, the normalised head cast to the input
dtype before the gain), then the rotation of ``layers/rotary_embedding.py`` (in float32,
cast back). Models without qk-norm (Qwen2, Llama) pass no norm weights and get the
rotation alone.
"""

from __future__ import annotations

import torch

from nanovllm.kernels.triton_support import jit, require_triton, tl, triton


@jit
def norm_rotate_heads(row_ptr, head_stride, weight_ptr, cos, sin, eps,
                      NUM_HEADS: tl.constexpr, HEADS_POW2: tl.constexpr,
                      HALF: tl.constexpr, HAS_NORM: tl.constexpr):
    # One token's heads, rewritten in place: the first halves as one [HEADS_POW2, HALF]
    # tile, the second halves as another; rows past NUM_HEADS are masked out.
    heads = tl.arange(0, HEADS_POW2)[:, None]
    columns = tl.arange(0, HALF)[None, :]
    mask = heads < NUM_HEADS
    first_ptr = row_ptr + heads * head_stride + columns
    x1 = tl.load(first_ptr, mask=mask, other=0.0)
    x2 = tl.load(first_ptr + HALF, mask=mask, other=0.0)
    dtype = x1.dtype
    if HAS_NORM:  # rms_norm, step for step
        x1, x2 = x1.to(tl.float32), x2.to(tl.float32)
        mean_square = (tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / (2 * HALF)
        inverse_rms = tl.rsqrt(mean_square + eps)[:, None]
        w1 = tl.load(weight_ptr + columns).to(tl.float32)
        w2 = tl.load(weight_ptr + HALF + columns).to(tl.float32)
        x1 = (w1 * (x1 * inverse_rms).to(dtype).to(tl.float32)).to(dtype)
        x2 = (w2 * (x2 * inverse_rms).to(dtype).to(tl.float32)).to(dtype)
    # rotate: in float32, then back to the input dtype
    x1, x2 = x1.to(tl.float32), x2.to(tl.float32)
    tl.store(first_ptr, (x1 * cos - x2 * sin).to(dtype), mask=mask)
    tl.store(first_ptr + HALF, (x2 * cos + x1 * sin).to(dtype), mask=mask)


@jit
def qk_norm_rotary_kernel(q_ptr, k_ptr, positions_ptr, cos_ptr, sin_ptr,
                          q_weight_ptr, k_weight_ptr,
                          q_token_stride, q_head_stride, k_token_stride, k_head_stride, eps,
                          Q_HEADS: tl.constexpr, Q_HEADS_POW2: tl.constexpr,
                          K_HEADS: tl.constexpr, K_HEADS_POW2: tl.constexpr,
                          HALF: tl.constexpr, HAS_NORM: tl.constexpr):
    # One program per token: its angles, then all its query heads, then all its key heads.
    token = tl.program_id(0).to(tl.int64)  # token * stride may pass 2**31 in long prefills
    position = tl.load(positions_ptr + token)
    columns = tl.arange(0, HALF)[None, :]  # [1, HALF]: broadcast over the heads
    cos = tl.load(cos_ptr + position * HALF + columns)
    sin = tl.load(sin_ptr + position * HALF + columns)
    norm_rotate_heads(q_ptr + token * q_token_stride, q_head_stride, q_weight_ptr, cos, sin,
                      eps, Q_HEADS, Q_HEADS_POW2, HALF, HAS_NORM)
    norm_rotate_heads(k_ptr + token * k_token_stride, k_head_stride, k_weight_ptr, cos, sin,
                      eps, K_HEADS, K_HEADS_POW2, HALF, HAS_NORM)


def qk_norm_rotary(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                          cos_table: torch.Tensor, sin_table: torch.Tensor,
                          q_weight: torch.Tensor | None, k_weight: torch.Tensor | None,
                          eps: float) -> None:
    require_triton()
    num_tokens, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    assert k.shape == (num_tokens, num_kv_heads, head_dim) and k.dtype == q.dtype
    assert head_dim >= 2 and head_dim & (head_dim - 1) == 0, "head_dim must be a power of two"
    # Each head's numbers must sit side by side; token and head strides may be anything
    # (q and k are views into the fused QKV output).
    assert q.stride(2) == 1 and k.stride(2) == 1, "each head must be contiguous"
    assert positions.shape == (num_tokens,) and positions.dtype in (torch.int32, torch.int64)
    half = head_dim // 2
    for table in (cos_table, sin_table):
        assert table.dtype == torch.float32 and table.is_contiguous()
        assert table.shape[1] == half
    has_norm = q_weight is not None
    if has_norm:
        for weight in (q_weight, k_weight):
            # a gain of another dtype would change the torch maths' result dtype
            assert weight.shape == (head_dim,) and weight.dtype == q.dtype
            assert weight.is_contiguous()
    else:
        q_weight = k_weight = cos_table  # never read: HAS_NORM is False
    qk_norm_rotary_kernel[(num_tokens,)](
        q, k, positions, cos_table, sin_table, q_weight, k_weight,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), eps,
        Q_HEADS=num_heads, Q_HEADS_POW2=triton.next_power_of_2(num_heads),
        K_HEADS=num_kv_heads, K_HEADS_POW2=triton.next_power_of_2(num_kv_heads),
        HALF=half, HAS_NORM=has_norm)
