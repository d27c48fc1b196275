"""bench/standin.py, the stand-ins' server: each request carries the time its first bytes were read, and
`answered_after` counts the latency from then, so a benchmark's floor does not charge the client for the
stand-in's own server."""

from __future__ import annotations

import http.client
import json
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

@pytest.fixture
def standin(bench_script: Callable[[str], ModuleType]) -> ModuleType:
    return bench_script("standin")


def stamps(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
    """A WSGI app answering with its request's arrival stamp and the time it was called."""
    body = json.dumps({"arrived": environ.get("standin.arrived"), "called": time.monotonic()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def server_url(standin: ModuleType) -> Iterator[tuple[str, int]]:
    server = standin.stamped_server(stamps)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.effective_port
    finally:
        server.close()
        thread.join(timeout=10)


def test_each_request_on_a_kept_alive_connection_is_stamped_when_its_own_bytes_are_read(
        server_url: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*server_url, timeout=10)
    answers = []
    for _ in range(2):
        connection.request("GET", "/")
        answers.append(json.loads(connection.getresponse().read()))
    connection.close()
    first, second = answers
    assert first["arrived"] is not None and first["arrived"] <= first["called"]
    # The second request's stamp is its own (made after the first was answered), not the connection's.
    assert first["called"] < second["arrived"] <= second["called"]


def test_the_latency_counts_from_the_stamp_not_from_the_call(standin: ModuleType,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(standin.time, "sleep", waits.append)
    app = standin.answered_after(stamps, 0.05)
    answer = app({standin.ARRIVED: time.monotonic() - 10}, lambda *args: None)
    assert json.loads(answer[0])["arrived"] is not None
    assert waits == []  # the latency had passed before the app was called: answered at once
    app({standin.ARRIVED: time.monotonic()}, lambda *args: None)
    assert len(waits) == 1 and 0 < waits[0] <= 0.05
