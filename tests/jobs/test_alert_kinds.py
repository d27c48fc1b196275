"""The stock, risk and unfulfilled alert kinds: params refused by key, what they declare, the alert texts."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest

from bot.config.model import JobConfig
from bot.kakao.recipients import Recipient
from bot.kakao.templates import TEXT_LIMIT
from jobs import job_kind
from jobs import shopify_risk_alert as risk
from jobs import shopify_stock_alert as stock
from jobs import shopify_unfulfilled_alert as unfulfilled

SHOP = "my-store.myshopify.com"
DOMAIN = "https://bot.example.com"
SEOUL = ZoneInfo("Asia/Seoul")


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def job(module: Any, **params: Any) -> JobConfig:
    parsed = module.parse_params({"shop": SHOP, **params}, ConfigProblem)
    return JobConfig(name="alerts", kind=module.KIND, at=(), to=(Recipient("me"),), params=parsed)


def rendered(the_job: JobConfig, outcome: Any) -> dict[str, Any]:
    return job_kind(the_job.kind).render(the_job, outcome, audience="me", web_domain=DOMAIN, default_link=DOMAIN)


@pytest.mark.parametrize("module, raw, key", [
    (stock, {"threshold": -1}, "threshold"),
    (stock, {"threshold": "5"}, "threshold"),
    (stock, {"thresholds": ["A"]}, "thresholds"),
    (stock, {"thresholds": {"A": -2}}, "thresholds.A"),
    (stock, {"thresholds": {"A": True}}, "thresholds.A"),
    (stock, {"quiet": "22:00"}, "quiet"),
    (risk, {"level": "low"}, "level"),
    (risk, {"quiet": 7}, "quiet"),
    (unfulfilled, {"hours": 0}, "hours"),
    (unfulfilled, {"hours": 48, "max_age_days": 2}, "max_age_days"),
    (unfulfilled, {"max_age_days": 90}, "max_age_days"),
])
def test_bad_params_are_refused_by_key(module: Any, raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigProblem) as caught:
        module.parse_params({"shop": SHOP, **raw}, ConfigProblem)
    assert caught.value.key == key


@pytest.mark.parametrize("module, topics, scopes", [
    (stock, ("inventory_levels/update",), ("read_inventory", "read_products")),
    (risk, ("orders/create", "orders/risk_assessment_changed"), ("read_orders",)),
    (unfulfilled, (), ("read_orders",)),
])
def test_each_kind_declares_its_topics_and_scopes_and_is_not_scheduled(module: Any, topics: tuple, scopes: tuple) -> None:
    assert (module.WEBHOOK_TOPICS, module.SCOPES, module.SCHEDULED) == (topics, scopes, False)
    assert job_kind(module.KIND) is module


def test_thresholds_by_sku_then_product_then_the_jobs() -> None:
    params = job(stock, threshold=5, thresholds={"MUG-RED": 2, "티셔츠": 10}).params
    assert params.threshold_for("MUG-RED", "머그") == 2
    assert params.threshold_for("TEE-1", "티셔츠") == 10
    assert params.threshold_for("OTHER", "양말") == 5


@pytest.mark.parametrize("build", [
    lambda: (job(stock), stock.stock_outcome(job(stock), name="아주 긴 상품 이름 " * 20, sku="S" * 60,
                                             available=0, threshold=5, locations=3)),
    lambda: (job(risk), risk.risk_outcome(job(risk), order(), recommendation="CANCEL", level="HIGH",
                                          facts=["사실 " * 40] * 6)),
    lambda: (job(unfulfilled), unfulfilled.unfulfilled_outcome(job(unfulfilled), order(),
                                                               datetime(2026, 11, 23, 18, tzinfo=timezone.utc), SEOUL)),
])
def test_every_alert_fits_kakao_and_carries_what_the_quiet_summary_lists(build: Callable[[], Any]) -> None:
    the_job, outcome = build()
    message = rendered(the_job, outcome)
    assert message["object_type"] == "text" and len(message["text"]) <= TEXT_LIMIT
    assert {"name", "total", "currency", "event", "summary_line"} <= set(outcome.context)
    assert outcome.context["event"] in ("stock", "risk", "unfulfilled") and outcome.context["summary_line"]


def order(**overrides: Any) -> dict[str, Any]:
    node = {"id": "gid://shopify/Order/6100000000101", "name": "#1001", "createdAt": "2026-11-21T15:00:00Z",
            "cancelledAt": None, "test": False, "displayFulfillmentStatus": "UNFULFILLED",
            "totalPriceSet": {"shopMoney": {"amount": "33000.0", "currencyCode": "KRW"}}}
    node.update(overrides)
    return node


def test_the_unfulfilled_alert_text() -> None:
    the_job = job(unfulfilled, hours=48)
    outcome = unfulfilled.unfulfilled_outcome(the_job, order(), datetime(2026, 11, 23, 18, tzinfo=timezone.utc), SEOUL)
    assert rendered(the_job, outcome)["text"] == "⏰ 미발송 51시간째 #1001\n₩33,000 · 주문 11/22 00:00\n48시간 넘게 발송되지 않았어요."


@pytest.mark.parametrize("option, recommendation, level, risky", [
    ("high", "CANCEL", "LOW", True), ("high", "ACCEPT", "HIGH", True), ("high", "INVESTIGATE", "MEDIUM", False),
    ("medium", "INVESTIGATE", "LOW", True), ("medium", "ACCEPT", "MEDIUM", True), ("medium", "ACCEPT", "LOW", False),
])
def test_risky_enough_per_level(option: str, recommendation: str, level: str, risky: bool) -> None:
    assert risk.is_risky(option, recommendation, level) is risky


def test_cancelled_and_test_orders_are_never_unfulfilled_alerts() -> None:
    assert unfulfilled.is_alertable(order())
    assert not unfulfilled.is_alertable(order(cancelledAt="2026-11-22T00:00:00Z"))
    assert not unfulfilled.is_alertable(order(test=True))
    assert not unfulfilled.is_alertable(order(displayFulfillmentStatus="FULFILLED"))
