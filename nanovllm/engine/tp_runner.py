"""The driver's side of tensor parallelism: start the workers, send them each step, stop them.

``TensorParallelRunner`` is rank 0's ``ModelRunner`` (the driver holds a shard too) plus
N-1 worker processes (``tp_worker.py``), one for each further GPU, or CPU processes
talking through gloo. The engine uses it exactly like a ``ModelRunner``. Each step it

1. builds the step's input arrays (``model_inputs.InputArrays``: token ids, positions,
   cache slots, context lengths, block tables, which rows are sampled), pickles them
   once and writes the bytes to every worker's pipe;
2. runs its own shard of the step, whose collectives wait for the workers' shards;
3. samples from the logits gathered on rank 0 and returns the tokens.

A worker gets numbers, not sequences: unpickling a few numpy arrays is a copy, while
unpickling the batch's ``Sequence`` objects cost more than a millisecond a step at 256
sequences, time during which the driver's GPU waits at the first all-reduce for the
worker's. Nothing comes back on the pipes during a step: when step 2 returns, every
rank has taken part in every collective of it. ``last_step_bytes`` is the size of the
last message. It grows with the batch and the block tables, not with the text: 8 bytes
for each of three numbers per token and three per sequence, plus 4 per block-table entry
(a decode step of 256 sequences with 1,000 tokens of context each, in 16-token blocks:
about 77 KB).

Failures: the ``Watchdog`` trips on a worker that exits or on start-up or a step taking
longer than ``Config.tp_timeout_s``; it kills the workers and aborts the group, and
``run`` raises ``RuntimeError`` naming the rank and the cause, with the traceback the
worker sent if it had time to. Ctrl-C (``KeyboardInterrupt``) mid-step stops the
workers too before it propagates. Either way the runner is closed for good.

Clean-up: ``close()`` (also ``LLM.close()``, ``with LLM(...)``, and at interpreter exit)
drops its CUDA graphs, sends STOP, waits a little, kills what remains, leaves the group
(giving NCCL's teardown at most ``LEAVE_TIMEOUT_S``), and only then frees its GPU memory.
"""

import dataclasses
import os
import pickle
import weakref
from multiprocessing.connection import wait

import torch.distributed as dist
import torch.multiprocessing as mp

from nanovllm.engine.model_runner import ModelRunner, resolve_device
from nanovllm.engine.parallel import (
    NO_MULTICAST,
    STARTUP_STEPS,
    check_tensor_parallel_size,
    free_port,
    join_group,
    leave_group,
)
from nanovllm.engine.tp_watchdog import POLL_S, Watchdog, exit_status
from nanovllm.engine.tp_worker import STOP, worker_main

STOP_GRACE_S = 5.0  # how long close() lets workers finish before killing them


def stop_workers(watchdog: Watchdog, processes: dict, conns: dict) -> None:
    """Ask every worker to stop, kill those still running after STOP_GRACE_S, leave the group."""
    watchdog.stop()
    for conn in conns.values():
        try:
            conn.send_bytes(STOP)
        except OSError:  # that worker is gone already
            pass
    for process in processes.values():
        process.join(STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()
    for conn in conns.values():
        conn.close()
    leave_group()


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
        self.processes, self.conns = {}, {}
        for rank in range(1, size):
            ours, theirs = spawn.Pipe()
            self.processes[rank] = spawn.Process(
                target=worker_main, args=(rank, config, model_config, folder, port, theirs),
                name=f"nanovllm-tp-rank{rank}", daemon=True)
            self.processes[rank].start()
            theirs.close()
            self.conns[rank] = ours
        self.watchdog = Watchdog(self.processes)
        self.watchdog.start()
        # Runs once: from close(), when the runner is garbage, or at interpreter exit.
        self.stop_workers = weakref.finalize(self, stop_workers, self.watchdog,
                                             self.processes, self.conns)
        self.failure: str | None = None  # why this runner cannot run any more
        self.reports: list[str] = []  # tracebacks that failed workers sent
        self.last_step_bytes = 0
        startup_s = STARTUP_STEPS * config.tp_timeout_s
        self.watchdog.expect("start-up", startup_s)
        try:
            join_group(0, size, port, device, startup_s)
            super().__init__(config, model_config, folder, rank=0)
            for rank in self.conns:
                self.await_ready(rank)
        except BaseException as error:
            self.fail(error)
        self.watchdog.done()

    def await_ready(self, rank: int) -> None:
        conn = self.conns[rank]
        while not conn.poll(POLL_S):
            if self.watchdog.cause is not None:
                raise RuntimeError(f"worker rank {rank} did not start")
        reply = conn.recv()
        if reply[0] == "error":
            self.reports.append(f"--- rank {rank} reported ---\n{reply[1].rstrip()}")
            raise RuntimeError(f"worker rank {rank} failed to start")

    def close(self) -> None:
        """Stop the workers and leave the group; safe to call more than once."""
        if self.failure is None:
            self.failure = "the engine was closed"
        self.graphs = None  # first: the CUDA graphs hold NCCL collectives of the group
        self.stop_workers()  # bounded, and it ends a collective left spinning by a failed step
        super().close()  # last: freeing GPU memory waits until the GPU is idle

    def check_usable(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"{self.failure}; this LLM cannot run any more, make a new one")

    def run_arrays(self, arrays, sampling) -> list[int]:
        self.check_usable()
        message = pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL)
        self.last_step_bytes = len(message)
        self.watchdog.expect("a step", self.config.tp_timeout_s)
        try:
            if self.watchdog.cause is not None:  # a worker died since the last step
                raise RuntimeError("a tensor-parallel worker failed")
            for conn in self.conns.values():
                conn.send_bytes(message)
            token_ids = super().run_arrays(arrays, sampling)
            if self.watchdog.cause is not None:  # tripped while our part was finishing
                raise RuntimeError("a tensor-parallel worker failed")
        except BaseException as error:
            self.fail(error)
        finally:
            self.watchdog.done()
        return token_ids

    def fail(self, error: BaseException) -> None:
        """Stop everything, then raise: the cause when a worker failed, else ``error`` itself."""
        self.read_reports()  # a failing worker reports before it exits
        cause = self.watchdog.cause
        if cause is None and not isinstance(error, KeyboardInterrupt):
            # The watchdog may be a moment behind; a worker that reported is about to exit.
            cause = self.dead_workers(wait_s=5.0 if self.reports else 1.0)
        for process in self.processes.values():
            process.kill()  # mid-step, they cannot stop politely
        if cause is None:  # the driver's own error (or Ctrl-C): pass it on as it is
            self.failure = f"the engine stopped after {type(error).__name__}: {error}"
            self.close()
            raise error
        self.failure = "\n".join([f"tensor parallelism failed: {cause}", *self.reports])
        self.close()
        raise RuntimeError(self.failure) from error

    def dead_workers(self, wait_s: float) -> str | None:
        """Which workers have exited, waiting up to ``wait_s`` for the first one to."""
        ended = wait([p.sentinel for p in self.processes.values()], timeout=wait_s)
        dead = [f"tensor-parallel worker rank {rank} {exit_status(p)}"
                for rank, p in self.processes.items() if p.sentinel in ended]
        return "; ".join(dead) or None

    def read_reports(self) -> None:
        """Collect the tracebacks that failed workers sent before exiting, if any."""
        for rank, conn in self.conns.items():
            try:
                while conn.poll(0):
                    reply = conn.recv()
                    if reply[0] == "error":
                        self.reports.append(f"--- rank {rank} reported ---\n{reply[1].rstrip()}")
            except (EOFError, OSError):
                pass
