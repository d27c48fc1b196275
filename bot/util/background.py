"""A daemon thread that calls one function over and over until stopped: the webhook worker's loop,
which must wake at once when the route stores an event (a scheduler interval cannot be woken)."""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class Repeating:
    """Calls `tick()` every `interval` seconds (sooner when `wake` is set) until `stop()`.

    A tick that raises is logged with `failure` and the loop goes on: the next tick covers it.
    `stopping` is set by `stop()`, so a long tick can check it and end early.
    """

    def __init__(self, name: str, tick: Callable[[], object], interval: float, *, failure: str,
                 wake: threading.Event | None = None):
        self.name, self.tick, self.interval, self.failure = name, tick, interval, failure
        self.wake = wake or threading.Event()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """True if the thread ended within `timeout` (or never ran)."""
        self.stopping.set()
        self.wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def alive(self) -> bool:
        """True while the thread runs (for /healthz)."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 — one failed tick must not end the thread
                log.exception(self.failure)
            self.wake.wait(self.interval)
