"""Scripted failures of a stand-in: the next requests to a path answer an error, or answer late.

Tests script them through each stand-in's `fail_next` and `hang_next`; the stand-in plays them
as each request arrives, before the real handler runs. Each scripted fault is used by one
request only, in the order scripted. Thread-safe: stand-ins serve each request on its own
thread, and a slow request must not hold up the others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Fault:
    """An answer given instead of the real one."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FaultPlan:
    """Queues of scripted failures and delays, keyed by path (or path suffix), used up per request."""

    def __init__(self, matches: Callable[[str, str], bool]):
        """`matches(path, key)`: does a fault scripted for `key` apply to a request to `path`."""
        self._matches = matches
        self._fails: dict[str, deque[Fault]] = {}
        self._hangs: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def fail_next(self, key: str, status: int, body: Any, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """The next `times` requests matching `key` answer status/body/headers instead."""
        with self._lock:
            self._fails.setdefault(key, deque()).extend([Fault(status, body, headers or {})] * times)

    def hang_next(self, key: str, seconds: float) -> None:
        """The next request matching `key` waits `seconds` before it is answered."""
        with self._lock:
            self._hangs.setdefault(key, deque()).append(seconds)

    def clear(self) -> None:
        """Forget every failure and delay not yet played."""
        with self._lock:
            self._fails.clear()
            self._hangs.clear()

    def play(self, path: str, latency: float) -> Fault | None:
        """Wait `latency` plus this request's scripted delay; the scripted failure to answer, if any."""
        with self._lock:
            hang = self._pop(self._hangs, path) or 0.0
            fail = self._pop(self._fails, path)
        delay = latency + hang
        if delay > 0:
            time.sleep(delay)  # outside the lock: slow requests must not serialise others
        return fail

    def _pop(self, queues: dict[str, deque[Any]], path: str) -> Any:
        for key, queue in queues.items():
            if queue and self._matches(path, key):
                return queue.popleft()
        return None
