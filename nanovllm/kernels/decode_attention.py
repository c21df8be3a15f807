"""Paged decode attention: one new query token per sequence, keys and values from the cache.

The plain version is ``layers/attention.paged_attention``. Decode attention does almost
no arithmetic per byte: every cached key and value is read once and used for one dot
product per query head. Its speed is memory bandwidth, so the kernel is organised around
reading the cache once, in large pieces, with the whole GPU busy:

* **One program per (sequence, kv head, split)**, the kv heads of one sequence neighbours
  in the launch order (one grid axis counts sequence x kv heads + kv head, a second the
  split): they run at the same time and read the cache's blocks (which hold every kv head
  of a token side by side) together, not once per head at widely separated times; and a
  first axis has room for any batch (a second or third would stop at 65,535 sequences).
  Grouped-query attention lets several
  query heads share one kv head (Qwen3-0.6B: 2 per kv head). A program takes all of
  them at once, as a small matrix of queries, so each key and value is read once, not
  once per query head. ``tl.dot`` needs at least 16 rows, so the group is padded to 16
  with rows that are masked out; the wasted multiply-adds are free next to the reads.
* **Tiles of BLOCK_N tokens.** A tile spans several cache blocks; its rows are gathered
  through the block table, and the scores of the whole tile come from one ``tl.dot``.
* **Online softmax** (``attention_tile.py``): the score row is never materialised.
* **Split-K for small batches.** One sequence with 8 kv heads makes 8 programs, and
  most multiprocessors would idle while 8 of them walked a long context. So the context
  is cut into ``num_splits`` pieces; each writes its partial result with its log-sum-exp,
  and a second, tiny kernel combines them exactly: ``out = sum_s exp(lse_s - lse) out_s``.
  ``num_splits`` depends only on the batch size, so a CUDA graph captured for one batch
  size always launches the same grid; it is a run-time argument, so that eager runs at
  many batch sizes compile the kernel only once.
"""

from __future__ import annotations

import functools

import torch

from nanovllm.kernels.attention_tile import attend_tile, tile_rows
from nanovllm.kernels.triton_support import jit, require_triton, tl, triton

# How the kernel walks a 16-bit cache: BLOCK_N tokens per loop step (128 tokens x 128 dims x
# 2 bytes = 32 KiB of keys and as much of values), warps per program, and how many loop
# steps' loads the software pipeline keeps in flight: the fastest of those timed on an H200
# (source/_records/bench/README.md). bench/kernel_sweep.py times others.
DECODE_TILE = {"BLOCK_N": 128, "num_warps": 8, "num_stages": 2}
# From an 8-bit cache the tile is converted before its products: fewer warps, deeper pipeline
# (the fastest of 24 settings on an H200,
# source/_records/bench/h200-25406fc/exploration/fp8-decode-variants-25406fc.txt)
FP8_DECODE_TILE = {"BLOCK_N": 128, "num_warps": 4, "num_stages": 3}
MAX_SPLITS = 32


# Triton compiles a variant per "is 1" / "is a multiple of 16" of an int argument; the
# block-table width changes every few steps, and one compiled variant serves them all.
@jit(do_not_specialize=["max_blocks_per_seq"])
def decode_attention_kernel(query_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr,
                            context_lens_ptr, out_ptr, split_out_ptr, split_lse_ptr, scale,
                            max_blocks_per_seq, q_token_stride, q_head_stride,
                            k_scales_ptr, v_scales_ptr, FP8: tl.constexpr,
                            NUM_HEADS: tl.constexpr,
                            NUM_KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
                            BLOCK_SIZE: tl.constexpr, GROUP_ROWS: tl.constexpr,
                            BLOCK_N: tl.constexpr, num_splits, DOT_PRECISION: tl.constexpr,
                            F16: tl.constexpr = False):
    seq, kv_head = tl.program_id(0) // NUM_KV_HEADS, tl.program_id(0) % NUM_KV_HEADS
    split = tl.program_id(1)
    group = NUM_HEADS // NUM_KV_HEADS  # query heads that read this kv head
    rows = tl.arange(0, GROUP_ROWS)  # rows >= group are padding for tl.dot
    heads = kv_head * group + rows
    dims = tl.arange(0, HEAD_DIM)
    # The query may be a view into the fused QKV output: read it through its strides.
    query = tl.load(query_ptr + seq * q_token_stride + heads[:, None] * q_head_stride
                    + dims[None, :], mask=rows[:, None] < group, other=0.0)
    q_offsets = (seq * NUM_HEADS + heads[:, None]) * HEAD_DIM + dims[None, :]  # of out
    if F16:  # an 8-bit cache's products in float16 (attention_tile.py)
        query = query.to(tl.float16)

    # region tile-loop
    # This program's piece of the context: whole tiles, so that only the last one is ragged.
    context_len = tl.load(context_lens_ptr + seq)
    split_len = tl.cdiv(tl.cdiv(context_len, num_splits), BLOCK_N) * BLOCK_N
    start = split * split_len
    end = tl.minimum(context_len, start + split_len)

    max_score = tl.full([GROUP_ROWS], float("-inf"), dtype=tl.float32)
    exp_sum = tl.zeros([GROUP_ROWS], dtype=tl.float32)
    acc = tl.zeros([GROUP_ROWS, HEAD_DIM], dtype=tl.float32)
    table_ptr = block_tables_ptr + seq * max_blocks_per_seq
    for tile_start in range(start, end, BLOCK_N):
        positions = tile_start + tl.arange(0, BLOCK_N)
        valid = positions < end
        cache_rows = tile_rows(table_ptr, positions, valid, kv_head, BLOCK_SIZE, NUM_KV_HEADS)
        max_score, exp_sum, acc = attend_tile(query, k_cache_ptr, v_cache_ptr, cache_rows,
                                              valid, valid[None, :], scale, max_score,
                                              exp_sum, acc, DOT_PRECISION, k_scales_ptr,
                                              v_scales_ptr, FP8)
    # endregion tile-loop

    # An empty piece (or a padding row with context 0) has acc = 0 and exp_sum = 0: out = 0.
    out = acc / tl.maximum(exp_sum, 1e-30)[:, None]
    is_head = rows[:, None] < group
    if num_splits == 1:
        tl.store(out_ptr + q_offsets, out.to(out_ptr.dtype.element_ty), mask=is_head)
    else:
        split_rows = (seq * NUM_HEADS + heads) * num_splits + split
        tl.store(split_out_ptr + split_rows[:, None] * HEAD_DIM + dims[None, :], out,
                 mask=is_head)
        tl.store(split_lse_ptr + split_rows, max_score + tl.log(exp_sum), mask=rows < group)


