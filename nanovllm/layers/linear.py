"""Linear layers that know how to be split across GPUs and how to load their weights.

Tensor parallelism splits a matrix product between GPUs in one of two ways. A
*column*-parallel layer gives each GPU a slice of the output features, so no
communication is needed until someone wants the whole output. A *row*-parallel layer
gives each GPU a slice of the input features; each GPU then holds a partial sum and an
all-reduce adds them. A transformer block pairs them (column then row) so that one
all-reduce per block suffices. With one GPU (or on CPU) the shard is rank 0 of 1, and
every layer here is an ordinary ``nn.Linear``.

Checkpoints store q/k/v and gate/up as separate tensors; we store each group as one
*merged* matrix so one matrix product computes all of them. ``weight_loader`` knows
where each checkpoint tensor lands inside the merged (and possibly sharded) matrix.

A weight loader receives the checkpoint tensor *unread* (a lazy slice of the file, see
``utils/loader.py``) and indexes it for the rows or columns its GPU keeps, so each GPU
reads its own share from disk and nobody materialises the whole matrix. The engine checks
once that the model splits into the number of GPUs (``engine/parallel.py``).
"""

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Shard:
    """Which part of a split model a process holds: rank ``rank`` of ``size``."""

    rank: int = 0
    size: int = 1


WHOLE = Shard()  # the whole model, in one process


def kv_heads_per_gpu(num_kv_heads: int, tp_size: int) -> int:
    """KV heads each GPU holds: an even split, or one replicated when there are fewer than
    GPUs (see ``QKVParallelLinear``)."""
    return max(1, num_kv_heads // tp_size)


def check_shape(expected, loaded) -> None:
    if tuple(expected) != tuple(loaded.shape):
        raise ValueError(f"expected shape {tuple(expected)}, got {tuple(loaded.shape)}")


class ParallelLinear(nn.Module):
    """y = x W^T + b for this GPU's share of W, [out_features, in_features]."""

    product = staticmethod(F.linear)  # kernels/gemv.py may give a layer a faster one

    def __init__(self, in_features: int, out_features: int, bias: bool, shard: Shard):
        super().__init__()
        self.shard = shard
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.weight.weight_loader = self.weight_loader
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        if bias:
            self.bias.weight_loader = self.weight_loader

    def load_part(self, param: nn.Parameter, loaded, dim: int) -> None:
        """This GPU's slice of ``loaded`` along ``dim``: rows (0) or columns (1)."""
        size = param.shape[dim]
        full = list(param.shape)
        full[dim] *= self.shard.size
        check_shape(full, loaded)
        start = self.shard.rank * size
        param.data.copy_(loaded[(slice(None),) * dim + (slice(start, start + size),)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.product(x, self.weight, self.bias)


class ColumnParallelLinear(ParallelLinear):
    """W's output rows split evenly between the GPUs."""

    def __init__(self, input_size: int, output_size: int, bias: bool = False,
                 shard: Shard = WHOLE):
        super().__init__(input_size, output_size // shard.size, bias, shard)

    def weight_loader(self, param: nn.Parameter, loaded, shard_id=None) -> None:
        self.load_part(param, loaded, dim=0)


class MergedColumnParallelLinear(ParallelLinear):
    """Several column-parallel outputs stacked into one matrix (e.g. gate and up).

    ``shard_id`` is the index of the part being loaded; each GPU's slice holds its
    share of every part, in order, so splitting the output later gives whole parts.
    """

    def __init__(self, input_size: int, output_sizes: list[int], bias: bool = False,
                 shard: Shard = WHOLE):
        self.output_sizes, self.shard = list(output_sizes), shard  # part_rows reads them
        local = sum(self.part_rows(p)[1] for p in range(len(output_sizes)))
        super().__init__(input_size, local, bias, shard)

    def part_rows(self, part: int) -> tuple[int, int]:
        """(first row, number of rows) of checkpoint part ``part`` that this GPU keeps."""
        rows = self.output_sizes[part] // self.shard.size
        return self.shard.rank * rows, rows

    def weight_loader(self, param: nn.Parameter, loaded, shard_id=None) -> None:
        part = "qkv".index(shard_id) if isinstance(shard_id, str) else shard_id
        check_shape((self.output_sizes[part], *param.shape[1:]), loaded)
        offset = sum(self.part_rows(p)[1] for p in range(part))
        start, rows = self.part_rows(part)
        param.data.narrow(0, offset, rows).copy_(loaded[start:start + rows])


class QKVParallelLinear(MergedColumnParallelLinear):
    """The query, key and value projections as one matrix; GPUs split the heads.

    Query heads always split evenly. KV heads split too while there are at least as
    many as GPUs. With fewer KV heads than GPUs (2 KV heads on 4 GPUs, say) a KV head
    cannot be cut, so it is *replicated*: each GPU keeps the one KV head that its
    query heads read (in grouped-query attention, query head h reads KV head
    h // (heads / kv_heads)), and GPUs 0-1 hold KV head 0 while GPUs 2-3 hold KV head 1.
    """

    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, num_kv_heads: int,
                 bias: bool = False, shard: Shard = WHOLE):
        self.head_dim, self.num_kv_heads = head_dim, num_kv_heads
        self.num_local_kv_heads = kv_heads_per_gpu(num_kv_heads, shard.size)
        super().__init__(hidden_size, [num_heads * head_dim, num_kv_heads * head_dim,
                                       num_kv_heads * head_dim], bias, shard)

    def part_rows(self, part: int) -> tuple[int, int]:
        if part == 0 or self.num_kv_heads >= self.shard.size:
            return super().part_rows(part)
        kv_head = self.shard.rank * self.num_kv_heads // self.shard.size  # replicated KV head
        return kv_head * self.head_dim, self.head_dim


class RowParallelLinear(ParallelLinear):
    """W's input columns split; an all-reduce sums the partial results, then the bias is
    added once (every GPU keeps all of it)."""

    def __init__(self, input_size: int, output_size: int, bias: bool = False,
                 shard: Shard = WHOLE):
        super().__init__(input_size // shard.size, output_size, bias, shard)

    def weight_loader(self, param: nn.Parameter, loaded, shard_id=None) -> None:
        if param.dim() == 1:  # the bias
            check_shape(param.shape, loaded)
            param.data.copy_(loaded[:])
        else:
            self.load_part(param, loaded, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.product(x, self.weight)
        if self.shard.size > 1:
            dist.all_reduce(y)
        return y if self.bias is None else y + self.bias
