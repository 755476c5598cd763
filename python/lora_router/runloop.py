"""Keeping a foreground command alive until SIGINT or SIGTERM. The servers run on native
threads; the main thread only waits, so Python's signal handlers always get to run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def wait_for_signal(
    tick: Callable[[], None] | None = None,
    interval: float = 0.5,
    on_hangup: Callable[[], None] | None = None,
) -> int:
    """Blocks until SIGINT or SIGTERM and returns the signal number. ``tick`` runs every
    ``interval`` seconds while waiting; ``on_hangup`` runs on SIGHUP (in the main thread,
    between waits, never inside the signal handler)."""
    received: list[int] = []
    hangups: list[int] = []
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    def hangup(signum: int, _frame: object) -> None:
        hangups.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    if on_hangup is not None:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hangup)
    try:
        while not received:
            if stop.wait(interval):
                stop.clear()
            while hangups and on_hangup is not None:
                hangups.pop()
                on_hangup()
            if tick is not None:
                tick()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return received[0]
