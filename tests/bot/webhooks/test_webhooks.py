"""POST /shopify/<app>/webhooks: verified, stored first, answered at once; processed after.

Against the real server code over loopback: the Shopify stand-in signs and sends webhooks
exactly as Shopify does; the Kakao stand-in receives the alerts. The fixtures (bot, hooks,
worker, …) are in tests/conftest.py, the shared helpers in tests/webhook_helpers.py.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import func, select

from bot.app import App
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.signing import webhook_hmac
from bot.store.models import WebhookEvent
from bot.web.server import MAX_BODY_BYTES, create_app
from bot.webhooks.worker import WebhookWorker, start_background

from webhook_helpers import (
    API_KEY,
    API_SECRET,
    HOOK_PATH,
    OLD_SECRET,
    OTHER_SHOP,
    SHOP,
    Hooks,
    events,
    new_order,
    wait_for,
)


def event_count(app: App) -> int:
    with app.db.session() as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent)) or 0


def signed_headers(body: bytes, secret: str = API_SECRET, **overrides: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
               "X-Shopify-Hmac-Sha256": webhook_hmac(body, secret), "X-Shopify-Shop-Domain": SHOP,
               "X-Shopify-Webhook-Id": "wh-1", "X-Shopify-Event-Id": "ev-1", "X-Shopify-API-Version": "2025-10",
               "X-Shopify-Triggered-At": "2026-11-22T00:00:00.123456789Z"}
    for key, value in overrides.items():
        name = "X-Shopify-" + key.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


# -- storing -----------------------------------------------------------------------------------


def test_a_signed_webhook_is_stored_as_received_and_answered_200(bot: App, hooks: Hooks,
                                                                  shopify: ShopifySandbox,
                                                                  sandbox: KakaoSandbox) -> None:
    payload = new_order(shopify)
    answer = hooks.send("orders/create", payload, webhook_id="wh-create-1", event_id="ev-9",
                        triggered_at="2026-11-22T00:00:01.5Z")
    assert answer.status_code == 200
    assert answer.json() == {"status": "accepted"}
    (row,) = events(bot)
    assert (row.app, row.shop, row.topic, row.webhook_id, row.event_id, row.api_version) == (
        "default", SHOP, "orders/create", "wh-create-1", "ev-9", "2025-10")
    assert row.triggered_at == datetime(2026, 11, 22, 0, 0, 1, 500000, tzinfo=timezone.utc)
    assert row.status == "pending" and row.attempts == 0
    assert row.body.encode() == shopify.webhooks_sent[-1]["body"]  # the raw body, byte for byte
    assert sandbox.received("me") == []  # stored only: nothing processed in the request


def test_the_previous_secret_is_accepted_during_rotation(bot: App, hooks: Hooks, shopify: ShopifySandbox) -> None:
    answer = hooks.send("orders/create", new_order(shopify), secret=OLD_SECRET)
    assert answer.status_code == 200 and event_count(bot) == 1


@pytest.mark.parametrize("hmac_header", ["forged", "", None, "AAAA"])
def test_a_bad_or_missing_hmac_is_401_and_nothing_is_stored(bot: App, hooks: Hooks, hmac_header: str | None) -> None:
    body = json.dumps({"id": 1}).encode()
    answer = hooks.post(body, signed_headers(body, Hmac_Sha256=hmac_header))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid HMAC"}
    assert event_count(bot) == 0


def test_a_body_signed_with_another_secret_or_altered_is_401(bot: App, hooks: Hooks, shopify: ShopifySandbox) -> None:
    assert hooks.send("orders/create", {"id": 1}, secret="someone-else").status_code == 401
    body = json.dumps({"id": 1}).encode()
    headers = signed_headers(body)
    assert hooks.post(body + b" ", headers).status_code == 401  # one byte more: not what was signed
    assert hooks.post(body, signed_headers(body, secret=API_KEY)).status_code == 401  # the client id is no secret
    # A compliance topic with a bad signature gets 401 too (App Store requirement).
    assert hooks.send("shop/redact", {"shop_domain": SHOP}, hmac_override="x" * 44).status_code == 401
    assert event_count(bot) == 0


@pytest.mark.parametrize("missing", ["Topic", "Shop_Domain", "Webhook_Id"])
def test_a_missing_header_is_400_and_nothing_is_stored(bot: App, hooks: Hooks, missing: str) -> None:
    body = b'{"id": 1}'
    answer = hooks.post(body, signed_headers(body, **{missing: None}))
    assert answer.status_code == 400
    assert "X-Shopify-" + missing.replace("_", "-") in answer.json()["error"]
    assert event_count(bot) == 0


@pytest.mark.parametrize("body, shop", [
    (b"not json", SHOP),
    (b"[1, 2]", SHOP),
    (b'"text"', SHOP),
    (b"\xff\xfe{}", SHOP),
    (b'{"id": 1}', "evil.example.com"),
    (b'{"id": 1}', "my-store.myshopify.com.evil.com"),
])
def test_a_non_json_body_or_a_bad_shop_is_400(bot: App, hooks: Hooks, body: bytes, shop: str) -> None:
    answer = hooks.post(body, signed_headers(body, Shop_Domain=shop))
    assert answer.status_code == 400
    assert event_count(bot) == 0


def test_an_unknown_app_is_404(bot: App, hooks: Hooks) -> None:
    body = b'{"id": 1}'
    answer = hooks.post(body, signed_headers(body), path="/shopify/nope/webhooks")
    assert answer.status_code == 404 and event_count(bot) == 0


def test_an_oversized_body_is_413_and_nothing_is_stored(bot: App) -> None:
    body = json.dumps({"note": "x" * MAX_BODY_BYTES}).encode()
    client = create_app(bot).test_client()
    answer = client.post(HOOK_PATH, data=body, headers=signed_headers(body))
    assert answer.status_code == 413
    assert answer.get_json() == {"error": "body too large"}
    assert event_count(bot) == 0


def test_get_is_not_allowed(bot: App, hooks: Hooks) -> None:
    assert requests.get(hooks.url + HOOK_PATH, timeout=5).status_code == 405


# -- redeliveries and the answer ---------------------------------------------------------------


def test_the_same_delivery_five_times_is_stored_and_processed_once(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                                                     sandbox: KakaoSandbox,
                                                                     worker: WebhookWorker) -> None:
    payload = new_order(shopify)
    answers = [hooks.send("orders/create", payload, webhook_id="wh-same") for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["status"] for a in answers] == ["accepted"] + ["duplicate"] * 4
    assert worker.drain_once() == 1
    for _ in range(2):  # redelivered again after processing: still nothing new
        assert hooks.send("orders/create", payload, webhook_id="wh-same").json() == {"status": "duplicate"}
        assert worker.drain_once() == 0
    (row,) = events(bot)
    assert row.status == "done" and row.attempts == 1
    assert len(sandbox.received("me")) == 1
    assert sandbox.received("me")[0]["text"].startswith(f"🛒 새 주문 {payload['name']}")


def test_the_same_event_for_two_subscriptions_is_alerted_once(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                                               sandbox: KakaoSandbox, worker: WebhookWorker) -> None:
    # Two deliveries (new webhook ids) of one order, e.g. a retry after a lost answer that Shopify
    # counted as a new delivery: stored twice, alerted once (deliveries by order gid).
    payload = new_order(shopify)
    assert hooks.send("orders/create", payload, webhook_id="wh-a", event_id="ev").json()["status"] == "accepted"
    assert hooks.send("orders/create", payload, webhook_id="wh-b", event_id="ev").json()["status"] == "accepted"
    assert worker.drain_once() == 2
    assert [row.status for row in events(bot)] == ["done", "done"]
    assert len(sandbox.received("me")) == 1


def test_the_answer_never_waits_for_processing(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                               sandbox: KakaoSandbox) -> None:
    """While the worker is stuck inside processing the first event, more deliveries are answered."""
    inside, release = threading.Event(), threading.Event()
    worker = WebhookWorker(bot, poll_interval=0.05)
    real = worker.handlers["orders/create"]

    def slow(event):  # noqa: ANN001, ANN202
        inside.set()
        assert release.wait(30)
        return real(event)

    worker.handlers["orders/create"] = slow
    worker.start()
    try:
        assert hooks.send("orders/create", new_order(shopify)).status_code == 200
        assert inside.wait(10)  # the worker is processing (and blocked)
        for _ in range(3):
            answer = hooks.send("orders/create", new_order(shopify))
            assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
        assert [row.status for row in events(bot)] == ["processing", "pending", "pending", "pending"]
        release.set()
        wait_for(lambda: all(row.status == "done" for row in events(bot)))
    finally:
        release.set()
        assert worker.stop(10)
    assert len(sandbox.received("me")) == 4


def test_start_background_processes_at_once_and_stops(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                                      sandbox: KakaoSandbox) -> None:
    started = start_background(bot)
    try:
        assert [type(each).__name__ for each in started] == ["WebhookWorker"]
        payload = new_order(shopify)
        assert hooks.send("orders/create", payload).status_code == 200
        # Woken by the route: no poll interval to wait for.
        wait_for(lambda: sandbox.received("me"))
        wait_for(lambda: events(bot)[0].status == "done")
    finally:
        assert all(each.stop(10) for each in started)
    assert events(bot)[0].body == ""  # personal data is not kept once processed


def test_orders_of_a_shop_without_alert_job_are_ignored(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                                        sandbox: KakaoSandbox, worker: WebhookWorker) -> None:
    assert hooks.send("orders/create", new_order(shopify, OTHER_SHOP), shop=OTHER_SHOP).status_code == 200
    assert hooks.send("products/update", {"id": 5}).status_code == 200
    assert worker.drain_once() == 2
    assert [(row.status, row.result) for row in events(bot)] == [
        ("ignored", f"no shopify-order-alert job for {OTHER_SHOP}"),
        ("ignored", "no handler for topic 'products/update'")]
    assert sandbox.received("me") == []
