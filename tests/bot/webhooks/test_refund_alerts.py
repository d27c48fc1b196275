"""Cancellation and refund alerts (`shopify-refund-alert`): webhooks, redeliveries, reconciliation, quiet hours."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import pytest
from sqlalchemy import select

from bot.app import App
from bot.cli.preview import preview
from bot.delivery.alerts import AlertSender
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.store.models import Delivery
from bot.webhooks.inbox import store_event
from bot.webhooks.reconcile import Reconciler
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import SHOP, events

if TYPE_CHECKING:
    from conftest import FakeClock

REFUND_JOB = f"""
[[jobs]]
name = "refunds"
kind = "shopify-refund-alert"
shop = "{SHOP}"
to = ["me"]
"""


@pytest.fixture
def clock(clock: FakeClock, shopify: ShopifySandbox) -> FakeClock:
    """The fake clock near the real time (read_orders' window is measured from it); the stand-in follows it."""
    clock.now = datetime.now(timezone.utc).replace(microsecond=0)
    shopify.wall_clock = clock.epoch
    return clock


@pytest.fixture
def app(make_bot: Callable[..., App], clock: FakeClock) -> App:
    return make_bot(REFUND_JOB)


def put(app: App, topic: str, payload: dict[str, Any], webhook_id: str) -> bool:
    return store_event(app, app="default", shop=SHOP, topic=topic, webhook_id=webhook_id,
                       body=json.dumps(payload, ensure_ascii=False), triggered_at=app.clock())


def texts(sandbox: KakaoSandbox) -> list[str]:
    return [preview(message) for message in sandbox.received("me")]


def deliveries(app: App) -> list[tuple[str, str, str]]:
    with app.db.session() as session:
        return [(d.job, d.slot_key, d.status) for d in session.scalars(select(Delivery).order_by(Delivery.id))]


def cancelled_order(shopify: ShopifySandbox, clock: FakeClock, **fields: Any) -> dict[str, Any]:
    order = shopify.add_order(SHOP, lineItems=[{"name": "텀블러", "sku": "TUMB-01", "quantity": 2, "price": 25000}],
                              **fields)
    clock.advance(minutes=1)
    shopify.update_order(SHOP, order["id"], cancelledAt=clock(), cancelReason="CUSTOMER")
    return shopify.rest_order(SHOP, order["id"])


def test_a_cancelled_order_is_alerted_once_across_redeliveries_and_restarts(
        make_bot: Callable[..., App], app: App, shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    body = cancelled_order(shopify, clock)
    assert put(app, "orders/cancelled", body, "w1")
    assert not put(app, "orders/cancelled", body, "w1")  # the same delivery again: stored once
    put(app, "orders/cancelled", body, "w2")  # another delivery of the same event (another subscription)
    WebhookWorker(app).drain_once()
    restarted = make_bot(REFUND_JOB, login=False, connect=False)
    put(restarted, "orders/cancelled", body, "w3")
    WebhookWorker(restarted).drain_once()
    assert texts(sandbox) == [f"❌ 주문 취소 {body['name']}\n₩50,000 · 2개 · 사유: 고객 요청\n[자세히 보기]"]
    assert deliveries(app) == [("refunds", f"cancel:{body['admin_graphql_api_id']}", "sent")]
    assert [e.status for e in events(app)] == ["done", "done", "done"]


def test_a_refund_is_alerted_with_its_amount_and_items(app: App, shopify: ShopifySandbox, sandbox: KakaoSandbox,
                                                       clock: FakeClock) -> None:
    order = shopify.add_order(SHOP, lineItems=[{"name": "텀블러", "sku": "TUMB-01", "quantity": 2, "price": 25000}])
    AlertSender(app)  # (the order's name is remembered when its new-order alert went out; here it was not)
    clock.advance(minutes=1)
    refund = shopify.add_refund(SHOP, order["id"], quantity=1)
    put(app, "refunds/create", refund, "r1")
    put(app, "refunds/create", refund, "r2")
    WebhookWorker(app).drain_once()
    (text,) = texts(sandbox)
    assert text.startswith(f"↩️ 환불 #{refund['order_id']}\n₩25,000 환불\n• 텀블러 ×1")
    assert deliveries(app) == [("refunds", f"refund:{refund['admin_graphql_api_id']}", "sent")]


@pytest.mark.parametrize("topic, body, reason", [
    ("refunds/create", {"order_id": 5}, "the refund has no id"),
    ("refunds/create", {"id": "x", "order_id": 5}, "the refund has no id"),
    ("refunds/create", {"id": 77}, "names no order"),
    ("orders/cancelled", {"name": "#1"}, "the order has no id"),
    ("orders/cancelled", {"id": 5, "cancelled_at": None}, "is not cancelled"),
    ("orders/cancelled", [1, 2], "the order has no id"),
])
def test_malformed_bodies_are_ignored_with_a_reason(app: App, sandbox: KakaoSandbox, topic: str, body: Any,
                                                    reason: str) -> None:
    put(app, topic, body, "bad")
    WebhookWorker(app).drain_once()
    (event,) = events(app)
    assert event.status == "ignored" and reason in event.result
    assert sandbox.received("me") == []


def test_refunds_with_odd_money_still_alert_or_say_what_is_missing(app: App, sandbox: KakaoSandbox,
                                                                   clock: FakeClock) -> None:
    at = clock().isoformat()
    put(app, "refunds/create", {"id": 91, "order_id": 5, "created_at": at, "transactions": [
        {"kind": "refund", "status": "success", "amount": "not money", "currency": "KRW"}]}, "odd")
    WebhookWorker(app).drain_once()
    (text,) = texts(sandbox)
    assert "환불 금액 확인 필요" in text


def test_min_total_and_events_choose_what_is_alerted(make_bot: Callable[..., App], shopify: ShopifySandbox,
                                                     sandbox: KakaoSandbox, clock: FakeClock) -> None:
    app = make_bot(REFUND_JOB.replace('to = ["me"]', 'to = ["me"]\nmin_total = 30000\nevents = ["refund"]'))
    order = shopify.add_order(SHOP, lineItems=[{"name": "텀블러", "sku": "TUMB-01", "quantity": 2, "price": 25000}])
    clock.advance(minutes=1)
    small = shopify.add_refund(SHOP, order["id"], quantity=1)  # ₩25,000 < 30,000
    big = shopify.add_refund(SHOP, order["id"], amount=50000)
    put(app, "refunds/create", small, "s")
    put(app, "refunds/create", big, "b")
    put(app, "orders/cancelled", cancelled_order(shopify, clock), "c")  # not among its events
    WebhookWorker(app).drain_once()
    assert [e.status for e in events(app)] == ["ignored", "done", "ignored"]
    (text,) = texts(sandbox)
    assert "₩50,000 환불" in text


def test_a_lost_webhook_is_raised_by_reconciliation_once_and_the_late_webhook_sends_nothing(
        app: App, shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    order = shopify.add_order(SHOP, lineItems=[{"name": "텀블러", "sku": "TUMB-01", "quantity": 2, "price": 25000}])
    clock.advance(minutes=1)
    refund = shopify.add_refund(SHOP, order["id"], quantity=1)
    body = cancelled_order(shopify, clock)
    clock.advance(minutes=1)
    reconciler = Reconciler(app)
    assert reconciler.run_once() == 2
    assert sorted(text.splitlines()[0] for text in texts(sandbox)) == sorted(
        [f"↩️ 환불 {order['name']}", f"❌ 주문 취소 {body['name']}"])
    clock.advance(minutes=5)
    assert reconciler.run_once() == 0
    put(app, "refunds/create", refund, "late-r")
    put(app, "orders/cancelled", body, "late-c")
    WebhookWorker(app).drain_once()
    assert len(sandbox.received("me")) == 2
    assert sorted(key for _, key, _ in deliveries(app)) == sorted(
        [f"refund:{refund['admin_graphql_api_id']}", f"cancel:{body['admin_graphql_api_id']}"])


def test_events_before_alerting_started_are_not_raised_by_reconciliation(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    order = shopify.add_order(SHOP)
    shopify.add_refund(SHOP, order["id"])
    clock.advance(minutes=5)
    app = make_bot(REFUND_JOB)  # the job is first seen now
    assert Reconciler(app).run_once() == 0 and sandbox.received("me") == []


def test_quiet_hours_hold_cancellations_and_refunds_for_the_list_summary(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    app = make_bot(REFUND_JOB.replace('to = ["me"]', 'to = ["me"]\nquiet = "00:00-23:59"'))
    order = shopify.add_order(SHOP, lineItems=[{"name": "텀블러", "sku": "TUMB-01", "quantity": 2, "price": 25000}])
    clock.advance(minutes=1)
    refund = shopify.add_refund(SHOP, order["id"], quantity=1)
    body = cancelled_order(shopify, clock)
    put(app, "refunds/create", refund, "r")
    put(app, "orders/cancelled", body, "c")
    WebhookWorker(app).drain_once()
    assert sandbox.received("me") == [] and deliveries(app) == []
    job = app.config.job("refunds")
    end = clock().astimezone(app.config.timezone).replace(hour=23, minute=59, second=0) 
    report = AlertSender(app).send_quiet_summary(job, end, now=end)
    assert report is not None and report.count("sent") == 1
    (message,) = sandbox.received("me")
    assert message["object_type"] == "list"
    # Held at the same moment: in slot-key order.
    assert message["header_title"] == "🔕 00:00~23:59 사이 취소 1건, 환불 1건"
    assert [(item["title"], item.get("description")) for item in message["contents"]] == [
        (f"❌ {body['name']} ₩50,000 취소", "고객 요청"), (f"↩️ #{refund['order_id']} ₩25,000 환불", "텀블러 ×1")]


@pytest.mark.postgres
def test_two_instances_on_postgresql_alert_each_event_once(make_bot: Callable[..., App], shopify: ShopifySandbox,
                                                           sandbox: KakaoSandbox, clock: FakeClock,
                                                           postgres_url: str) -> None:
    first = make_bot(REFUND_JOB, db_url=postgres_url)
    second = make_bot(REFUND_JOB, db_url=postgres_url, login=False, connect=False)
    order = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    refunds = [shopify.add_refund(SHOP, order["id"], amount=1000 + n) for n in range(6)]
    for n, refund in enumerate(refunds):
        put(first, "refunds/create", refund, f"a{n}")
        put(second, "refunds/create", refund, f"b{n}")  # a second subscription's delivery of the same event
    barrier = threading.Barrier(2)

    def drain(app: App) -> None:
        barrier.wait()
        WebhookWorker(app).drain_once()
    threads = [threading.Thread(target=drain, args=(app,)) for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    Reconciler(first).run_once()  # and the reconciliation on top
    assert len(sandbox.received("me")) == 6
    assert sorted(key for _, key, status in deliveries(first) if status == "sent") == sorted(
        f"refund:{refund['admin_graphql_api_id']}" for refund in refunds)
