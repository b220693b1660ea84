"""Stopping a long-running command on SIGTERM/SIGINT, the same way every time."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How often a waiting main thread wakes: Python runs a signal's handler only in the
# main thread, between bytecodes; if the kernel delivered the signal to another
# thread, a main thread blocked in an untimed wait would never get to run it.
WAKE_S = 0.2


class StopRequest(threading.Event):
    """An Event that SIGTERM or SIGINT sets; ``signal_name`` says which one did."""

    def __init__(self) -> None:
        super().__init__()
        self.signal_name: str | None = None


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """A StopRequest set by SIGTERM/SIGINT while the block runs (main thread only).

    The handler only records the signal and sets the event: logging or printing
    from a handler can deadlock on the stream's lock that the interrupted code
    holds. Whoever waits on the event reports the signal.
    """
    stop = StopRequest()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.signal_name is None:
            stop.signal_name = signal.Signals(signum).name
        stop.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def stop_requested(stop: threading.Event) -> str | None:
    """The signal that set ``stop``, if a signal did."""
    return getattr(stop, "signal_name", None)


def wait_for_stop(stop: threading.Event) -> None:
    """Block until ``stop`` is set, waking regularly so signal handlers can run."""
    while not stop.wait(WAKE_S):
        pass
