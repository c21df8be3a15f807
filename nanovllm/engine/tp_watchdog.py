"""The driver's watchdog: notice a dead or stuck worker and unblock the driver.

While a step runs, the driver's own thread is inside a collective (an all-reduce or the
logits gather) that cannot finish without every worker. If a worker dies or hangs, that
call would wait for a long time (NCCL: for ever). So a thread of the driver watches:

* a worker process that exits (its ``sentinel`` becomes readable at once), and
* a deadline: start-up, or one step, taking longer than ``Config.tp_timeout_s``.

Either *trips* it: it writes down the cause, kills every worker and aborts the process
group. Killing the peers makes the driver's pending collective fail straight away, and
the tensor-parallel runner turns that failure into an error that names the cause.
Before killing hung workers it has every process print its Python stacks to stderr
(``faulthandler``; workers on SIGUSR1), so the log shows where each one was stuck.

The driver and the watchdog's thread share the deadline and the cause, so one lock
orders them: the watchdog decides to trip and writes the cause under it, and ``done``
clears the deadline under it and says whether a trip came first. A step whose ``done``
returns True can no longer be tripped by its own deadline, and one whose ``done``
returns False is treated as failed, never half-finished.
"""

import faulthandler
import os
import signal
import threading
import time
from multiprocessing.connection import wait

from nanovllm.engine.parallel import abort_group

POLL_S = 0.1  # how often the deadline is checked
STACK_DUMP_S = 0.5  # time given to hung workers to print their stacks


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
