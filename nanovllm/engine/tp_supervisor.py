"""Supervision of tensor parallelism: notice a dead or stuck worker, say whose failure it
was, and always get out, even when NCCL's teardown hangs.

``tp_runner.py`` is the mechanism (send each step, run the shard); this module is what
keeps it from waiting for ever. While a step runs, the driver's own thread is inside a
collective (an all-reduce or the logits gather) that cannot finish without every worker.
If a worker dies or hangs, that call would wait for a long time (NCCL: for ever). So a
thread of the driver, the ``Watchdog``, watches:

* a worker process that exits (its ``sentinel`` becomes readable at once), and
* a deadline: start-up, or one step, taking longer than ``Config.tp_timeout_s``.

Either *trips* it: it writes down the cause, kills every worker and aborts the process
group, so the driver's pending collective fails at once. Before killing hung workers it
has every process print its Python stacks to stderr (``faulthandler``; workers on
SIGUSR1), so the log shows where each one was stuck. The driver and the watchdog share
the deadline and the cause, so one lock orders them: ``done`` clears the deadline and
says whether a trip came first, so a step is either finished or failed, never both.

When a step (or start-up) fails, ``Supervisor.fail`` decides whose failure it was. A
worker's: the error names the rank and the cause, with the traceback the worker sent,
collected once the workers have exited so none is missed. The driver's own (its own load,
say): its own exception comes out, with what the workers reported attached as notes.
Either way the runner is closed for good, and every later call says why.
"""

import contextlib
import faulthandler
import os
import pickle
import signal
import threading
import time
import traceback
import warnings
from multiprocessing.connection import wait
from typing import NoReturn

import torch.distributed as dist

POLL_S = 0.1  # how often the deadline is checked
STACK_DUMP_S = 0.5  # time given to hung workers to print their stacks
STOP_GRACE_S = 5.0  # how long close() lets workers finish before killing them
EXIT_WAIT_S = 5.0  # how long a failed driver waits for the worker that failed to exit
REPORT_WAIT_S = 1.0  # how long a driver that failed by itself waits for workers' reports
LEAVE_TIMEOUT_S = 10.0  # NCCL's teardown gets this long; then it is left to the process's exit
# A worker's report must fit in the pipe's buffer: a longer one would block it in send()
# until the driver reads, and the driver reads reports once workers have exited.
REPORT_CHARS, LINE_CHARS = 16_000, 1_000
DISTRIBUTED_DIR = os.path.dirname(dist.__file__) + os.sep


class WorkerFailed(RuntimeError):
    """The driver learnt that a worker failed: the cause is the worker's, not the driver's."""


