"""Shared pieces of the benchmarks: a stand-in in its own process, a shared clock, run statistics.

A stand-in served in the benchmark's own process shares its GIL and has its CPU counted as the
bot's, so `StandinProcess` runs one in a spawned child instead (its own interpreter and GIL),
served by waitress with keep-alive: Kakao and Shopify keep connections open, and werkzeug's
server (which the tests use) opens a TCP connection per call, a cost no real upstream adds.
The child builds the stand-in with a top-level function of the calling script (`build(args)`
returns the stand-in's state object, its WSGI app and a picklable greeting such as a token),
serves it on a real port, and then answers `ask(query, payload)`: it calls the top-level
function `query(state, payload)` in the child and sends back the picklable result, so the
benchmark reads the stand-in's records (calls made, costs, inboxes) after a run.

`answered_after(app, latency)` wraps a stand-in's WSGI app so that each request's answer is on the socket
`latency` seconds after its first bytes were read by the stand-in's server (waitress's parsing and
hand-over to a worker thread, the stand-in's own work, and writing the answer out, included), as a real
server's latency includes its work: a benchmark whose floor counts each call as `latency` then does not
charge the client for the stand-in's work. A plain sleep to the deadline held each call ~0.45 ms too
long (the sleep's own overshoot, then waitress building and flushing the answer after the app returned),
about 1% of a fan-out's floor charged to the client; so the wait ends early by the median write-out time
of the server's recent answers (`HeldTimes`), and spins through its last millisecond. How long the
server really held each call is kept (`StandinProcess.held`) for the benchmark to print.

`SharedClock` is a monotonic clock plus an offset shared with the stand-in's process: a throttle
wait advances the offset at once (simulated) or sleeps for real, and the stand-in's bucket refills
by the same clock. `spread` prints min / median / max of a run's figures; `rss_kb`, `free_port` and
`scratch_postgres` are what several benchmarks read, bind and create.

    with StandinProcess(build, {"latency": 0.05}) as standin:
        requests.get(standin.url + "/v1/user/access_token_info")
        calls = standin.ask(calls_made)
"""

from __future__ import annotations

import multiprocessing
import secrets
import socket
import statistics
import threading
import time
from collections import deque
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator, Sequence

import waitress
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import WSGITask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SPAWN = multiprocessing.get_context("spawn")
ARRIVED = "standin.arrived"  # WSGI environ key: time.monotonic() when the request's first bytes were read
ANSWERED = "standin.answered"  # set by answered_after: time.monotonic() when its wait ended
TIMINGS = "standin.timings"  # the server's HeldTimes
SPIN = 0.001  # the last part of a wait is spun, not slept: time.sleep overshoots by ~0.2 ms
WRITE_OUTS = 50  # recent answers whose write-out time sets how early a wait ends


class HeldTimes:
    """How long one server held its answers: per request, from its first bytes read to its answer written
    out; and the median write-out time (answer made → on the socket) of recent answers, by which
    answered_after ends its wait early. Appended by the server's threads (deque and list appends are
    atomic)."""

    def __init__(self) -> None:
        self.held: list[float] = []
        self.write_outs: deque[float] = deque(maxlen=WRITE_OUTS)

    def add(self, arrived: float, answered: float, written: float) -> None:
        self.held.append(written - arrived)
        self.write_outs.append(written - answered)

    def lead(self) -> float:
        """How much earlier than its deadline a wait should end: the recent answers' median write-out."""
        recent = list(self.write_outs)
        return statistics.median(recent) if recent else 0.0


class _StampedRequest(HTTPRequestParser):
    """waitress's request parser, stamped when made: the server's main loop makes one as it reads a
    request's first bytes, before parsing it and handing it to a worker thread."""

    def __init__(self, adj: Any):
        super().__init__(adj)
        self.arrived = time.monotonic()


class _StampedTask(WSGITask):
    """waitress's WSGI task, whose environ carries its request's arrival time (ARRIVED) and its server's
    HeldTimes (TIMINGS), where it adds the request's times once its answer is written out."""

    def get_environment(self) -> dict[str, Any]:
        environ = super().get_environment()
        environ[ARRIVED] = self.request.arrived
        environ[TIMINGS] = self.channel.server.timings
        return environ

    def service(self) -> None:
        super().service()  # the app called and its answer written to the socket (send_bytes=1: flushed here)
        written = time.monotonic()
        if self.environ is not None and ANSWERED in self.environ:
            self.environ[TIMINGS].add(self.environ[ARRIVED], self.environ[ANSWERED], written)


class _StampedChannel(HTTPChannel):
    """waitress's connection, making stamped requests and tasks."""

    parser_class = _StampedRequest
    task_class = _StampedTask


def stamped_server(app: Callable, port: int = 0) -> Any:
    """A waitress server (not yet running) of `app` on 127.0.0.1:`port`, each request's environ carrying the
    time its first bytes were read (ARRIVED) and the server's HeldTimes (TIMINGS, also `server.timings`)."""
    # Threads enough for a client that holds requests open (a stand-in's latency is a sleep).
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=16, ident=None)
    server.channel_class = _StampedChannel  # connections are accepted once it runs, each with this class
    server.timings = HeldTimes()
    return server


