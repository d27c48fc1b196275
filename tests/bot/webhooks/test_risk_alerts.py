"""High-risk order alerts: the order's risk summary read with GraphQL, alerted once per order."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from sqlalchemy import select

from bot.app import App
from bot.delivery.alerts import AlertSender
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.store.models import Delivery
from bot.webhooks.risk import RiskAlerts
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import ALERT_JOB, SHOP, Hooks, events, new_order

RISK_JOB = f"""
[[jobs]]
name = "risky"
kind = "shopify-risk-alert"
shop = "{SHOP}"
to = ["me"]
"""
FACTS = [("주문자 IP가 배송지와 다른 나라입니다", "NEGATIVE"), ("카드 CVV 일치", "POSITIVE")]


@pytest.fixture
def bot(make_bot: Callable[..., App]) -> App:
    return make_bot(RISK_JOB)


def texts(sandbox: KakaoSandbox) -> list[str]:
    return [template["text"] for template in sandbox.received("me")]


def send(hooks: Hooks, worker: WebhookWorker, topic: str, body: dict[str, Any], **kwargs: Any) -> None:
    assert hooks.send(topic, body, **kwargs).status_code == 200
    worker.drain_once()


def changed_body(order: dict[str, Any]) -> dict[str, Any]:
    """An orders/risk_assessment_changed body (REST-shaped) about `order`."""
    return {"provider_id": None, "provider_title": "Shopify", "risk_level": "high", "order_id": order["id"],
            "admin_graphql_api_order_id": order["admin_graphql_api_id"], "created_at": order["created_at"]}


def test_a_high_risk_order_is_alerted_once_with_the_recommendation(bot: App, shopify: ShopifySandbox, hooks: Hooks,
                                                                  worker: WebhookWorker,
                                                                  sandbox: KakaoSandbox) -> None:
    order = new_order(shopify, lineItems=[{"name": "텀블러", "sku": "T", "quantity": 2, "price": 25000}])
    shopify.set_risk(SHOP, order["id"], "CANCEL", ["HIGH", "LOW"], FACTS)
    send(hooks, worker, "orders/create", order, webhook_id="w1")
    send(hooks, worker, "orders/create", order, webhook_id="w1")  # a retry of the delivery
    send(hooks, worker, "orders/risk_assessment_changed", changed_body(order))  # the same order again
    assert texts(sandbox) == [f"⚠️ 위험 주문 {order['name']}: 취소 권장\n₩50,000 · 위험도 높음\n"
                              "• 주문자 IP가 배송지와 다른 나라입니다"]
    with bot.db.session() as session:
        assert list(session.scalars(select(Delivery.slot_key))) == [f"risk:{order['admin_graphql_api_id']}"]


@pytest.mark.parametrize("level, alerted", [("high", False), ("medium", True)])
def test_investigate_is_alerted_only_at_level_medium(make_bot: Callable[..., App], shopify: ShopifySandbox,
                                                    hooks: Hooks, sandbox: KakaoSandbox, level: str,
                                                    alerted: bool) -> None:
    app = make_bot(RISK_JOB + f'level = "{level}"\n')
    order = new_order(shopify)
    shopify.set_risk(SHOP, order["id"], "INVESTIGATE", ["MEDIUM"])
    send(hooks, WebhookWorker(app), "orders/create", order)
    assert [text.splitlines()[0] for text in texts(sandbox)] == (
        [f"⚠️ 위험 주문 {order['name']}: 확인 필요"] if alerted else [])


def test_a_pending_assessment_waits_for_risk_assessment_changed(bot: App, shopify: ShopifySandbox, hooks: Hooks,
                                                                worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    order = new_order(shopify)
    shopify.set_risk(SHOP, order["id"], "NONE", ["PENDING"])
    send(hooks, worker, "orders/create", order)
    assert texts(sandbox) == [] and "not assessed yet" in events(bot)[0].result
    shopify.set_risk(SHOP, order["id"], "CANCEL", ["HIGH"])
    send(hooks, worker, "orders/risk_assessment_changed", changed_body(order))
    assert len(texts(sandbox)) == 1


def test_low_risk_test_and_cancelled_orders_are_not_alerted(bot: App, shopify: ShopifySandbox, hooks: Hooks,
                                                            worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    low = new_order(shopify)
    shopify.set_risk(SHOP, low["id"], "ACCEPT", ["LOW"])
    test = new_order(shopify, test=True)
    shopify.set_risk(SHOP, test["id"], "CANCEL", ["HIGH"])
    cancelled = new_order(shopify, cancelledAt="2026-11-22T00:00:00Z")
    shopify.set_risk(SHOP, cancelled["id"], "CANCEL", ["HIGH"])
    for order in (low, test, cancelled):
        send(hooks, worker, "orders/create", order)
    assert texts(sandbox) == []
    assert [event.status for event in events(bot)] == ["done", "ignored", "ignored"]


@pytest.mark.parametrize("body, reason", [
    ({"risk_level": "high"}, "names no order"),
    ({"order_id": "abc"}, "names no order"),
    ({"order_id": 12345}, "unknown to Shopify"),
])
def test_a_malformed_or_unknown_body_is_ignored_with_a_reason(bot: App, hooks: Hooks, worker: WebhookWorker,
                                                              sandbox: KakaoSandbox, body: dict[str, Any],
                                                              reason: str) -> None:
    send(hooks, worker, "orders/risk_assessment_changed", body)
    (event,) = events(bot)
    assert event.status == "ignored" and reason in event.result


def test_a_failing_risk_query_retries_and_the_new_order_alert_still_goes_once(
        make_bot: Callable[..., App], shopify: ShopifySandbox, hooks: Hooks, clock: Any,
        sandbox: KakaoSandbox) -> None:
    app = make_bot(ALERT_JOB + RISK_JOB)
    worker = WebhookWorker(app)
    order = new_order(shopify)
    shopify.set_risk(SHOP, order["id"], "CANCEL", ["HIGH"])
    shopify.fail_next("graphql.json", 503, {"errors": "unavailable"}, times=20)
    send(hooks, worker, "orders/create", order)
    (event,) = events(app)
    assert event.status == "failed"
    assert [text.splitlines()[0] for text in texts(sandbox)] == [f"🛒 새 주문 {order['name']}"]
    shopify.clear_faults()
    clock.advance(minutes=5)
    worker.drain_once()  # the retry: the new-order alert is not sent again, the risk alert is
    assert [text.splitlines()[0] for text in texts(sandbox)] == [f"🛒 새 주문 {order['name']}",
                                                                 f"⚠️ 위험 주문 {order['name']}: 취소 권장"]
    assert events(app)[0].status == "done"


def test_a_malformed_risk_answer_fails_the_event(bot: App, shopify: ShopifySandbox, hooks: Hooks,
                                                 worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    order = new_order(shopify)
    shopify.set_risk(SHOP, order["id"], "MAYBE", ["HIGH"])  # not an OrderRiskRecommendationResult
    send(hooks, worker, "orders/create", order)
    (event,) = events(bot)
    assert event.status == "failed" and "recommendation" in (event.error or "")
    assert texts(sandbox) == []


def test_two_instances_on_postgresql_alert_a_risky_order_once(make_bot: Callable[..., App], postgres_url: str,
                                                              shopify: ShopifySandbox, sandbox: KakaoSandbox) -> None:
    first = make_bot(RISK_JOB, db_url=postgres_url)
    second = make_bot(RISK_JOB, db_url=postgres_url, login=False)
    order = new_order(shopify)
    shopify.set_risk(SHOP, order["id"], "CANCEL", ["HIGH"], FACTS)
    # One instance handles orders/create while the other handles orders/risk_assessment_changed.
    bodies = [order, changed_body(order)]
    results: list[tuple[str, str]] = []
    threads = [threading.Thread(target=lambda app=app, body=body: results.append(
        RiskAlerts(app, AlertSender(app)).check(SHOP, body))) for app, body in zip((first, second), bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert len(texts(sandbox)) == 1
    with second.db.session() as session:
        assert list(session.scalars(select(Delivery.slot_key))) == [f"risk:{order['admin_graphql_api_id']}"]
