"""Joining the tensor-parallel group: which sizes work, the environment, the process group.

Every process of a tensor-parallel engine (the driver is rank 0, the workers ranks 1 to
N-1) calls ``join_group`` once, then builds its shard of the model; the layers'
collectives run over this group: NCCL between GPUs, gloo between CPU processes. NVLink
multicast stays off (``NO_MULTICAST``): on shared multi-GPU hosts a program using it can
take the GPUs out of service.
"""

import os
import socket
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from nanovllm.models.model_config import ModelConfig

T = TypeVar("T")

NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                "NVSHMEM_DISABLE_NVLS": "1"}
# Start-up loads the weights and, on GPUs, compiles kernels and captures CUDA graphs:
# it may take this many times Config.tp_timeout_s, the limit for one step.
STARTUP_STEPS = 10


def check_tensor_parallel_size(model_config: ModelConfig, size: int, device: torch.device) -> None:
    """ValueError unless every layer of this model splits ``size`` ways on this machine."""
    def splits(n: int) -> bool:
        heads, kv_heads = model_config.num_attention_heads, model_config.num_key_value_heads
        return (heads % n == 0 and (kv_heads % n == 0 or n % kv_heads == 0)
                and model_config.intermediate_size % n == 0)

    if not splits(size):
        allowed = [n for n in range(1, model_config.num_attention_heads + 1) if splits(n)]
        raise ValueError(f"tensor_parallel_size={size} is invalid for this model "
                         f"({model_config.num_attention_heads} query heads, "
                         f"{model_config.num_key_value_heads} KV heads, intermediate size "
                         f"{model_config.intermediate_size}): allowed sizes are {allowed}")
    if device.type == "cuda" and size > torch.cuda.device_count():
        raise ValueError(f"tensor_parallel_size={size} is invalid: torch sees only "
                         f"{torch.cuda.device_count()} CUDA GPU(s)")


def free_port() -> int:
    """A TCP port on this machine that nobody is listening on (for the group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank: int, size: int, port: int, device: torch.device,
               timeout_s: float) -> None:
    """Become rank ``rank`` of the group; returns once all ``size`` processes have joined.

    The rendezvous and every collective fail after ``timeout_s`` rather than wait for
    ever on a peer that never answers. That is only the backstop: within a step the
    driver's watchdog (``tp_supervisor.py``) acts much sooner.
    """
    os.environ.update(NO_MULTICAST)
    if device.type == "cuda":
        torch.cuda.set_device(rank)  # one GPU per rank; "cuda" now means this one
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=size, timeout=timedelta(seconds=timeout_s))


def fewest_across_group(value: int, device: torch.device) -> int:
    """The smallest of every rank's ``value``: all shards must agree on the KV block count."""
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())