@jit
def combine_splits_kernel(split_out_ptr, split_lse_ptr, out_ptr, num_splits,
                          HEAD_DIM: tl.constexpr, MAX_SPLITS: tl.constexpr):
    row = tl.program_id(0)  # one (sequence, query head)
    splits = tl.arange(0, MAX_SPLITS)
    dims = tl.arange(0, HEAD_DIM)
    lse = tl.load(split_lse_ptr + row * num_splits + splits, mask=splits < num_splits,
                  other=float("-inf"))
    # Empty pieces have lse = -inf and weight 0; a row whose pieces are all empty gives 0.
    weights = tl.where(lse > float("-inf"), tl.exp(lse - tl.max(lse, axis=0)), 0.0)
    parts = tl.load(split_out_ptr + (row * num_splits + splits)[:, None] * HEAD_DIM
                    + dims[None, :], mask=(splits < num_splits)[:, None], other=0.0)
    total = tl.maximum(tl.sum(weights, axis=0), 1e-30)
    out = tl.sum(weights[:, None] * parts, axis=0) / total
    tl.store(out_ptr + row * HEAD_DIM + dims, out.to(out_ptr.dtype.element_ty))


@functools.cache
def multiprocessor_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4  # Triton's interpreter on a CPU: a small pretend GPU, so that tests split
    return torch.cuda.get_device_properties(device).multi_processor_count


def choose_num_splits(num_seqs: int, num_kv_heads: int, device: torch.device) -> int:
    """Enough pieces per sequence that the grid covers every multiprocessor about twice.

    Depends on the batch size only (never on context lengths), so a captured CUDA graph
    stays valid: a piece that falls past the end of a short context does no work.
    """
    programs = num_seqs * num_kv_heads
    return max(1, min(MAX_SPLITS, -(-2 * multiprocessor_count(device) // programs)))


def decode_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            block_tables: torch.Tensor, context_lens: torch.Tensor,
                            scale: float, num_splits: int | None = None,
                            k_scales: torch.Tensor | None = None,
                            v_scales: torch.Tensor | None = None,
                            float16_products: bool = False) -> torch.Tensor:
    """``k_scales``, ``v_scales``: an 8-bit cache's (``layers/fp8.py``).
    ``float16_products``: the queries fit float16 (normalised: Qwen3's), so a bfloat16 model's
    products with an 8-bit cache may run in float16."""
    require_triton()
    num_seqs, num_heads, head_dim = query.shape
    _, block_size, num_kv_heads, _ = k_cache.shape
    assert head_dim & (head_dim - 1) == 0, "the Triton kernel needs a power-of-two head_dim"
    if num_splits is None:
        num_splits = choose_num_splits(num_seqs, num_kv_heads, query.device)
    assert 1 <= num_splits <= MAX_SPLITS, f"num_splits must be in [1, {MAX_SPLITS}]"
    assert query.stride(2) == 1, "each query head must be contiguous"
    tile = DECODE_TILE if k_scales is None else FP8_DECODE_TILE
    out = torch.empty(num_seqs, num_heads, head_dim, dtype=query.dtype, device=query.device)
    split_out = split_lse = out  # unused when there is one piece
    if num_splits > 1:
        split_out = torch.empty(num_seqs, num_heads, num_splits, head_dim,
                                dtype=torch.float32, device=query.device)
        split_lse = torch.empty(num_seqs, num_heads, num_splits, dtype=torch.float32,
                                device=query.device)
    group_rows = max(16, triton.next_power_of_2(num_heads // num_kv_heads))
    decode_attention_kernel[(num_seqs * num_kv_heads, num_splits)](
        query, k_cache, v_cache, block_tables, context_lens, out, split_out, split_lse, scale,
        block_tables.shape[1], query.stride(0), query.stride(1),
        k_cache if k_scales is None else k_scales, v_cache if v_scales is None else v_scales,
        FP8=k_scales is not None, NUM_HEADS=num_heads,
        NUM_KV_HEADS=num_kv_heads, HEAD_DIM=head_dim, BLOCK_SIZE=block_size, GROUP_ROWS=group_rows,
        BLOCK_N=tile["BLOCK_N"], num_splits=num_splits,
        DOT_PRECISION="ieee" if query.dtype == torch.float32 else "tf32",
        F16=float16_products and k_scales is not None and query.dtype == torch.bfloat16,
        num_warps=tile["num_warps"], num_stages=tile["num_stages"])
    if num_splits > 1:
        combine_splits_kernel[(num_seqs * num_heads,)](
            split_out, split_lse, out, num_splits, HEAD_DIM=head_dim, MAX_SPLITS=MAX_SPLITS)
    return out
