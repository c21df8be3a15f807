"""Attention over the paged KV cache, and the step's inputs that say where everything is.

Every layer does the same two things with its new keys and values. First it stores
them, for every token of the batch, into its slice of the KV cache; only then does it
attend, reading keys and values back from the cache. Storing first is what lets one
code path serve fresh prompts, prompts whose prefix came from the prefix cache, later
chunks of a chunked prefill and decode tokens alike: whatever a query may see is in
the cache by the time attention runs (and a sequence may even read a block that
another sequence of the same batch has just written).

The functions here are the plain version, in torch, one sequence at a time. On a GPU
the same maths runs as Triton kernels (``kernels/``): one that stores, one for batches
of one new token per sequence (decode), one for any other batch (a decode token is then
simply a chunk of length one).
"""

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from nanovllm.kernels.decode_attention import decode_attention
from nanovllm.kernels.prefill_attention import prefill_attention
from nanovllm.kernels.store_kvcache import store_kvcache, store_kvcache_fp8
from nanovllm.layers import fp8


@dataclass
class StepInputs:
    """One step's inputs, every sequence's new tokens packed end to end with no padding:
    numpy arrays on the host, tensors on the device (``to``). The model reads the first two,
    attention the next four, and the runner samples the rows ``sample_rows`` names.

    input_ids:     [tokens]        the new tokens of every sequence, one after another
    positions:     [tokens]        each token's position in its sequence
    slot_mapping:  [tokens]        cache slot of each new token (-1: padding, not stored)
    cu_seqlens_q:  [seqs + 1]      sequence i owns rows cu_seqlens_q[i]:cu_seqlens_q[i + 1]
    context_lens:  [seqs]          tokens of sequence i in the cache after this step
    block_tables:  [seqs, blocks]  physical block of each logical block, -1 padded
    sample_rows:   [sampled seqs]  row of each sampled sequence's last token
    max_query_len: int             longest chunk in the batch (sizes the prefill grid)
    """

    input_ids: np.ndarray | torch.Tensor
    positions: np.ndarray | torch.Tensor
    slot_mapping: np.ndarray | torch.Tensor
    cu_seqlens_q: np.ndarray | torch.Tensor
    context_lens: np.ndarray | torch.Tensor
    block_tables: np.ndarray | torch.Tensor
    sample_rows: np.ndarray | torch.Tensor | None
    max_query_len: int

    @property
    def decode_only(self) -> bool:
        """Every sequence brings exactly one token."""
        return self.max_query_len == 1

    def to(self, device: torch.device) -> "StepInputs":
        arrays = [getattr(self, f.name) for f in fields(self)][:-1]
        return StepInputs(*(torch.from_numpy(a).to(device) for a in arrays),
                          max_query_len=self.max_query_len)


def store_kv(key: torch.Tensor, value: torch.Tensor, k_cache: torch.Tensor,
             v_cache: torch.Tensor, slot_mapping: torch.Tensor,
             k_scales: torch.Tensor | None = None, v_scales: torch.Tensor | None = None) -> None:
    """Row t of ``key`` and ``value`` goes to cache slot ``slot_mapping[t]``.

    A slot is ``block * block_size + offset``, so in the cache seen as one row per slot
    ``[blocks * block_size, kv_heads, head_dim]`` storing is a scatter. Slot -1 is padding.
    An 8-bit cache stores each row rounded, and its scale beside it (``fp8.py``).
    """
    real = slot_mapping >= 0
    for rows, cache, scales in ((key, k_cache, k_scales), (value, v_cache, v_scales)):
        if scales is None:
            cache.flatten(0, 1)[slot_mapping[real]] = rows[real]
        else:
            stored, row_scales = fp8.quantize(rows[real])
            cache.flatten(0, 1)[slot_mapping[real]] = stored
            scales.flatten(0, 1)[slot_mapping[real]] = row_scales


