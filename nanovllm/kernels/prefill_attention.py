"""Causal attention for a ragged batch of prompt chunks, reading keys and values from the cache.

The maths is ``layers/attention.paged_attention``'s: query row r of sequence i sits at
position ``context_len - query_len + r`` and attends to the cached tokens up to it. A
decode token is the case query_len = 1, so mixed batches of prefill chunks and decode
tokens run through this one kernel.

Each program takes a tile of BLOCK_M query rows of one sequence and one head, and walks
that sequence's keys in tiles of BLOCK_N tokens with an online softmax
(``attention_tile.py``): two matrix products per key tile, ``scores = Q K^T`` and
``acc += P V``. It stops at the last key the tile's last row may see, so a causal prompt
does about half the work of a full square. 64 x 64 tiles with head_dim 128 keep the
query tile, the accumulator and one key and one value tile on chip with room for the
software pipeline (``num_stages``) to fetch the next key tile while this one is used.
"""

from __future__ import annotations

import torch

from nanovllm.kernels.attention_tile import attend_tile, tile_rows
from nanovllm.kernels.triton_support import jit, require_triton, tl, triton


# Triton compiles a variant per "is 1" / "is a multiple of 16" of an int argument; the
# block-table width changes every few steps, and one compiled variant serves them all.
@jit(do_not_specialize=["max_blocks_per_seq"])
def prefill_attention_kernel(query_ptr, k_cache_ptr, v_cache_ptr, out_ptr, cu_seqlens_q_ptr,
                             context_lens_ptr, block_tables_ptr, scale, max_blocks_per_seq,
                             k_scales_ptr, v_scales_ptr, FP8: tl.constexpr,
                             NUM_HEADS: tl.constexpr, NUM_KV_HEADS: tl.constexpr,
                             HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                             DOT_PRECISION: tl.constexpr, F16: tl.constexpr = False):
    tile = tl.program_id(0)
    seq = tl.program_id(1)
    head = tl.program_id(2)
    kv_head = head // (NUM_HEADS // NUM_KV_HEADS)
    query_start = tl.load(cu_seqlens_q_ptr + seq)
    query_len = tl.load(cu_seqlens_q_ptr + seq + 1) - query_start
    if tile * BLOCK_M >= query_len:  # this sequence has fewer rows than the longest one
        return
    context_len = tl.load(context_lens_ptr + seq)
    cached_len = context_len - query_len  # tokens in the cache before this chunk

    dims = tl.arange(0, HEAD_DIM)
    rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)  # query rows of this tile, within the chunk
    row_valid = rows < query_len
    query_positions = cached_len + rows
    q_offsets = ((query_start + rows[:, None]) * NUM_HEADS + head) * HEAD_DIM + dims[None, :]
    query = tl.load(query_ptr + q_offsets, mask=row_valid[:, None], other=0.0)
    if F16:  # an 8-bit cache's products in float16 (attention_tile.py)
        query = query.to(tl.float16)

    max_score = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    exp_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    table_ptr = block_tables_ptr + seq * max_blocks_per_seq
    # Causality: no row of this tile sees past the position of its last row.
    key_end = tl.minimum(context_len, cached_len + (tile + 1) * BLOCK_M)
    for key_start in range(0, key_end, BLOCK_N):
        key_positions = key_start + tl.arange(0, BLOCK_N)
        key_valid = key_positions < key_end
        cache_rows = tile_rows(table_ptr, key_positions, key_valid, kv_head, BLOCK_SIZE,
                               NUM_KV_HEADS)
        visible = (key_positions[None, :] <= query_positions[:, None]) & key_valid[None, :]
        max_score, exp_sum, acc = attend_tile(query, k_cache_ptr, v_cache_ptr, cache_rows,
                                              key_valid, visible, scale, max_score, exp_sum,
                                              acc, DOT_PRECISION, k_scales_ptr, v_scales_ptr,
                                              FP8)

    out = acc / exp_sum[:, None]
    tl.store(out_ptr + q_offsets, out.to(out_ptr.dtype.element_ty), mask=row_valid[:, None])


def prefill_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                             cu_seqlens_q: torch.Tensor, context_lens: torch.Tensor,
                             block_tables: torch.Tensor, scale: float,
                             max_query_len: int, k_scales: torch.Tensor | None = None,
                             v_scales: torch.Tensor | None = None,
                             float16_products: bool = False) -> torch.Tensor:
    """``k_scales``, ``v_scales``: an 8-bit cache's (``layers/fp8.py``);
    ``float16_products``: as ``decode_attention``'s."""
    require_triton()
    num_tokens, num_heads, head_dim = query.shape
    _, block_size, num_kv_heads, _ = k_cache.shape
    assert head_dim & (head_dim - 1) == 0, "the Triton kernel needs a power-of-two head_dim"
    assert block_size >= 16, "the GPU kernels are tested at block_size >= 16 only"
    query = query.contiguous()
    out = torch.empty_like(query)
    block_m = 64 if head_dim <= 128 else 32
    block_m = min(block_m, max(16, triton.next_power_of_2(max_query_len)))
    block_n = 64 if head_dim <= 128 else 32
    grid = (triton.cdiv(max_query_len, block_m), context_lens.shape[0], num_heads)
    prefill_attention_kernel[grid](
        query, k_cache, v_cache, out, cu_seqlens_q, context_lens, block_tables, scale,
        block_tables.shape[1], k_cache if k_scales is None else k_scales,
        v_cache if v_scales is None else v_scales, FP8=k_scales is not None,
        NUM_HEADS=num_heads, NUM_KV_HEADS=num_kv_heads, HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size, BLOCK_M=block_m, BLOCK_N=block_n,
        DOT_PRECISION="ieee" if query.dtype == torch.float32 else "tf32",
        F16=float16_products and k_scales is not None and query.dtype == torch.bfloat16,
        num_warps=4,
        num_stages=3)
    return out
