"""Paged decode attention: one new query token per sequence, keys and values from the cache.

In a decode step every sequence contributes exactly one token, whose query must attend
to all of that sequence's earlier tokens. Those tokens' keys and values are already in
the paged cache, scattered over the blocks that the sequence's *block table* lists in
order: logical block ``j`` of the sequence is physical block ``block_table[j]``.

The Triton kernel runs one program per (sequence, query head). It walks the block
table one block at a time and keeps a running ("online") softmax: the maximum score
seen so far, the sum of exponentials, and the weighted sum of values, rescaling the
last two whenever the maximum grows. It never materialises the whole score row, so
its memory does not grow with context length. Grouped-query attention is just an
index: query head ``h`` reads kv head ``h // (num_heads // num_kv_heads)``.
"""

from __future__ import annotations

import torch

from nanovllm.kernels.triton_support import jit, require_triton, tl, use_triton


def gather_context(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first ``length`` tokens of one sequence, in order: [length, kv_heads, head_dim]."""
    block_size = cache.shape[1]
    positions = torch.arange(length, device=cache.device)
    slots = block_table[positions // block_size].long() * block_size + positions % block_size
    return cache.flatten(0, 1)[slots]


def decode_attention_torch(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor,
                           scale: float) -> torch.Tensor:
    """query: [seqs, heads, head_dim]; block_tables: [seqs, max_blocks]; context_lens: [seqs]."""
    num_heads, num_kv_heads = query.shape[1], k_cache.shape[2]
    out = torch.empty_like(query)
    for i, length in enumerate(context_lens.tolist()):
        keys = gather_context(k_cache, block_tables[i], length).float()
        values = gather_context(v_cache, block_tables[i], length).float()
        keys = keys.repeat_interleave(num_heads // num_kv_heads, dim=1)  # [length, heads, dim]
        values = values.repeat_interleave(num_heads // num_kv_heads, dim=1)
        scores = torch.einsum("hd,nhd->hn", query[i].float(), keys) * scale
        out[i] = torch.einsum("hn,nhd->hd", scores.softmax(dim=-1), values).to(out.dtype)
    return out


@jit
def decode_attention_kernel(query_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr,
                            context_lens_ptr, out_ptr, scale, max_blocks_per_seq,
                            NUM_HEADS: tl.constexpr, NUM_KV_HEADS: tl.constexpr,
                            HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    kv_head = head // (NUM_HEADS // NUM_KV_HEADS)
    dims = tl.arange(0, HEAD_DIM)
    in_block = tl.arange(0, BLOCK_SIZE)

    query = tl.load(query_ptr + (seq * NUM_HEADS + head) * HEAD_DIM + dims).to(tl.float32)
    context_len = tl.load(context_lens_ptr + seq)

    max_score = float("-inf")  # running maximum of the scores seen so far
    exp_sum = 0.0  # running sum of exp(score - max_score)
    acc = tl.zeros([HEAD_DIM], dtype=tl.float32)  # running sum of exp(...) * value
    for logical_block in range(0, tl.cdiv(context_len, BLOCK_SIZE)):
        block = tl.load(block_tables_ptr + seq * max_blocks_per_seq + logical_block).to(tl.int64)
        valid = logical_block * BLOCK_SIZE + in_block < context_len
        # Row of (token, kv_head) inside the cache viewed as [blocks*block_size*kv_heads, dim].
        rows = (block * BLOCK_SIZE + in_block) * NUM_KV_HEADS + kv_head
        offsets = rows[:, None] * HEAD_DIM + dims[None, :]
        keys = tl.load(k_cache_ptr + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
        scores = tl.sum(keys * query[None, :], axis=1) * scale  # [BLOCK_SIZE]
        scores = tl.where(valid, scores, float("-inf"))

        new_max = tl.maximum(max_score, tl.max(scores, axis=0))
        rescale = tl.exp(max_score - new_max)  # shrink the old sums to the new maximum
        weights = tl.exp(scores - new_max)
        values = tl.load(v_cache_ptr + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
        exp_sum = exp_sum * rescale + tl.sum(weights, axis=0)
        acc = acc * rescale + tl.sum(weights[:, None] * values, axis=0)
        max_score = new_max

    out = acc / exp_sum
    tl.store(out_ptr + (seq * NUM_HEADS + head) * HEAD_DIM + dims,
             out.to(out_ptr.dtype.element_ty))


def decode_attention_triton(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            block_tables: torch.Tensor, context_lens: torch.Tensor,
                            scale: float) -> torch.Tensor:
    require_triton()
    num_seqs, num_heads, head_dim = query.shape
    _, block_size, num_kv_heads, _ = k_cache.shape
    assert head_dim & (head_dim - 1) == 0, "the Triton kernel needs a power-of-two head_dim"
    query = query.contiguous()
    out = torch.empty_like(query)
    decode_attention_kernel[(num_seqs, num_heads)](
        query, k_cache, v_cache, block_tables, context_lens, out, scale, block_tables.shape[1],
        NUM_HEADS=num_heads, NUM_KV_HEADS=num_kv_heads, HEAD_DIM=head_dim, BLOCK_SIZE=block_size)
    return out


def decode_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     block_tables: torch.Tensor, context_lens: torch.Tensor,
                     scale: float) -> torch.Tensor:
    """Attention of one query per sequence over its cached context (Triton on GPU, torch elsewhere)."""
    if use_triton(query):
        return decode_attention_triton(query, k_cache, v_cache, block_tables, context_lens, scale)
    return decode_attention_torch(query, k_cache, v_cache, block_tables, context_lens, scale)
