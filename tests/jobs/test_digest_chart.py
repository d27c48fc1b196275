"""The digest's chart data (jobs.digest_chart): the `chart` option, the windows asked of Shopify (a DST
day included), the sums per local hour and day against a hand count, and the feed message."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from bot.config.model import JobConfig
from jobs import digest_chart, shopify_orders
from jobs.base import JobContext, Outcome
from jobs.shopify_orders import ShopifyOrdersParams

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
SHOP = "my-store.myshopify.com"
DOMAIN = "https://bot.example.com"


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def order(created: str, amount: str = "10000", currency: str = "KRW", *, cancelled: bool = False,
          financial: str = "PAID") -> dict[str, Any]:
    return {"id": f"gid://shopify/Order/{created}", "createdAt": created, "cancelledAt": created if cancelled else None,
            "displayFinancialStatus": financial, "totalPriceSet": {"shopMoney": {"amount": amount, "currencyCode": currency}}}


class Windows:
    """fetch_orders stand-in: records each window asked for, answers from `orders` (filtered by it)."""

    def __init__(self, orders: list[dict]):
        self.orders, self.asked = orders, []

    def __call__(self, _gql: Any, *, created_from: datetime, created_to: datetime, line_items: int,
                 **_kw: Any) -> list[dict]:
        self.asked.append((created_from, created_to))
        return [o for o in self.orders if created_from <= datetime.fromisoformat(o["createdAt"]) < created_to]


def ctx(now: datetime) -> JobContext:
    return JobContext(state=None, http=requests.Session(), now=now, shopify=lambda shop: object())  # type: ignore[arg-type]


@pytest.mark.parametrize("raw, expected", [({}, None), ({"chart": False}, None), ({"chart": "hourly"}, "hourly"),
                                           ({"chart": "daily7"}, "daily7")])
def test_the_chart_option(raw, expected):
    params = shopify_orders.parse_params({"shop": SHOP, **raw}, ConfigProblem)
    assert params.chart == expected


@pytest.mark.parametrize("value", [True, "weekly", "Hourly", 7, ""])
def test_a_bad_chart_option_is_refused_at_load(value):
    with pytest.raises(ConfigProblem) as info:
        shopify_orders.parse_params({"shop": SHOP, "chart": value}, ConfigProblem)
    assert info.value.key == "chart" and "hourly" in info.value.reason


def test_hourly_sums_today_by_local_hour_against_the_same_weekday_a_week_ago(monkeypatch):
    end = datetime(2026, 11, 22, 18, 0, tzinfo=SEOUL)  # a Sunday
    fetch = Windows([
        order("2026-11-22T09:15:00+09:00", "12000"), order("2026-11-22T09:59:59+09:00", "3000"),
        order("2026-11-22T00:30:00Z", "5000"),  # 09:30 in Seoul
        order("2026-11-22T11:00:00+09:00", "7000", cancelled=True, financial="REFUNDED"),
        order("2026-11-22T11:00:00+09:00", "8000", financial="PARTIALLY_REFUNDED"),
        order("2026-11-22T12:00:00+09:00", "50", "USD"),  # not the shop's currency
        order("2026-11-22T19:00:00+09:00", "9999"),  # after the digest's end: not asked for
        order("2026-11-15T23:59:00+09:00", "4000"), order("2026-11-15T00:00:00+09:00", "1000"),
        order("2026-11-16T00:00:00+09:00", "99999"),  # the next day: outside last week's window
    ])
    monkeypatch.setattr(digest_chart, "fetch_orders", fetch)

    spec, error = digest_chart.chart_for("orders", SHOP, "hourly", ctx(end), end)

    assert error is None
    assert fetch.asked == [(datetime(2026, 11, 22, tzinfo=SEOUL), end),
                           (datetime(2026, 11, 15, tzinfo=SEOUL), datetime(2026, 11, 16, tzinfo=SEOUL))]
    today, week_ago = (series["values"] for series in spec["series"])
    assert today[9] == 20000 and sum(today) == 20000
    assert week_ago[23] == 4000 and week_ago[0] == 1000 and sum(week_ago) == 5000
    assert spec["labels"][0] == "0시" and len(spec["labels"]) == 24
    assert spec["series"][1]["name"] == "지난주 일요일" and spec["currency"] == "KRW"


def test_hourly_on_a_dst_day_puts_each_order_in_its_local_hour(monkeypatch):
    # 2026-11-01 in New York: 01:00–02:00 happens twice (EDT, then EST).
    end = datetime(2026, 11, 1, 23, 0, tzinfo=NEW_YORK)
    fetch = Windows([order("2026-11-01T01:30:00-04:00", "10", "USD"), order("2026-11-01T01:30:00-05:00", "20", "USD"),
                     order("2026-11-01T00:10:00-04:00", "1", "USD"), order("2026-11-01T22:59:00-05:00", "2", "USD")])
    monkeypatch.setattr(digest_chart, "fetch_orders", fetch)

    spec, _ = digest_chart.chart_for("orders", SHOP, "hourly", ctx(end), end)

    today = spec["series"][0]["values"]
    assert (today[0], today[1], today[22]) == (1, 30, 2)
    start, _ = fetch.asked[0]
    assert start.utcoffset().total_seconds() == -4 * 3600  # local midnight, still EDT
    week_start, week_end = fetch.asked[1]
    assert (week_end - week_start).total_seconds() == 24 * 3600 and week_start.day == 25


def test_daily7_sums_each_local_day_and_shows_a_day_without_orders_as_zero(monkeypatch):
    end = datetime(2026, 11, 22, 18, 0, tzinfo=SEOUL)
    fetch = Windows([order("2026-11-16T00:00:00+09:00", "1000"), order("2026-11-15T23:59:59+09:00", "77"),
                     order("2026-11-18T12:00:00+09:00", "2000"), order("2026-11-18T13:00:00+09:00", "3000"),
                     order("2026-11-22T08:00:00+09:00", "500")])
    monkeypatch.setattr(digest_chart, "fetch_orders", fetch)

    spec, _ = digest_chart.chart_for("orders", SHOP, "daily7", ctx(end), end)

    assert fetch.asked == [(datetime(2026, 11, 16, tzinfo=SEOUL), end)]
    assert spec["labels"] == ["11/16(월)", "11/17(화)", "11/18(수)", "11/19(목)", "11/20(금)", "11/21(토)", "11/22(일)"]
    assert spec["series"][0]["values"] == [1000, 0, 5000, 0, 0, 0, 500]


def test_a_fetch_that_fails_is_a_reason_not_an_exception(monkeypatch):
    def broken(*_a: Any, **_k: Any) -> list:
        raise requests.ConnectionError("down")

    monkeypatch.setattr(digest_chart, "fetch_orders", broken)
    end = datetime(2026, 11, 22, 18, 0, tzinfo=SEOUL)
    assert digest_chart.chart_for("orders", SHOP, "daily7", ctx(end), end) == (
        None, "orders: no chart: the orders for it could not be read (ConnectionError: down)")
    no_shopify = JobContext(state=None, http=requests.Session(), now=end)  # type: ignore[arg-type]
    assert digest_chart.chart_for("orders", SHOP, "daily7", no_shopify, end)[0] is None


def _digest(**context: Any) -> Outcome:
    base = {"count": 9, "cancelled": 2, "refunded": 1, "currency": "KRW", "store": "my-store", "period": "08:00–18:00",
            "revenue": [{"currency": "KRW", "amount": 257000}], "refunded_amounts": [{"currency": "KRW", "amount": 30000}],
            "top_products": [], "customers": ["김민지"], "unfulfilled": 3, "admin_url": "https://admin.shopify.com/x"}
    return Outcome(context={**base, **context}, link=f"{DOMAIN}/orders", image_url="https://k.kakaocdn.net/dn/a/img.png")


def _job() -> JobConfig:
    return JobConfig(name="orders", kind="shopify-orders", at=("evening",), to=(), template=None,
                     params=ShopifyOrdersParams(SHOP, include_customers=True, chart="daily7"))


def test_an_uploaded_chart_makes_the_digest_a_feed_with_its_figures():
    feed = shopify_orders.render(_job(), _digest(), audience="friend", web_domain=DOMAIN, default_link=DOMAIN)

    assert feed["object_type"] == "feed"
    assert feed["content"]["image_url"] == "https://k.kakaocdn.net/dn/a/img.png"
    assert feed["content"]["title"] == "📊 my-store 매출 · 08:00–18:00"
    assert "주문 9건" in feed["content"]["description"] and "김민지" not in feed["content"]["description"]
    assert [(row["item"], row["item_op"]) for row in feed["item_content"]["items"]] == [
        ("매출", "₩257,000"), ("주문", "9건"), ("객단가", "₩42,833"), ("취소", "2건"), ("환불", "1건 · ₩30,000")]
    assert feed["buttons"] == [{"title": "주문 보기", "link": {"web_url": f"{DOMAIN}/orders",
                                                          "mobile_web_url": f"{DOMAIN}/orders"}}]


def test_without_an_uploaded_chart_the_digest_stays_text():
    outcome = _digest()
    outcome.image_url = None
    assert shopify_orders.render(_job(), outcome, audience="me", web_domain=DOMAIN,
                                 default_link=DOMAIN)["object_type"] == "text"


def test_no_paid_order_has_no_average():
    figures = dict(digest_chart.figures({"count": 2, "cancelled": 2, "refunded": 0, "revenue": []}))
    assert figures["객단가"] == "-" and figures["매출"] == "₩0" and figures["환불"] == "0건"
