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


class FakeClock:
    """time.monotonic and time.sleep of the stand-in's module: a sleep moves the clock on, and so does each
    reading, by `tick` (a spin then ends), so no test waits and none depends on the machine's timing."""

    def __init__(self, now: float = 1000.0, tick: float = 0.00001):
        self.now, self.tick = now, tick
        self.sleeps: list[float] = []
        self.woke: list[float] = []  # when each sleep ended

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.woke.append(self.now)


@pytest.fixture
def clock(standin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(standin.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(standin.time, "sleep", fake.sleep)
    return fake


def test_the_latency_counts_from_the_stamp_not_from_the_call(standin: ModuleType, clock: FakeClock) -> None:
    app = standin.answered_after(stamps, 0.05)
    answer = app({standin.ARRIVED: clock.now - 10}, lambda *args: None)
    assert json.loads(answer[0])["arrived"] is not None
    assert clock.sleeps == []  # the latency had passed before the app was called: answered at once
    arrived = clock.now
    app({standin.ARRIVED: arrived}, lambda *args: None)
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 0.05 - standin.SPIN


def test_the_wait_is_slept_then_spun_to_the_deadline_less_the_recent_write_out_time(
        standin: ModuleType, clock: FakeClock) -> None:
    timings = standin.HeldTimes()
    for write_out in (0.0002, 0.0003, 0.0009):  # answers made, then on the socket this much later
        timings.add(arrived=0.0, answered=1.0, written=1.0 + write_out)
    assert timings.lead() == pytest.approx(0.0003)
    environ = {standin.ARRIVED: clock.now, standin.TIMINGS: timings}
    standin.answered_after(stamps, 0.05)(environ, lambda *args: None)
    deadline = environ[standin.ARRIVED] + 0.05 - 0.0003
    # Slept to a millisecond before the deadline, then spun to it: the wait ended at the deadline, not later
    # (by the sleep's overshoot) and not earlier than the clock's resolution.
    assert len(clock.woke) == 1 and clock.woke[0] == pytest.approx(deadline - standin.SPIN, abs=3 * clock.tick)
    assert deadline <= environ[standin.ANSWERED] <= deadline + 2 * clock.tick


def test_a_server_without_answers_yet_ends_its_waits_at_the_deadline(standin: ModuleType) -> None:
    assert standin.HeldTimes().lead() == 0.0


def test_the_server_keeps_how_long_it_held_each_answer(standin: ModuleType) -> None:
    server = standin.stamped_server(standin.answered_after(stamps, 0.001))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=10)
        for _ in range(3):
            connection.request("GET", "/")
            connection.getresponse().read()
        connection.close()
    finally:
        server.close()
        thread.join(timeout=10)
    held = standin.held_since(server, 1)
    assert len(held) == 2 and len(server.timings.write_outs) == 3
    # Held at least the latency less the write-out lead (the answer was written after the wait).
    assert all(seconds >= 0.001 - max(server.timings.write_outs) for seconds in held)
    assert all(write_out >= 0 for write_out in server.timings.write_outs)
