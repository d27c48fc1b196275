"""Idle, slow-header and slow-body clients cannot starve real ones (issue 8, item 12): a real
`run_service` on a free port, attacked with plain sockets."""

from __future__ import annotations

import resource
import socket
import time
from contextlib import ExitStack
from typing import Callable

import pytest
import requests

from bot.app import App
from bot.sandbox.shopify import ShopifySandbox
from bot.web import http_limits

from service_helpers import free_port, served
from webhook_helpers import ALERT_JOB, Hooks, new_order

DEADLINE = 20.0  # seconds: a bound on waiting, not a timing claim


@pytest.fixture
def served_bot(make_bot) -> Callable[[], App]:
    return lambda: make_bot(ALERT_JOB + f'\n[server]\nlisten = "127.0.0.1:{free_port()}"\n')


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_server(sock: socket.socket, drip: bytes = b"", every: float = 0.2) -> bool:
    """Keep `sock` busy (send `drip` now and then) until the server closes it; False at DEADLINE."""
    sock.settimeout(every)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            if drip:
                sock.sendall(drip)
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_150_idle_connections_leave_healthz_and_a_signed_webhook_answered(served_bot, shopify: ShopifySandbox) -> None:
    bot = served_bot()
    with served(bot) as base, ExitStack() as idle:
        for _ in range(150):  # more than waitress's default connection_limit of 100; no byte sent
            idle.enter_context(connect(bot.config.server.port))
        health = requests.get(f"{base}/healthz", timeout=5)  # 5 s: what Shopify gives a webhook
        assert health.status_code == 200
        answer = Hooks(shopify, base).send("orders/create", new_order(shopify), webhook_id="wh-busy-1", timeout=5)
        assert answer.status_code == 200 and answer.json() == {"status": "accepted"}


def test_connections_past_select_reach_are_still_served(served_bot, shopify: ShopifySandbox) -> None:
    # The event loop uses select() while it can: with descriptors at and above FD_SETSIZE it must switch to
    # poll(), or the loop dies on "filedescriptor out of range" and nothing more is answered.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * (http_limits.FD_SETSIZE + 100) + http_limits.SPARE_FILES  # both ends live in this process
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-file limit ({hard}) is below the {wanted} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    bot = served_bot()
    try:
        with served(bot) as base, ExitStack() as idle:
            sockets = [idle.enter_context(connect(bot.config.server.port)) for _ in range(http_limits.FD_SETSIZE + 100)]
            assert max(sock.fileno() for sock in sockets) > http_limits.FD_SETSIZE
            health = requests.get(f"{base}/healthz", timeout=5)
            assert health.status_code == 200
            answer = Hooks(shopify, base).send("orders/create", new_order(shopify), webhook_id="wh-many-1", timeout=5)
            assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_select_is_used_until_a_descriptor_is_out_of_its_reach() -> None:
    assert not http_limits.watch_with_poll({})
    assert not http_limits.watch_with_poll({3: "listener", http_limits.FD_SETSIZE - 1: "channel"})
    assert http_limits.watch_with_poll({3: "listener", http_limits.FD_SETSIZE: "channel"})


def test_an_idle_connection_is_closed_after_the_idle_timeout(served_bot, monkeypatch) -> None:
    monkeypatch.setattr(http_limits, "IDLE_TIMEOUT", 1.0)
    bot = served_bot()
    with served(bot), connect(bot.config.server.port) as sock:
        assert closed_by_server(sock)


@pytest.mark.parametrize("start, drip", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: y\r\n"),
    (b"POST /shopify/default/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", b"{"),
], ids=["slow headers", "slow body"])
def test_a_request_that_trickles_in_is_cut_off_at_its_deadline(served_bot, monkeypatch, start, drip) -> None:
    monkeypatch.setattr(http_limits, "REQUEST_DEADLINE", 1.0)
    monkeypatch.setattr(http_limits, "SWEEP_EVERY", 0.1)
    bot = served_bot()
    with served(bot) as base, connect(bot.config.server.port) as sock:
        sock.sendall(start)
        assert closed_by_server(sock, drip=drip)  # still sending, yet closed
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200


def test_a_request_that_arrives_whole_in_time_is_served_however_it_is_split(served_bot, monkeypatch) -> None:
    monkeypatch.setattr(http_limits, "REQUEST_DEADLINE", 5.0)
    bot = served_bot()
    with served(bot), connect(bot.config.server.port) as sock:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n", b"\r\n"):
            sock.sendall(part)
        answer = b""
        sock.settimeout(DEADLINE)
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")


def test_the_open_file_limit_is_raised_for_the_connection_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 64:
        pytest.skip("the hard open-file limit is too low to lower the soft one for this test")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard))
        wanted = http_limits.CONNECTION_LIMIT + http_limits.SPARE_FILES
        expected = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        assert http_limits.raise_open_file_limit() == expected
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