def _child(conn: Connection, build: Callable[[dict[str, Any]], tuple[Any, Any, Any]], args: dict[str, Any],
           port: int) -> None:
    """The stand-in's process: build and serve, then answer queries until None."""
    state, app, greeting = build(args)
    server = stamped_server(app, port)
    thread = threading.Thread(target=server.run, name="standin-server", daemon=True)
    thread.start()
    conn.send((f"http://127.0.0.1:{server.effective_port}", greeting))
    subjects = {"state": state, "server": server}  # what a query is about: the stand-in, or its server
    try:
        while (message := conn.recv()) is not None:
            subject, query, payload = message
            try:
                conn.send((True, query(subjects[subject], payload)))
            except Exception as exc:  # reported to the benchmark, which raises it there
                conn.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        server.close()


def answered_after(app: Callable, latency: float) -> Callable:
    """`app`, its answer written out `latency` seconds after the request came in (its own work included)."""

    def timed(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        started = environ.get(ARRIVED, time.monotonic())
        chunks = list(app(environ, start_response))  # the whole answer made, before the wait
        timings = environ.get(TIMINGS)
        deadline = started + latency - (timings.lead() if timings else 0.0)
        pause = deadline - SPIN - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        while time.monotonic() < deadline:
            pass
        environ[ANSWERED] = time.monotonic()
        return chunks

    return timed


def held_since(server: Any, first: int) -> list[float]:
    """A query of the server (a `stamped_server`): seconds it held each answer, from its `first`-th request on."""
    return server.timings.held[first:]


def cpu_seconds(state: Any, payload: Any = None) -> float:
    """A query: CPU seconds (user + system) the stand-in's process has used so far."""
    return time.process_time()


class StandinProcess:
    """A stand-in served from a spawned process: `.url`, `.greeting`, `.pid`, `.ask()`, `.close()`."""

    def __init__(self, build: Callable[[dict[str, Any]], tuple[Any, Any, Any]], args: dict[str, Any],
                 port: int = 0, name: str = "standin"):
        self._conn, theirs = SPAWN.Pipe()
        self._process = SPAWN.Process(target=_child, args=(theirs, build, args, port), name=name, daemon=True)
        self._process.start()
        self.pid = self._process.pid
        self.url, self.greeting = self._conn.recv()

    def ask(self, query: Callable[[Any, Any], Any], payload: Any = None) -> Any:
        """Run the top-level function `query(state, payload)` in the stand-in's process; its result."""
        return self._ask("state", query, payload)

    def held(self, first: int = 0) -> list[float]:
        """Seconds the stand-in's server held each answer (first bytes read → answer written out), from its
        `first`-th request on: what a latency of `answered_after` really came to."""
        return self._ask("server", held_since, first)

    def _ask(self, subject: str, query: Callable[[Any, Any], Any], payload: Any) -> Any:
        """`query(subject, payload)` in the stand-in's process, `subject` its "state" or its "server"."""
        self._conn.send((subject, query, payload))
        ok, result = self._conn.recv()
        if not ok:
            raise RuntimeError(f"the stand-in's {query.__name__} failed: {result}")
        return result

    def close(self) -> None:
        """Stop serving and wait for the process (terminated after 10 s); safe to call twice."""
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def __enter__(self) -> "StandinProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SharedClock:
    """Monotonic time plus an offset shared with a stand-in's process (a `SPAWN.Value("d")`);
    `sleep` adds to the offset (simulated) or sleeps for real. `slept` counts the waits."""

    def __init__(self, offset: Any, real: bool):
        self.offset, self.real, self.slept = offset, real, 0.0

    def clock(self) -> float:
        return time.monotonic() + self.offset.value

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept += seconds
        if self.real:
            time.sleep(seconds)
        else:
            with self.offset.get_lock():
                self.offset.value += seconds


class FixedToken:
    """A ShopTokenSource holding one legacy token."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def renew_refused(self) -> bool:
        return False

    def rejected(self, reason: str) -> None:
        raise SystemExit(f"the stand-in refused the token: {reason}")


def spread(values: Sequence[float], fmt: str = "{:.3f}", unit: str = "") -> str:
    """"min X, median Y, max Z" of the runs' values."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"min {fmt.format(low)}{unit}, median {fmt.format(mid)}{unit}, max {fmt.format(high)}{unit}"


def rss_kb(pid: int | str = "self") -> int:
    """VmRSS of a process (this one by default), in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    """A 127.0.0.1 port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def scratch_postgres(server_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database `<prefix><random>` on the server of `server_url`, dropped on exit
    (WITH FORCE: a connection the benchmark left open must not keep it). The database that `server_url`
    names is only connected to."""
    name = prefix + secrets.token_hex(6)
    url = make_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
