"""A time limit for code that runs inside the build's own process: an executed check.

``with time_limit(seconds):`` raises ``CheckTimeout`` inside the code it wraps once
``seconds`` have passed. The checks run in Sphinx's process (the blocks of a page
share a namespace, ``book.shared`` keeps a loaded model for the whole build), so the
limit is enforced in that process, in three layers:

* In the main thread, where ``signal.setitimer`` exists (Linux, macOS, and each worker
  of ``sphinx-build -j``): a ``SIGALRM`` timer whose handler raises the exception. It
  acts between two bytecodes of the block and also ends a ``time.sleep``, a socket
  read or a lock wait. A timer already set (pytest-timeout's, say) keeps working: if
  it is due first its handler runs when it would have, and afterwards it is set again
  with the time it has left.
* In another thread, or without ``SIGALRM`` (Windows): a watchdog thread raises the
  exception in the block's thread (``PyThreadState_SetAsyncExc``). That acts between two
  bytecodes only, so a blocking call is stopped when it returns.
* Neither reaches code that stays in C and never returns to the interpreter (a C loop
  that does not end), nor a block that catches ``CheckTimeout`` with a bare ``except:``
  and carries on. For those, at twice the limit, ``faulthandler`` (a C thread that needs
  no interpreter) writes the traceback of every thread to standard error, where the
  block's frame names the page and the block (``<page: check name>``), and ends the
  process with status 1: the build fails instead of hanging.

``CheckTimeout`` derives from ``BaseException`` so that ``except Exception`` in a block
does not swallow it.
"""

from __future__ import annotations

import ctypes
import faulthandler
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class CheckTimeout(BaseException):
    """The wrapped code ran longer than its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``CheckTimeout`` in the wrapped code after ``seconds``; stop the process at twice that."""
    stderr = sys.__stderr__
    hard_stop = stderr is not None and _has_fileno(stderr)
    if hard_stop:
        faulthandler.dump_traceback_later(2 * seconds, exit=True, file=stderr)
    try:
        use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        with (_alarm if use_alarm else _watchdog)(seconds):
            yield
    finally:
        if hard_stop:
            faulthandler.cancel_dump_traceback_later()


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    previous = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    outer_due = [time.monotonic() + delay if delay else None]  # when a timer set before is due
    active = [True]

    def arm() -> None:
        due = min(t for t in (deadline, outer_due[0]) if t is not None)
        signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 0.001))

    def on_alarm(signum, frame) -> None:
        if not active[0]:
            return
        now = time.monotonic()
        if now >= deadline - 0.001:
            active[0] = False
            raise CheckTimeout(f"stopped after {seconds:g} s, its time limit")
        # The timer set before ours came due first: its handler runs now, as it would have.
        outer_due[0] = now + interval if interval else None
        arm()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGALRM, on_alarm)
    arm()
    try:
        yield
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_due[0] is not None:
            left = max(outer_due[0] - time.monotonic(), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    thread_id = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"active": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["active"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, ctypes.py_object(CheckTimeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
            if state["fired"]:  # raised already, or still pending: take a pending one back
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, None)
        timer.cancel()
