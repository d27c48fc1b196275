"""`run_service` on a real port for a test: a free port, and the service in a thread for a `with` block."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator

from bot.app import App
from bot.service.run import run_service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app: App) -> Iterator[str]:
    """run_service in a thread until the block ends; yields the base URL."""
    stop, ready, outcome = threading.Event(), threading.Event(), {}

    def serve() -> None:
        try:
            outcome["code"] = run_service(app, ready=ready.set, stop_event=stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            outcome["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30), "the server never became ready"
    assert "error" not in outcome and "code" not in outcome, outcome
    try:
        yield f"http://{app.config.server.host}:{app.config.server.port}"
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "run_service did not return after stop_event"
        assert outcome.get("code") == 0, outcome
