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

A worker ignores Ctrl-C (the terminal sends it to every process of the job): shutting
down is the driver's call. On SIGUSR1 it prints its Python stacks (the driver's watchdog
asks before killing a hung worker). If the driver disappears, the pipe reports end-of-file and
the worker exits, so it is never left behind.
"""

import faulthandler
import os
import pickle
import signal
import traceback

import torch

from nanovllm.engine.model_runner import ModelRunner
from nanovllm.engine.parallel import STARTUP_STEPS, join_group
from nanovllm.engine.tp_supervisor import leave_group, shortened

STOP = pickle.dumps(None)


def worker_main(rank: int, config, model_config, folder, port: int, conn) -> None:
    """Entry point of worker ``rank``'s process (started by ``tp_runner``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the watchdog asks on a hang
    device = torch.device(config.device)  # resolved by the driver: "cpu" or "cuda"
    if device.type == "cpu":
        torch.set_num_threads(1)  # N processes share the cores; one thread each
    try:
        join_group(rank, config.tensor_parallel_size, port, device,
                   STARTUP_STEPS * config.tp_timeout_s)
        runner = ModelRunner(config, model_config, folder, rank)
        conn.send(("ready",))
        while True:
            try:
                message = conn.recv_bytes()
            except EOFError:  # the driver is gone, maybe mid-step: a collective may still spin
                leave_group()  # bounded; aborting the group ends it
                os._exit(0)  # no clean-up that could wait on the GPU
            inputs = pickle.loads(message)
            if inputs is None:
                break
            runner.run_inputs(inputs, sampling=None)
    except Exception:
        try:
            conn.send(("error", shortened(traceback.format_exc())))
        except OSError:
            pass
        os._exit(1)  # at once, no clean-up: the driver learns of the failure when we end
    runner.graphs = None  # STOP: the CUDA graphs hold NCCL collectives; drop them first
    leave_group()
