"""bench/loadgen.py, the webhook benchmarks' load client: its requests are deliveries the real intake route
accepts (signed, redeliveries recognised), and its minimal answer parser waits for whole answers.

The benchmark's figures mean nothing if its client sends requests the route refuses, or miscounts answers."""

from __future__ import annotations

from types import ModuleType
from typing import Callable

import pytest

from sqlalchemy import func, select

from bot.app import App
from bot.config.secrets import Secrets
from bot.sandbox.server import serve
from bot.store.models import WebhookEvent
from bot.web.server import create_app

@pytest.fixture
def loadgen(bench_script: Callable[[str], ModuleType]) -> ModuleType:
    """bench/loadgen.py, on the path for the test: the client processes it spawns import it too."""
    return bench_script("loadgen")

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Length: 22\r\nContent-Type: application/json\r\n"
          b"Server: waitress\r\n\r\n{\"status\": \"accepted\"}")


def test_an_answer_is_parsed_only_once_all_of_it_is_in(loadgen: ModuleType) -> None:
    for cut in range(len(ANSWER)):
        assert loadgen.parse_answer(ANSWER[:cut]) is None, cut
    status, body, used, closing = loadgen.parse_answer(ANSWER + b"HTTP/1.1 200")
    assert (status, body, used, closing) == (200, b'{"status": "accepted"}', len(ANSWER), False)
    assert loadgen.answer_kind(status, body) == "accepted"
    refused = b"HTTP/1.1 401 UNAUTHORIZED\r\ncontent-length: 0\r\nConnection: close\r\n\r\n"
    assert loadgen.parse_answer(refused) == (401, b"", len(refused), True)


def test_redeliveries_resend_an_earlier_delivery_with_its_webhook_id(loadgen: ModuleType) -> None:
    work = loadgen.deliveries(200, 0.25, seed=3)
    originals = {item.headers["X-Shopify-Webhook-Id"]: item for item in work if not item.duplicate}
    resent = [item for item in work if item.duplicate]
    assert 20 < len(resent) < 80 and len(originals) == 200 - len(resent)
    assert all(originals[item.headers["X-Shopify-Webhook-Id"]].body == item.body for item in resent)


def test_updates_of_a_storm_cycle_over_the_orders_each_later_than_the_last(loadgen: ModuleType) -> None:
    work = loadgen.deliveries(6, 0.0, orders=3, epoch=1)
    assert [item.headers["X-Shopify-Triggered-At"][11:19] for item in work] == ["01:05:00"] * 3 + ["01:05:01"] * 3
    assert len({item.headers["X-Shopify-Webhook-Id"] for item in work}) == 6


def test_the_prebuilt_requests_are_accepted_by_the_intake_route_once_each(
        loadgen: ModuleType, make_app: Callable[..., App], secret_key: str) -> None:
    job = f'[[jobs]]\nname = "new-orders"\nkind = "shopify-order-alert"\nshop = "{loadgen.SHOP}"\nto = ["me"]\n'
    bot = make_app(job, with_secrets=Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": "unused",
                                              "SHOPIFY_API_KEY": "bench", "SHOPIFY_API_SECRET": loadgen.SECRET}))
    work = loadgen.deliveries(40, 0.2, seed=5)
    unique = sum(1 for item in work if not item.duplicate)
    with serve(create_app(bot)) as server, loadgen.LoadClients(processes=1, connections=2) as clients:
        result = clients.run(server.port, [item.request() for item in work])
    assert result.answers == {"accepted": unique, "duplicate": len(work) - unique}
    assert len(result.latencies) == len(work) and result.first <= result.last
    with bot.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == unique