def gather_context(cache: torch.Tensor, block_table: torch.Tensor, length: int,
                   scales: torch.Tensor | None = None) -> torch.Tensor:
    """The first ``length`` tokens of one sequence, in order: [length, kv_heads, head_dim]
    (in float32 from an 8-bit cache, given its ``scales``)."""
    block_size = cache.shape[1]
    positions = torch.arange(length, device=cache.device)
    slots = block_table[positions // block_size].long() * block_size + positions % block_size
    if scales is None:
        return cache.flatten(0, 1)[slots]
    return fp8.dequantize(cache.flatten(0, 1)[slots], scales.flatten(0, 1)[slots])


def paged_attention(query: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                    meta: StepInputs, scale: float, k_scales: torch.Tensor | None = None,
                    v_scales: torch.Tensor | None = None) -> torch.Tensor:
    """Each sequence's query rows attend causally to its tokens in the cache.

    Sequence i's chunk holds its last ``query_len`` tokens of ``context_len``, so query row r
    sits at position ``context_len - query_len + r`` and sees the tokens at positions up
    to it. Grouped-query attention: query head h reads kv head ``h // (heads / kv_heads)``.
    """
    num_heads, num_kv_heads = query.shape[1], k_cache.shape[2]
    out = torch.empty_like(query)
    starts = meta.cu_seqlens_q.tolist()
    for i, context_len in enumerate(meta.context_lens.tolist()):
        rows = slice(starts[i], starts[i + 1])
        query_len = starts[i + 1] - starts[i]
        keys = gather_context(k_cache, meta.block_tables[i], context_len, k_scales).float()
        values = gather_context(v_cache, meta.block_tables[i], context_len, v_scales).float()
        keys = keys.repeat_interleave(num_heads // num_kv_heads, dim=1)
        values = values.repeat_interleave(num_heads // num_kv_heads, dim=1)
        scores = torch.einsum("qhd,khd->hqk", query[rows].float(), keys) * scale
        future = torch.ones(query_len, context_len, dtype=torch.bool,
                            device=query.device).triu(context_len - query_len + 1)
        scores = scores.masked_fill(future, float("-inf"))
        out[rows] = torch.einsum("hqk,khd->qhd", scores.softmax(dim=-1), values).to(out.dtype)
    return out


class Attention(nn.Module):
    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int,
                 normalised_queries: bool = False):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        # queries RMS-normalised before attention (Qwen3's q_norm) stay within float16's
        # range: an 8-bit cache's kernels may then multiply in float16
        self.normalised_queries = normalised_queries
        self.scale = head_dim ** -0.5
        # Views into the model runner's one big cache tensor, attached once it is allocated
        # (and into its scales, for an 8-bit cache).
        self.k_cache = torch.empty(0)
        self.v_cache = torch.empty(0)
        self.k_scales: torch.Tensor | None = None
        self.v_scales: torch.Tensor | None = None

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                meta: StepInputs) -> torch.Tensor:
        """q: [tokens, heads, head_dim]; k, v: [tokens, kv_heads, head_dim]."""
        # region plain
        if not q.is_cuda:
            store_kv(k, v, self.k_cache, self.v_cache, meta.slot_mapping, self.k_scales,
                     self.v_scales)
            return paged_attention(q, self.k_cache, self.v_cache, meta, self.scale,
                                   self.k_scales, self.v_scales)
        # endregion plain
        options = {"k_scales": self.k_scales, "v_scales": self.v_scales,
                   "float16_products": self.normalised_queries}
        if self.k_scales is None:
            store_kvcache(k, v, self.k_cache, self.v_cache, meta.slot_mapping)
        else:
            store_kvcache_fp8(k, v, self.k_cache, self.v_cache, self.k_scales, self.v_scales,
                              meta.slot_mapping)
        if meta.decode_only:
            return decode_attention(q, self.k_cache, self.v_cache, meta.block_tables,
                                    meta.context_lens, self.scale, **options)
        return prefill_attention(q, self.k_cache, self.v_cache, meta.cu_seqlens_q,
                                 meta.context_lens, meta.block_tables, self.scale,
                                 meta.max_query_len, **options)
