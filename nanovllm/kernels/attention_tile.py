"""The loop body both attention kernels share: one tile of cached keys and values, read
through a sequence's block table and folded into an online softmax.

A program walks its sequence's cached tokens a tile of BLOCK_N at a time. A tile may
span several cache blocks, so each token's row is found through the block table
(``tile_rows``). Then ``attend_tile`` scores the tile's keys against the program's
query rows with one ``tl.dot`` and folds the tile into three running values per row:
the largest score so far, the sum of exponentials, and the weighted sum of values.
When the maximum grows, the two sums are rescaled to it, so the row of scores is never
held whole and the result is exact: ``out = acc / exp_sum`` at the end.

From an 8-bit cache (``FP8``, ``layers/fp8.py``) a row comes back as ``stored * s``, one
scale per token and kv head. The scales never touch the rows: a key's scale multiplies its
score after the product, a value's its weight before the product, and the 8-bit numbers go
into ``tl.dot`` as they are, converted exactly to the query's dtype. The kernels make that
float16 when the caller says the queries fit it (``float16_products``: e4m3 converts to float16
in one instruction, to bfloat16 not).
"""

from __future__ import annotations

from nanovllm.kernels.triton_support import jit, tl


@jit
def tile_rows(table_ptr, positions, valid, kv_head, BLOCK_SIZE: tl.constexpr,
              NUM_KV_HEADS: tl.constexpr):
    """The cache rows of the tokens at ``positions``, in the cache viewed as
    [blocks * block_size * kv_heads, head_dim]; ``table_ptr``: the sequence's block table."""
    blocks = tl.load(table_ptr + positions // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
    return (blocks * BLOCK_SIZE + positions % BLOCK_SIZE) * NUM_KV_HEADS + kv_head


@jit
def attend_tile(query, k_cache_ptr, v_cache_ptr, cache_rows, valid, visible, scale,
                max_score, exp_sum, acc, DOT_PRECISION: tl.constexpr, k_scales_ptr,
                v_scales_ptr, FP8: tl.constexpr):
    """Fold one tile into the online softmax of ``query`` [rows, HEAD_DIM]; ``valid``: tokens
    of the tile that exist, ``visible`` [rows, tokens]: which a row may see."""
    # each row is HEAD_DIM neighbouring numbers: the tile loads all its rows at once
    kv_offsets = cache_rows[:, None] * query.shape[1] + tl.arange(0, query.shape[1])[None, :]
    keys = tl.load(k_cache_ptr + kv_offsets, mask=valid[:, None], other=0.0)
    if FP8:
        keys = keys.to(query.dtype)  # exactly: e4m3 fits any 16-bit type
    scores = tl.dot(query, tl.trans(keys), input_precision=DOT_PRECISION) * scale
    if FP8:
        scores = scores * tl.load(k_scales_ptr + cache_rows, mask=valid, other=0.0)[None, :]
    scores = tl.where(visible, scores, float("-inf"))
    new_max = tl.maximum(max_score, tl.max(scores, axis=1))
    rescale = tl.exp(max_score - new_max)  # shrink the old sums to the new maximum
    weights = tl.exp(scores - new_max[:, None])
    values = tl.load(v_cache_ptr + kv_offsets, mask=valid[:, None], other=0.0)
    exp_sum = exp_sum * rescale + tl.sum(weights, axis=1)
    if FP8:
        # Each weight times its value's scale over the tile's largest: at most 1, so small
        # weights stay within float16 (times a scale itself, 1e-6 say, they would vanish);
        # the largest multiplies the product back, in float32.
        values = values.to(query.dtype)
        v_scales = tl.load(v_scales_ptr + cache_rows, mask=valid, other=0.0)
        largest = tl.maximum(tl.max(v_scales, axis=0), 1.1754943508222875e-38)
        weights = weights * (v_scales / largest)[None, :]
        acc = acc * rescale[:, None] + largest * tl.dot(weights.to(values.dtype), values,
                                                        input_precision=DOT_PRECISION)
    else:
        acc = acc * rescale[:, None] + tl.dot(weights.to(values.dtype), values,
                                              input_precision=DOT_PRECISION)
    return new_max, exp_sum, acc