def exit_status(process, wait_s: float = 1.0) -> str:
    # The sentinel fires as the process exits, a moment before its exit code is known. Poll
    # rather than join: the driver's thread and the watchdog may both ask, and only one of
    # them reaps the process; the other sees the code once the first has stored it.
    deadline = time.monotonic() + wait_s
    while (code := process.exitcode) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def run_state(pid: int) -> str:
    """Linux's one-letter state of a live process (R running, S sleeping, T stopped, ...)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


class Watchdog(threading.Thread):
    def __init__(self, processes: dict):
        super().__init__(daemon=True, name="nanovllm-tp-watchdog")
        self.processes = processes  # rank -> multiprocessing.Process
        self.lock = threading.Lock()  # orders the driver's expect/done/stop and the trip
        self.deadline: float | None = None
        self.activity, self.timeout_s = "", 0.0
        self.cause: str | None = None  # set once, when it trips
        self.stopped = False

    def expect(self, activity: str, within_s: float) -> None:
        """The driver starts ``activity``; trip if it has not called ``done`` by then."""
        with self.lock:
            self.activity, self.timeout_s = activity, within_s
            self.deadline = time.monotonic() + within_s

    def done(self) -> bool:
        """The driver finished the activity: True if the watchdog had not tripped by then."""
        with self.lock:
            self.deadline = None
            return self.cause is None

    def stop(self) -> None:
        """Stop watching (the driver is shutting the workers down on purpose)."""
        with self.lock:
            self.stopped = True

    def run(self) -> None:
        by_sentinel = {p.sentinel: rank for rank, p in self.processes.items()}
        while True:
            exited = wait(list(by_sentinel), timeout=POLL_S)
            if exited:
                dead = sorted(by_sentinel[s] for s in exited)
                if self.claim("; ".join(f"tensor-parallel worker rank {rank} "
                                        f"{exit_status(self.processes[rank])}" for rank in dead)):
                    self.trip()
                return  # a worker is gone: tripped, or the driver is stopping them anyway
            if self.claim_overdue():
                self.dump_stacks()
                self.trip()
            with self.lock:
                if self.stopped or self.cause is not None:
                    return

    def claim(self, cause: str) -> bool:
        """Write down ``cause`` unless stopped or tripped already; True if it was written."""
        with self.lock:
            if self.stopped or self.cause is not None:
                return False
            self.cause = cause
            return True

    def claim_overdue(self) -> bool:
        """Write down a missed deadline as the cause, deciding on the deadline as it is now."""
        with self.lock:
            if (self.stopped or self.cause is not None or self.deadline is None
                    or time.monotonic() <= self.deadline):
                return False
            states = ", ".join(f"rank {rank}: {run_state(p.pid)}"
                               for rank, p in self.processes.items())
            self.cause = (f"{self.activity} did not finish within {self.timeout_s:g} s "
                          f"(see tp_timeout_s); a worker is hung or far too slow "
                          f"(worker states {states}; T means stopped)")
            return True

    def dump_stacks(self) -> None:
        faulthandler.dump_traceback(all_threads=True)  # the driver's own threads
        for process in self.processes.values():
            if process.is_alive():
                try:
                    os.kill(process.pid, signal.SIGUSR1)
                except ProcessLookupError:  # it exited a moment ago
                    pass
        time.sleep(STACK_DUMP_S)

    def trip(self) -> None:
        """Kill every worker and abort the group, so the driver's pending collective ends."""
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
        abort_group()


class Supervisor:
    """The driver's view of its workers: watches them, and fails the runner when they fail.

    It holds the processes and pipes, never the runner, so a runner nobody holds can be
    garbage-collected and its finalizer (``stop_workers``) still stop the workers.
    """

    def __init__(self, processes: dict, conns: dict):
        self.processes, self.conns = processes, conns
        self.watchdog = Watchdog(processes)
        self.watchdog.start()
        self.failure: str | None = None  # why the runner cannot run any more
        self.reports: list[str] = []  # tracebacks that failed workers sent

    @contextlib.contextmanager
    def watching(self, activity: str, within_s: float, close):
        """Run the block under the watchdog; on any failure ``close`` the runner and raise."""
        self.watchdog.expect(activity, within_s)
        try:
            if self.watchdog.cause is not None:  # a worker died since the last step
                raise WorkerFailed("a tensor-parallel worker failed")
            yield
            if not self.watchdog.done():  # tripped while our part was finishing
                raise WorkerFailed("a tensor-parallel worker failed")
        except BaseException as error:
            self.fail(error, close)

    def check_usable(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"{self.failure}; this LLM cannot run any more, make a new one")

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

    def send(self, rank: int, message: bytes) -> None:
        try:
            self.conns[rank].send_bytes(message)
        except OSError:  # its end of the pipe is closed: it has exited
            raise WorkerFailed(f"worker rank {rank} is gone") from None

    def stop_workers(self, stop_message: bytes) -> None:
        """Ask every worker to stop, kill those still running after STOP_GRACE_S, leave the
        group. Bounded, and it ends a collective left spinning by a failed step."""
        if self.failure is None:
            self.failure = "the engine was closed"
        self.watchdog.stop()
        for conn in self.conns.values():
            try:
                conn.send_bytes(stop_message)
            except OSError:  # that worker is gone already
                pass
        join_all(self.processes, STOP_GRACE_S)
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
        join_all(self.processes, STOP_GRACE_S)
        for conn in self.conns.values():
            conn.close()
        leave_group()

    def fail(self, error: BaseException, close) -> NoReturn:
        """Stop everything, then raise: ``error`` itself if the driver failed by itself (or
        Ctrl-C), else a ``RuntimeError`` that names the worker and carries its report."""
        if isinstance(error, KeyboardInterrupt):
            self.failure = "the engine stopped after KeyboardInterrupt"
            self.kill_workers()
            close()
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
            close()
            raise RuntimeError(self.failure) from error
        workers = [f"meanwhile {cause}"] if cause else []
        for note in [*workers, *self.reports]:
            error.add_note(note)
        self.failure = "\n".join([f"the engine stopped after {type(error).__name__}: {error}",
                                  *workers, *self.reports])
        close()
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


