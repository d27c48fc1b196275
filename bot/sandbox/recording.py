"""The log of requests a stand-in received, so tests can check what the code under test asked.

Every stand-in records each request's method and path before answering it; tests read the
list or count the requests to one endpoint. Thread-safe: stand-ins serve each request on its
own thread.
"""

from __future__ import annotations

import threading


class RequestLog:
    """(method, path) of every request received, oldest first."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.calls.append((method, path))

    def count(self, path_suffix: str) -> int:
        """How many requests went to a path ending with `path_suffix`."""
        with self._lock:
            return sum(1 for _, path in self.calls if path.endswith(path_suffix))
