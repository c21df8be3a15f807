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
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def tensor_parallel_rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_shape(expected: torch.Size, loaded: torch.Tensor) -> None:
    if tuple(expected) != tuple(loaded.shape):
        raise ValueError(f"expected shape {tuple(expected)}, got {tuple(loaded.shape)}")


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

    def my_shard(self, loaded: torch.Tensor, dim: int) -> torch.Tensor:
        """The slice of a full checkpoint tensor that this GPU keeps."""
        size = loaded.shape[dim] // self.tp_size
        return loaded.narrow(dim, self.tp_rank * size, size)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
        if self.tp_size > 1 and self.shard_dim < loaded.dim():
            loaded = self.my_shard(loaded, self.shard_dim)
        check_shape(param.shape, loaded)
        param.data.copy_(loaded)

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

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
        local_sizes = [size // self.tp_size for size in self.output_sizes]
        offset = sum(local_sizes[:shard_id])
        target = param.data.narrow(0, offset, local_sizes[shard_id])
        if self.tp_size > 1:
            loaded = self.my_shard(loaded, 0)
        check_shape(target.shape, loaded)
        target.copy_(loaded)


class QKVParallelLinear(MergedColumnParallelLinear):
    """The query, key and value projections as one matrix; GPUs split the heads."""

    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, num_kv_heads: int,
                 bias: bool = False):
        super().__init__(hidden_size, [num_heads * head_dim, num_kv_heads * head_dim,
                                       num_kv_heads * head_dim], bias)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
        super().weight_loader(param, loaded, "qkv".index(shard_id))


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