@contextlib.contextmanager
def supervised_worker(conn):
    """A worker's life: it ignores Ctrl-C (the terminal sends it to every process of the
    job; shutting down is the driver's call), prints its stacks on SIGUSR1 (the watchdog
    asks before killing a hung worker), and on any error sends the driver its traceback
    and exits at once, with no clean-up that could wait on the GPU."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        yield
    except Exception:
        try:
            conn.send(("error", shortened(traceback.format_exc())))
        except OSError:
            pass
        os._exit(1)  # the driver learns of the failure when we end


def next_step(conn):
    """The next step's inputs from the driver, or None for STOP. If the driver is gone
    (maybe mid-step, with a collective still spinning), leave the group and exit."""
    try:
        return pickle.loads(conn.recv_bytes())
    except EOFError:
        leave_group()  # bounded; aborting the group ends it
        os._exit(0)


def join_all(processes: dict, within_s: float) -> None:
    """Wait until every process has exited, or ``within_s`` has passed, whichever is first."""
    deadline = time.monotonic() + within_s
    for process in processes.values():
        process.join(max(0.0, deadline - time.monotonic()))


def report(rank: int, text: str) -> str:
    return f"--- rank {rank} reported ---\n{text.rstrip()}"


def shortened(report_text: str) -> str:
    """A worker's traceback cut to fit the pipe: each line (a huge exception message, say)
    to its start, then the whole to its end, which holds the exception."""
    lines = [line if len(line) <= LINE_CHARS
             else f"{line[:LINE_CHARS]} [{len(line) - LINE_CHARS} more characters]"
             for line in report_text.splitlines()]
    return "\n".join(lines)[-REPORT_CHARS:]


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


def abort_group() -> None:
    """Cut the group's connections now, from any thread, so a blocked collective returns.

    NCCL kernels would otherwise spin for ever on a peer that is gone; gloo fails by
    itself once the peer's sockets close, so there is nothing to abort.
    """
    if dist.is_initialized() and dist.get_backend() == "nccl":
        try:
            dist.distributed_c10d._abort_process_group()
        except (RuntimeError, ValueError):  # another thread aborted it a moment ago
            pass


def leave_group(timeout_s: float = LEAVE_TIMEOUT_S) -> bool:
    """Leave the group, without waiting for the other ranks; False if NCCL's teardown hung.

    NCCL's orderly shutdown (``destroy_process_group``) waits until every rank shuts down
    too, so a rank that has exited, or has not got there yet, holds it for ever; aborting
    frees the same resources without asking anyone. Even the abort can block once CUDA
    graphs have captured NCCL collectives (PyTorch reports the same of
    destroy_process_group, pytorch/pytorch#115388), so it runs in a thread and gets
    ``timeout_s``: past that, close() returns anyway, with a warning, and the group's
    resources go when the process exits. gloo's shutdown is local.
    """
    if not dist.is_initialized():
        return True
    if dist.get_backend() == "nccl":
        aborting = threading.Thread(target=abort_group, name="nanovllm-nccl-abort", daemon=True)
        aborting.start()
        aborting.join(timeout_s)
        if aborting.is_alive():
            warnings.warn(f"NCCL's teardown did not return within {timeout_s:g} s; the "
                          "process group is left to this process's exit, so no other "
                          "tensor-parallel LLM can start in this process", RuntimeWarning,
                          stacklevel=2)
            return False
        return True
    try:
        dist.destroy_process_group()
    except (RuntimeError, ValueError):
        pass
    return True
