"""Attention over the paged KV cache, and the per-step metadata it needs.

Every layer does the same two things with its new keys and values. First it stores
them, for every token of the batch, into its slice of the KV cache; only then does it
attend, reading keys and values back from the cache. Storing first is what lets one
code path serve fresh prompts, prompts whose prefix came from the prefix cache, later
chunks of a chunked prefill and decode tokens alike: whatever a query may see is in
the cache by the time attention runs (and a sequence may even read a block that
another sequence of the same batch has just written).

A batch in which every sequence brings exactly one token (pure decode) uses the decode
kernel; any other batch, including mixed ones, uses the varlen prefill kernel, where a
decode token is simply a chunk of length one.
"""

from dataclasses import dataclass

import torch
from torch import nn

from nanovllm.kernels.decode_attention import decode_attention
from nanovllm.kernels.prefill_attention import prefill_attention
from nanovllm.kernels.store_kvcache import store_kvcache


@dataclass
class AttentionMetadata:
    """Where this step's tokens go in the cache and what each sequence may read.

    slot_mapping:  [tokens]       cache slot of each new token (-1: padding, not stored)
    cu_seqlens_q:  [seqs + 1]     sequence i owns query rows cu_seqlens_q[i]:cu_seqlens_q[i+1]
    context_lens:  [seqs]         tokens of sequence i in the cache after this step
    block_tables:  [seqs, blocks] physical block of each logical block, -1 padded
    max_query_len: int            longest chunk in the batch (sizes the prefill grid)
    decode_only:   bool           every sequence brings exactly one token
    """

    slot_mapping: torch.Tensor
    cu_seqlens_q: torch.Tensor
    context_lens: torch.Tensor
    block_tables: torch.Tensor
    max_query_len: int
    decode_only: bool


class Attention(nn.Module):
    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = head_dim ** -0.5
        # Views into the model runner's one big cache tensor, attached once it is allocated.
        self.k_cache = torch.empty(0)
        self.v_cache = torch.empty(0)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                meta: AttentionMetadata) -> torch.Tensor:
        """q: [tokens, heads, head_dim]; k, v: [tokens, kv_heads, head_dim]."""
        store_kvcache(k, v, self.k_cache, self.v_cache, meta.slot_mapping)
        if meta.decode_only:
            return decode_attention(q, self.k_cache, self.v_cache, meta.block_tables,
                                    meta.context_lens, self.scale)
        return prefill_attention(q, self.k_cache, self.v_cache, meta.cu_seqlens_q,
                                 meta.context_lens, meta.block_tables, self.scale,
                                 meta.max_query_len)
