"""Linear layers that know how to be split across GPUs and how to load their weights.

Tensor parallelism splits a matrix product between GPUs in one of two ways. A
*column*-parallel layer gives each GPU a slice of the output features, so no
communication is needed until someone wants the whole output. A *row*-parallel layer
gives each GPU a slice of the input features; each GPU then holds a partial sum and an
all-reduce adds them. A transformer block pairs them (column then row) so that one
all-reduce per block suffices. With one GPU (or on CPU) the rank is 0 and the size is
1, and every layer here is an ordinary ``nn.Linear``.

Checkpoints store q/k/v and gate/up as separate tensors; we store each group as one
*merged* matrix so one matrix product computes all of them. ``weight_loader`` knows
where each checkpoint tensor lands inside the merged (and possibly sharded) matrix.

A weight loader receives the checkpoint tensor *unread* (a lazy slice of the file, see
``utils/loader.py``) and indexes it for the rows or columns its GPU keeps, so each GPU
reads its own share from disk and nobody materialises the whole matrix.
"""

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

_building = (0, 1)  # (rank, size) of the shard being built; see building_shard


@contextlib.contextmanager
def building_shard(rank: int, size: int):
    """Layers created inside this block are rank ``rank``'s shard of a ``size``-way split.

    The model runner says this explicitly rather than the layers asking
    ``torch.distributed``: a process may hold a process group and still build an
    unsplit model (a one-GPU engine next to a tensor-parallel one, in a test).
    """
    global _building
    previous, _building = _building, (rank, size)
    try:
        yield
    finally:
        _building = previous


def tensor_parallel_rank_and_size() -> tuple[int, int]:
    return _building


def check_shape(expected, loaded) -> None:
    if tuple(expected) != tuple(loaded.shape):
        raise ValueError(f"expected shape {tuple(expected)}, got {tuple(loaded.shape)}")


def read_part(loaded, dim: int, start: int, length: int) -> torch.Tensor:
    """Rows (dim 0) or columns (dim 1) [start, start + length) of a checkpoint tensor.

    Works on a lazy safetensors slice, reading only those bytes, and on a plain tensor.
    """
    index = (slice(None),) * dim + (slice(start, start + length),)
    return loaded[index]


class ColumnParallelLinear(nn.Module):
    """y = x W^T + b with W's output rows split evenly between the GPUs."""

    shard_dim = 0

    def __init__(self, input_size: int, output_size: int, bias: bool = False):
        super().__init__()
        self.tp_rank, self.tp_size = tensor_parallel_rank_and_size()
        in_features, out_features = self.local_shape(input_size, output_size)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.weight.weight_loader = self.weight_loader
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
            self.bias.weight_loader = self.weight_loader

    def local_shape(self, input_size: int, output_size: int) -> tuple[int, int]:
        if output_size % self.tp_size:
            raise ValueError(f"output size {output_size} does not split into {self.tp_size} GPUs")
        return input_size, output_size // self.tp_size

    def weight_loader(self, param: nn.Parameter, loaded, shard_id=None) -> None:
        if self.shard_dim >= param.dim():  # a row-parallel bias: every GPU keeps all of it
            check_shape(param.shape, loaded)
            param.data.copy_(loaded[:])
            return
        full_shape = list(param.shape)
        full_shape[self.shard_dim] *= self.tp_size
        check_shape(full_shape, loaded)
        size = param.shape[self.shard_dim]
        param.data.copy_(read_part(loaded, self.shard_dim, self.tp_rank * size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel outputs stacked into one matrix (e.g. gate and up).

    ``shard_id`` is the index of the part being loaded; each GPU's slice holds its
    share of every part, in order, so splitting the output later gives whole parts.
    """

    def __init__(self, input_size: int, output_sizes: list[int], bias: bool = False):
        self.output_sizes = list(output_sizes)
        super().__init__(input_size, sum(output_sizes), bias)

    def local_shape(self, input_size: int, output_size: int) -> tuple[int, int]:
        for size in self.output_sizes:
            if size % self.tp_size:
                raise ValueError(f"output size {size} does not split into {self.tp_size} GPUs")
        return input_size, sum(self.part_rows(part)[1] for part in range(len(self.output_sizes)))

    def part_rows(self, part: int) -> tuple[int, int]:
        """(first row, number of rows) of checkpoint part ``part`` that this GPU keeps."""
        rows = self.output_sizes[part] // self.tp_size
        return self.tp_rank * rows, rows

    def weight_loader(self, param: nn.Parameter, loaded, shard_id=None) -> None:
        part = self.part_index(shard_id)
        check_shape((self.output_sizes[part], *param.shape[1:]), loaded)
        offset = sum(self.part_rows(p)[1] for p in range(part))
        start, rows = self.part_rows(part)
        param.data.narrow(0, offset, rows).copy_(read_part(loaded, 0, start, rows))

    def part_index(self, shard_id) -> int:
        return shard_id


class QKVParallelLinear(MergedColumnParallelLinear):
    """The query, key and value projections as one matrix; GPUs split the heads.

    Query heads always split evenly. KV heads split too while there are at least as
    many as GPUs. With fewer KV heads than GPUs (2 KV heads on 4 GPUs, say) a KV head
    cannot be cut, so it is *replicated*: each GPU keeps the one KV head that its
    query heads read (in grouped-query attention, query head h reads KV head
    h // (heads / kv_heads)), and GPUs 0-1 hold KV head 0 while GPUs 2-3 hold KV head 1.
    That needs the GPU count to be a multiple of the KV-head count.
    """

    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, num_kv_heads: int,
                 bias: bool = False):
        _, tp_size = tensor_parallel_rank_and_size()
        if num_heads % tp_size or (num_kv_heads % tp_size and tp_size % num_kv_heads):
            raise ValueError(f"{num_heads} query heads and {num_kv_heads} KV heads do not "
                             f"split into {tp_size} GPUs")
        self.head_dim, self.num_kv_heads = head_dim, num_kv_heads
        self.num_local_kv_heads = max(1, num_kv_heads // tp_size)
        super().__init__(hidden_size, [num_heads * head_dim, num_kv_heads * head_dim,
                                       num_kv_heads * head_dim], bias)

    def local_shape(self, input_size: int, output_size: int) -> tuple[int, int]:
        return input_size, sum(self.part_rows(part)[1] for part in range(3))

    def part_rows(self, part: int) -> tuple[int, int]:
        if part == 0 or self.num_kv_heads >= self.tp_size:
            return super().part_rows(part)
        kv_head = self.tp_rank * self.num_kv_heads // self.tp_size  # replicated KV head
        return kv_head * self.head_dim, self.head_dim

    def part_index(self, shard_id) -> int:
        return "qkv".index(shard_id)


class RowParallelLinear(ColumnParallelLinear):
    """y = x W^T + b with W's input columns split; an all-reduce sums the partial results."""

    shard_dim = 1

    def local_shape(self, input_size: int, output_size: int) -> tuple[int, int]:
        if input_size % self.tp_size:
            raise ValueError(f"input size {input_size} does not split into {self.tp_size} GPUs")
        return input_size // self.tp_size, output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Add the bias once, after the partial sums are combined, not once per GPU.
        y = F.linear(x, self.weight)
        if self.tp_size > 1:
            dist.all_reduce(y)
        return y if self.bias is None else y + self.bias
