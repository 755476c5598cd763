"""Keeping a foreground command alive until SIGINT or SIGTERM. The servers run on native
threads; the main thread only waits, so Python's signal handlers always run at once. SIGHUP
work (reloading) runs on a thread of its own, one at a time: a slow reload never delays a
stop, and any number of SIGHUPs that arrive while one runs make one more reload, not one
each."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("lora_router")


class Signals:
    """Installs the handlers; ``wait`` blocks until a stop signal and returns it."""

    def __init__(self, on_hangup: Callable[[], None] | None = None):
        self._stops: list[int] = []
        self._stopped = threading.Event()
        self._hangup = threading.Event()
        self._on_hangup = on_hangup
        wanted = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if on_hangup else [])
        self._previous = {s: signal.signal(s, self._handle) for s in wanted}
        if on_hangup is not None:
            threading.Thread(target=self._reloads, name="lora-router-reload", daemon=True).start()

    def _handle(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._hangup.set()
        else:
            self._stops.append(signum)
            self._stopped.set()

    def _reloads(self) -> None:
        assert self._on_hangup is not None
        while True:
            self._hangup.wait()
            self._hangup.clear()
            try:
                self._on_hangup()
            except Exception as e:  # the reload thread outlives any one failure
                log.exception("SIGHUP handling failed: %s", e)

    def wait(self, tick: Callable[[], None] | None = None, interval: float = 0.5) -> int:
        """Blocks until SIGINT or SIGTERM and returns it; ``tick`` runs every ``interval``."""
        while not self._stopped.wait(interval):
            if tick is not None:
                tick()
        return self._stops[0]

    def wait_again(self, timeout: float) -> int | None:
        """Waits up to ``timeout`` for one more stop signal (which cuts a wait short)."""
        seen = len(self._stops)
        self._stopped.clear()
        if self._stopped.wait(timeout) and len(self._stops) > seen:
            return self._stops[-1]
        return None

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)


def wait_for_signal(tick: Callable[[], None] | None = None, interval: float = 0.5) -> int:
    """Blocks until SIGINT or SIGTERM and returns the signal number."""
    signals = Signals()
    try:
        return signals.wait(tick, interval)
    finally:
        signals.restore()
