"""Telling the user's Ctrl-C from a ``KeyboardInterrupt`` that a check raises itself.

A check runs in the build's process, so ``raise KeyboardInterrupt`` in a block and the
user pressing Ctrl-C at the terminal raise the same exception at the same place. The
first is that block's failure and the build goes on; the second must stop the build.
What differs is the signal: while a block runs, ``watch_ctrl_c()`` puts a SIGINT handler
in front of the one there was, which notes the signal and then hands it on. A
``KeyboardInterrupt`` with no SIGINT noted is the block's own. (A block that sends
SIGINT to its own process counts as the user.)

Only the main thread receives signals: in another thread, a ``KeyboardInterrupt`` can
only be the block's own. Where the SIGINT handler was set outside Python and cannot be
handed on, the two cannot be told apart, and every ``KeyboardInterrupt`` counts as the
user's.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CtrlC:
    """What ``watch_ctrl_c`` saw while the block ran."""

    def __init__(self, can_tell: bool) -> None:
        self.pressed = False  # SIGINT arrived
        self.can_tell = can_tell

    def from_user(self) -> bool:
        """Whether a ``KeyboardInterrupt`` seen now must be taken as the user's."""
        return self.pressed or not self.can_tell


@contextmanager
def watch_ctrl_c() -> Iterator[CtrlC]:
    if threading.current_thread() is not threading.main_thread():
        yield CtrlC(can_tell=True)
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:
        yield CtrlC(can_tell=False)
        return
    seen = CtrlC(can_tell=True)

    def on_sigint(signum, frame) -> None:
        if previous == signal.SIG_IGN:
            return
        seen.pressed = True
        if callable(previous):
            previous(signum, frame)
        else:  # SIG_DFL would end the process; stopping the build is the same, with clean-up
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
