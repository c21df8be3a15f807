"""Token embedding in, vocabulary logits out; both may be split by vocabulary across GPUs.

With tensor parallelism each GPU keeps a contiguous slice of the vocabulary's rows
(the last slice padded with zero rows when the vocabulary does not divide evenly).
Embedding: each GPU looks up the tokens that fall in its slice, writes zeros for the
rest, and an all-reduce assembles the full vectors. LM head: each GPU scores its slice
of the vocabulary and the slices are *gathered* on GPU 0, the only one that samples;
the other GPUs get ``None``.

The LM head is the largest matrix product of a decode step (vocabulary x hidden), so
it is applied only to the rows that will be sampled: for a prompt of 1,000 tokens
only the last position's logits are needed.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from nanovllm.layers.linear import WHOLE, Shard, check_shape


class VocabParallelEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, shard: Shard = WHOLE):
        super().__init__()
        self.shard = shard
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.rows_per_rank = -(-vocab_size // shard.size)
        self.first_row = shard.rank * self.rows_per_rank
        self.weight = nn.Parameter(torch.empty(self.rows_per_rank, hidden_size))
        self.weight.weight_loader = self.weight_loader

    def weight_loader(self, param: nn.Parameter, loaded, shard_id=None) -> None:
        check_shape(torch.Size((self.vocab_size, self.hidden_size)), loaded)
        end = min(self.first_row + self.rows_per_rank, self.vocab_size)
        param.data.zero_()
        if end > self.first_row:
            param.data[:end - self.first_row].copy_(loaded[self.first_row:end])

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if self.shard.size == 1:
            return F.embedding(token_ids, self.weight)
        local = token_ids - self.first_row
        mine = (local >= 0) & (local < self.rows_per_rank)
        vectors = F.embedding(local.clamp(0, self.rows_per_rank - 1), self.weight)
        vectors = vectors * mine.unsqueeze(-1)
        dist.all_reduce(vectors)
        return vectors


class ParallelLMHead(VocabParallelEmbedding):
    product = staticmethod(F.linear)  # kernels/gemv.py may give the head a faster one

    def forward(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """hidden: [rows, hidden_size] (only the rows to sample) -> [rows, vocab_size] on
        GPU 0, None on the others."""
        logits = self.product(hidden, self.weight)
        if self.shard.size > 1:
            on_gpu0 = self.shard.rank == 0
            slices = [torch.empty_like(logits) for _ in range(self.shard.size)] if on_gpu0 else None
            dist.gather(logits, slices, dst=0)
            if not on_gpu0:
                return None
            logits = torch.cat(slices, dim=-1)
        return logits[:, :self.vocab_size]
