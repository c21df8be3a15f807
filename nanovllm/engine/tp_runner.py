"""Tensor parallelism, the driver's side: start the workers, send them each step, stop them.

``TensorParallelRunner`` is rank 0's ``ModelRunner`` (the driver holds a shard too) plus
N-1 worker processes (``tp_worker.py``), one for each further GPU, or CPU processes
talking through gloo. The engine uses it exactly like a ``ModelRunner``. Each step it

1. pickles the step's input arrays once (token ids, positions, cache slots, context
   lengths, block tables, which rows are sampled) and writes the bytes to every
   worker's pipe;
2. runs its own shard of the step, whose collectives wait for the workers' shards;
3. samples from the logits gathered on rank 0 and returns the tokens.

A worker gets numbers, not sequences: unpickling a few arrays is a copy, while the
batch's ``Sequence`` objects would take far longer, time the driver's GPU spends waiting
at the first all-reduce. Nothing comes back on the pipes during a step: when step 2
returns, every rank has taken part in every collective of it. A worker that dies or
hangs is the ``Supervisor``'s part (``tp_supervisor.py``).
"""

import dataclasses
import os
import pickle
import weakref

import torch.distributed as dist
import torch.multiprocessing as mp

from nanovllm.engine.model_runner import ModelRunner, resolve_device
from nanovllm.engine.parallel import (
    NO_MULTICAST,
    STARTUP_STEPS,
    check_tensor_parallel_size,
    free_port,
    join_group,
)
from nanovllm.engine.tp_supervisor import Supervisor
from nanovllm.engine.tp_worker import STOP, worker_main


class TensorParallelRunner(ModelRunner):
    def __init__(self, config, model_config, folder):
        device = resolve_device(config.device)
        size = config.tensor_parallel_size
        check_tensor_parallel_size(model_config, size, device)
        if dist.is_initialized():
            raise RuntimeError("this process already belongs to a torch.distributed group; "
                               "close() the other tensor-parallel LLM first (if it was "
                               "closed, NCCL's teardown hung: start a new process)")
        config = dataclasses.replace(config, device=device.type)  # workers must agree
        os.environ.update(NO_MULTICAST)  # before the workers start: they inherit it
        port, spawn = free_port(), mp.get_context("spawn")
        processes, self.conns = {}, {}
        for rank in range(1, size):
            ours, theirs = spawn.Pipe()
            processes[rank] = spawn.Process(
                target=worker_main, args=(rank, config, model_config, folder, port, theirs),
                name=f"nanovllm-tp-rank{rank}", daemon=True)
            processes[rank].start()
            theirs.close()
            self.conns[rank] = ours
        self.supervisor = Supervisor(processes, self.conns)
        # Runs once: from close(), when the runner is garbage, or at interpreter exit.
        self.stop_workers = weakref.finalize(self, self.supervisor.stop_workers, STOP)
        startup_s = STARTUP_STEPS * config.tp_timeout_s
        with self.supervisor.watching("start-up", startup_s, self.close):
            join_group(0, size, port, device, startup_s)
            super().__init__(config, model_config, folder, rank=0)
            for rank in self.conns:
                self.supervisor.await_ready(rank)

    @property
    def processes(self) -> dict:
        return self.supervisor.processes

    def close(self) -> None:
        """Stop the workers and leave the group; safe to call more than once."""
        self.graphs = None  # first: the CUDA graphs hold NCCL collectives of the group
        self.stop_workers()
        super().close()  # last: freeing GPU memory waits until the GPU is idle

    def check_usable(self) -> None:
        self.supervisor.check_usable()

    def run_inputs(self, inputs, sampling, score=None) -> list[int]:
        self.check_usable()
        message = pickle.dumps(inputs, protocol=pickle.HIGHEST_PROTOCOL)
        with self.supervisor.watching("a step", self.config.tp_timeout_s, self.close):
            for rank in self.conns:
                self.supervisor.send(rank, message)
            return super().run_inputs(inputs, sampling, score)
