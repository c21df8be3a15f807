"""A tensor-parallel worker: one process, one shard of the model, no decisions of its own.

The driver (rank 0) schedules and samples; a worker (rank 1 to N-1) only computes. It
joins the group, builds its shard, says it is ready, then runs every step the driver
sends, in order. The step's collectives (an all-reduce after each row-parallel layer and
the embedding, the logits gather at the end) keep all ranks in lock-step, so a worker
has nothing to send back: its share of the answer travels through the collectives.

The control channel is one pipe per worker:

* driver -> worker: each step's input arrays, pickled; ``STOP`` to finish;
* worker -> driver: ``("ready",)`` once, or ``("error", traceback)`` just before it exits
  because something failed.

How a worker fails, ignores Ctrl-C and never outlives its driver is in
``tp_supervisor.py`` (``supervised_worker``, ``next_step``).
"""

import pickle

import torch

from nanovllm.engine.model_runner import ModelRunner
from nanovllm.engine.parallel import STARTUP_STEPS, join_group
from nanovllm.engine.tp_supervisor import leave_group, next_step, supervised_worker

STOP = pickle.dumps(None)


def worker_main(rank: int, config, model_config, folder, port: int, conn) -> None:
    """Entry point of worker ``rank``'s process (started by ``tp_runner``)."""
    device = torch.device(config.device)  # resolved by the driver: "cpu" or "cuda"
    if device.type == "cpu":
        torch.set_num_threads(1)  # N processes share the cores; one thread each
    with supervised_worker(conn):
        join_group(rank, config.tensor_parallel_size, port, device,
                   STARTUP_STEPS * config.tp_timeout_s)
        runner = ModelRunner(config, model_config, folder, rank)
        conn.send(("ready",))
        while (inputs := next_step(conn)) is not None:
            runner.run_inputs(inputs, sampling=None)
    runner.graphs = None  # STOP: the CUDA graphs hold NCCL collectives; drop them first
    leave_group()
