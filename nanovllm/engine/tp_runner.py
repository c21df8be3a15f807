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
worker sent if it had time to. The driver collects those tracebacks only once the
workers have exited, so none that was sent is missed. When the driver itself fails
(its own load, say), its own exception is what comes out, with what the workers
reported attached as notes: a worker that failed at the same moment, of the same
cause, does not hide it. Ctrl-C (``KeyboardInterrupt``) mid-step stops the workers too
before it propagates. Whatever the failure, the runner is closed for good: every later
``run`` raises ``RuntimeError`` with the same explanation.

Clean-up: ``close()`` (also ``LLM.close()``, ``with LLM(...)``, and at interpreter exit)
drops its CUDA graphs, sends STOP, waits a little, kills what remains, leaves the group
(giving NCCL's teardown at most ``LEAVE_TIMEOUT_S``), and only then frees its GPU memory.
"""

import dataclasses
import os
import pickle
import time
import traceback
import weakref
from multiprocessing.connection import wait
from typing import NoReturn

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
EXIT_WAIT_S = 5.0  # how long a failed driver waits for the worker that failed to exit
REPORT_WAIT_S = 1.0  # how long a driver that failed by itself waits for workers' reports
DISTRIBUTED_DIR = os.path.dirname(dist.__file__) + os.sep


class WorkerFailed(RuntimeError):
    """The driver learnt that a worker failed: the cause is the worker's, not the driver's."""


def stop_workers(watchdog: Watchdog, processes: dict, conns: dict) -> None:
    """Ask every worker to stop, kill those still running after STOP_GRACE_S, leave the group."""
    watchdog.stop()
    for conn in conns.values():
        try:
            conn.send_bytes(STOP)
        except OSError:  # that worker is gone already
            pass
    join_all(processes, STOP_GRACE_S)
    for process in processes.values():
        if process.is_alive():
            process.kill()
    join_all(processes, STOP_GRACE_S)
    for conn in conns.values():
        conn.close()
    leave_group()


def join_all(processes: dict, within_s: float) -> None:
    """Wait until every process has exited, or ``within_s`` has passed, whichever is first."""
    deadline = time.monotonic() + within_s
    for process in processes.values():
        process.join(max(0.0, deadline - time.monotonic()))


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
            if not self.watchdog.done():
                raise WorkerFailed("a tensor-parallel worker failed during start-up")
        except BaseException as error:
            self.fail(error)

    def await_ready(self, rank: int) -> None:
        conn = self.conns[rank]
        while not conn.poll(POLL_S):
            if self.watchdog.cause is not None:
                raise WorkerFailed(f"worker rank {rank} did not start")
        try:
            reply = conn.recv()
        except (EOFError, OSError):  # it exited without a word
            raise WorkerFailed(f"worker rank {rank} did not start") from None
        if reply[0] == "error":
            self.reports.append(report(rank, reply[1]))
            raise WorkerFailed(f"worker rank {rank} failed to start")

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
                raise WorkerFailed("a tensor-parallel worker failed")
            for rank, conn in self.conns.items():
                try:
                    conn.send_bytes(message)
                except OSError:  # its end of the pipe is closed: it has exited
                    raise WorkerFailed(f"worker rank {rank} is gone") from None
            token_ids = super().run_arrays(arrays, sampling)
            if not self.watchdog.done():  # tripped while our part was finishing
                raise WorkerFailed("a tensor-parallel worker failed")
        except BaseException as error:
            self.fail(error)
        return token_ids

    # What follows is supervision: deciding whose failure it was and saying so.

    def fail(self, error: BaseException) -> NoReturn:
        """Stop everything, then raise: ``error`` itself if the driver failed by itself (or
        Ctrl-C), else a ``RuntimeError`` that names the worker and carries its report."""
        if isinstance(error, KeyboardInterrupt):
            self.failure = "the engine stopped after KeyboardInterrupt"
            self.kill_workers()
            self.close()
            raise error
        by_a_peer = caused_by_a_peer(error, tripped=self.watchdog.cause is not None)
        # The watchdog may be a moment behind: a worker that failed is about to exit.
        cause = self.watchdog.cause or self.dead_workers(
            EXIT_WAIT_S if by_a_peer else REPORT_WAIT_S)
        self.kill_workers()
        self.read_reports()  # after they have exited: everything they sent is in the pipes
        if by_a_peer:
            self.failure = "\n".join([f"tensor parallelism failed: {cause or error}",
                                      *self.reports])
            self.close()
            raise RuntimeError(self.failure) from error
        workers = [f"meanwhile {cause}"] if cause else []
        for note in [*workers, *self.reports]:
            error.add_note(note)
        self.failure = "\n".join([f"the engine stopped after {type(error).__name__}: {error}",
                                  *workers, *self.reports])
        self.close()
        raise error

    def kill_workers(self) -> None:
        """End every worker now (mid-step they cannot stop politely) and wait until they have."""
        self.watchdog.stop()  # what it would see from here on is our doing
        for process in self.processes.values():
            process.kill()
        join_all(self.processes, STOP_GRACE_S)

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
                        self.reports.append(report(rank, reply[1]))
            except (EOFError, OSError, pickle.UnpicklingError):  # the end, or a cut-off message
                pass


def report(rank: int, text: str) -> str:
    return f"--- rank {rank} reported ---\n{text.rstrip()}"


def caused_by_a_peer(error: BaseException, tripped: bool) -> bool:
    """Whether the driver's ``error`` only echoes another rank's failure.

    That is so when the driver saw a worker fail (``WorkerFailed``), when the error came
    out of ``torch.distributed`` (a collective whose peer died or was aborted), or when it
    is a ``RuntimeError`` raised after the watchdog had killed the workers and aborted the
    group (pending GPU work may then fail outside torch.distributed). Anything else, a
    bad checkpoint's ``ValueError`` say, is the driver's own failure.
    """
    if isinstance(error, WorkerFailed) or (tripped and isinstance(error, RuntimeError)):
        return True
    return any(frame.f_code.co_filename.startswith(DISTRIBUTED_DIR)
               for frame, _ in traceback.walk_tb(error.__traceback__))
