"""`min_total` of order alerts, the `shopify-refund-alert` kind's params, amounts and texts, and the
list summary of held alerts of every kind."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alert_summary import quiet_summary_template, quiet_summary_text
from bot.delivery.alerts import AlertSender
from bot.kakao.recipients import Recipient
from bot.kakao.templates import TEXT_LIMIT
from bot.sandbox.kakao import KakaoSandbox
from bot.util.quiet_hours import parse_quiet
from jobs import shopify_order_alert as alert
from jobs import shopify_refund_alert as refunds
from jobs.shopify_refunds import refund_amount, refund_gid, refund_items

SHOP = "my-store.myshopify.com"
DOMAIN = "https://bot.example.com"
SEOUL = ZoneInfo("Asia/Seoul")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def refund_job(**params: Any) -> JobConfig:
    return JobConfig(name="refunds", kind=refunds.KIND, at=(), to=(Recipient("me"),), template=None,
                     params=refunds.ShopifyRefundAlertParams(SHOP, **params))


# -- params -------------------------------------------------------------------------------------


def test_min_total_is_parsed_for_both_kinds() -> None:
    assert alert.parse_params({"shop": SHOP, "min_total": 50000}, ConfigProblem).min_total == Decimal(50000)
    assert alert.parse_params({"shop": SHOP, "min_total": 12.5}, ConfigProblem).min_total == Decimal("12.5")
    assert alert.parse_params({"shop": SHOP}, ConfigProblem).min_total is None
    params = refunds.parse_params({"shop": SHOP, "events": ["refund", "refund"], "min_total": 0}, ConfigProblem)
    assert params == refunds.ShopifyRefundAlertParams(SHOP, ("refund",), Decimal(0))
    assert refunds.parse_params({"shop": SHOP}, ConfigProblem).events == ("cancelled", "refund")


@pytest.mark.parametrize("module, raw, key, reason", [
    (alert, {"min_total": "50000"}, "min_total", "must be a number"),
    (alert, {"min_total": True}, "min_total", "must be a number"),
    (alert, {"min_total": -1}, "min_total", "zero or more"),
    (alert, {"min_total": float("nan")}, "min_total", "zero or more"),
    (refunds, {"events": []}, "events", "non-empty list"),
    (refunds, {"events": "refund"}, "events", "non-empty list"),
    (refunds, {"events": ["refunded"]}, "events", "unknown event 'refunded'"),
    (refunds, {"quiet": "22-07"}, "quiet", ""),
    (refunds, {"min_total": -5}, "min_total", "zero or more"),
])
def test_bad_params_are_refused_by_key(module: Any, raw: dict, key: str, reason: str) -> None:
    with pytest.raises(ConfigProblem) as caught:
        module.parse_params({"shop": SHOP, **raw}, ConfigProblem)
    assert caught.value.key == key and reason in caught.value.reason


def test_each_job_declares_the_topics_its_events_need() -> None:
    assert refunds.job_webhook_topics(refunds.ShopifyRefundAlertParams(SHOP, ("refund",))) == ("refunds/create",)
    assert refunds.job_webhook_topics(refunds.ShopifyRefundAlertParams(SHOP)) == ("orders/cancelled", "refunds/create")
    assert alert.job_webhook_topics(alert.ShopifyOrderAlertParams(SHOP, on_update=False)) == ("orders/create",)


# -- refunds in either shape ----------------------------------------------------------------------


def test_refund_amounts_from_transactions_line_items_or_graphql() -> None:
    in_other_currency = {"transactions": [{"kind": "refund", "status": "success", "amount": "7.5", "currency": "USD"}],
                         "refund_line_items": [{"subtotal_set": {"shop_money": {"amount": "10000", "currency_code": "KRW"}}}]}
    assert refund_amount(in_other_currency) == (Decimal("10000"), "KRW")
    transactions = {"transactions": [{"kind": "refund", "status": "success", "amount": "10.50", "currency": "USD"},
                                     {"kind": "refund", "status": "failure", "amount": "99.00", "currency": "USD"},
                                     {"kind": "refund", "status": "success", "amount": "4.50", "currency": "USD"}]}
    assert refund_amount(transactions) == (Decimal("15.00"), "USD")
    lines = {"refund_line_items": [
        {"quantity": 1, "subtotal_set": {"shop_money": {"amount": "25000.00", "currency_code": "KRW"}},
         "total_tax_set": {"shop_money": {"amount": "2500.00", "currency_code": "KRW"}}}]}
    assert refund_amount(lines) == (Decimal("27500.00"), "KRW")
    assert refund_amount({"totalRefundedSet": {"shopMoney": {"amount": "3000.0", "currencyCode": "KRW"}}}) == (
        Decimal("3000.0"), "KRW")
    mixed = {"refund_line_items": [
        {"subtotal_set": {"shop_money": {"amount": "1", "currency_code": "KRW"}}},
        {"subtotal_set": {"shop_money": {"amount": "1", "currency_code": "USD"}}}]}
    assert refund_amount(mixed) == (None, None)
    assert refund_amount({}) == (None, None)
    assert refund_amount({"transactions": "junk", "refund_line_items": [None, 3]}) == (None, None)


@pytest.mark.parametrize("refund, gid", [
    ({"id": 5}, "gid://shopify/Refund/5"),
    ({"id": "5"}, "gid://shopify/Refund/5"),
    ({"id": "gid://shopify/Refund/7"}, "gid://shopify/Refund/7"),
    ({"admin_graphql_api_id": "gid://shopify/Refund/8", "id": 8}, "gid://shopify/Refund/8"),
    ({"id": True}, None), ({"id": -1}, None), ({"id": "gid://shopify/Order/1"}, None), ({}, None),
])
def test_refund_gid(refund: dict, gid: str | None) -> None:
    assert refund_gid(refund) == gid


def test_refund_items_tolerate_junk() -> None:
    assert refund_items({"refund_line_items": [{"quantity": 2, "line_item": {"name": " 텀블러  ", "sku": "T"}},
                                               {"quantity": "x"}, None]}) == [
        {"name": "텀블러", "sku": "T", "quantity": 2}, {"name": "(이름 없음)", "sku": "", "quantity": 0}]


def test_alert_texts_fit_and_hold_no_customer_data() -> None:
    job = refund_job()
    order = {"id": 61, "admin_graphql_api_id": "gid://shopify/Order/61", "name": "#1001", "cancelled_at": "2026-11-22T10:00:00+09:00",
             "cancel_reason": "inventory", "total_price_set": {"shop_money": {"amount": "42000.00", "currency_code": "KRW"}},
             "line_items": [{"name": "가" * 300, "quantity": 1}], "customer": {"first_name": "민지", "email": "a@b.c"}}
    outcome = refunds.cancel_outcome(job, order, timezone=SEOUL)
    message = refunds.render(job, outcome, audience="friend", web_domain=DOMAIN, default_link=DOMAIN)
    assert message["text"].startswith("❌ 주문 취소 #1001\n₩42,000 · 1개 · 사유: 재고 부족")
    assert len(message["text"]) <= TEXT_LIMIT and "민지" not in str(outcome.context) and "a@b.c" not in message["text"]
    assert refunds.wants(job, "cancelled", Decimal(42000))
    assert not refunds.wants(refund_job(min_total=Decimal(50000)), "cancelled", Decimal(42000))
    assert refunds.wants(refund_job(min_total=Decimal(50000)), "refund", None)  # an unknown amount is alerted


# -- min_total on new orders, against the Kakao stand-in -------------------------------------------------


def test_orders_below_min_total_are_not_alerted(make_app: Callable[..., App], logged_in: Any,
                                                sandbox: KakaoSandbox) -> None:
    app = make_app(f"""
        [[jobs]]
        name = "big-orders"
        kind = "shopify-order-alert"
        shop = "{SHOP}"
        min_total = 50000
        to = ["me"]
        """)
    logged_in(app)
    sender = AlertSender(app)
    jobs = [app.config.job("big-orders")]

    def order(number: int, amount: str | None) -> dict[str, Any]:
        money = {"totalPriceSet": {"shopMoney": {"amount": amount, "currencyCode": "KRW"}}} if amount else {}
        return {"id": f"gid://shopify/Order/{number}", "name": f"#{number}", **money}

    assert sender.alert_order(jobs, "order:gid://shopify/Order/1", order(1, "49999")) == (0, [])
    assert sender.alert_order(jobs, "order:gid://shopify/Order/2", order(2, "50000")) == (1, [])
    assert sender.alert_order(jobs, "order:gid://shopify/Order/3", order(3, None)) == (1, [])  # unknown: alerted
    assert [m["text"].splitlines()[0] for m in sandbox.received("me")] == ["🛒 새 주문 #2", "🛒 새 주문 #3"]


# -- the summary of held alerts -----------------------------------------------------------------------


def held(group: str, line: str, detail: str = "") -> dict[str, Any]:
    return {"event": "x", "group": group, "line": line, "detail": detail}


def test_more_than_three_held_alerts_are_counted_in_the_list_header() -> None:
    quiet = parse_quiet("22:00-07:00")
    alerts = [{"event": "new", "name": f"#{n}", "total": "1000", "currency": "KRW"} for n in range(3)]
    alerts += [held("환불", "↩️ #9 ₩5,000 환불", "텀블러 ×1"), held("재고", "📦 원두 200g 품절", "남은 수량 0")]
    message = quiet_summary_template(quiet, alerts, web_domain=DOMAIN)
    assert message["object_type"] == "list"
    assert message["header_title"] == "🌙 밤사이 주문 3건 · 합계 ₩3,000, 환불 1건, 재고 1건 (외 2건)"
    assert len(message["contents"]) == 3 and len(message["buttons"]) == 1
    text = quiet_summary_text(quiet, alerts)
    assert text.splitlines()[-1] == "📦 원두 200g 품절" and len(text) <= TEXT_LIMIT


def test_one_held_alert_stays_a_text_and_long_lines_are_cut() -> None:
    quiet = parse_quiet("22:00-07:00")
    (single,) = [held("위험", "⚠️ #1 " + "긴 설명 " * 80)]
    message = quiet_summary_template(quiet, [single], web_domain=DOMAIN)
    assert message["object_type"] == "text" and len(message["text"]) <= TEXT_LIMIT
    many = quiet_summary_template(quiet, [single, single], web_domain=DOMAIN)
    assert all(len(item["title"]) <= TEXT_LIMIT for item in many["contents"])


# -- Shopify's webhook bodies (tests/fixtures/shopify) ------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_a_refund_body_reads_in_shop_money_when_the_customer_paid_in_another_currency() -> None:
    body = fixture("webhook_refunds_create.json")
    assert refund_gid(body) == "gid://shopify/Refund/890088186047892319"
    assert refund_amount(body) == (Decimal("11000.00"), "KRW")  # not the USD 8.25 of the transaction
    job = refund_job()
    outcome = refunds.refund_outcome(job, body, timezone=SEOUL)
    message = refunds.render(job, outcome, audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert message["text"] == "↩️ 환불 #6100000000101\n₩11,000 환불\n• 드립백 10개입 ×1"
    named = refunds.refund_outcome(job, body, order={"id": 6100000000101, "name": "#1001"}, timezone=SEOUL)
    assert named.context["summary_line"] == "↩️ #1001 ₩11,000 환불"


def test_a_cancelled_body_counts_the_items_as_ordered_and_names_the_reason() -> None:
    body = fixture("webhook_orders_cancelled.json")
    job = refund_job()
    outcome = refunds.cancel_outcome(job, body, timezone=SEOUL)
    message = refunds.render(job, outcome, audience="friend", web_domain=DOMAIN, default_link=DOMAIN)
    assert message["text"] == "❌ 주문 취소 #1001\n₩33,000 · 3개 · 사유: 고객 요청"
    assert "민지" not in json.dumps(outcome.context, default=str, ensure_ascii=False)
    bare = refunds.cancel_outcome(job, {"id": 5, "cancelled_at": "2026-11-22T10:20:00+09:00"}, timezone=SEOUL)
    text = refunds.render(job, bare, audience="me", web_domain=DOMAIN, default_link=DOMAIN)["text"]
    assert text == "❌ 주문 취소 #5"
