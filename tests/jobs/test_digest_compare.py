"""The `shopify-orders` comparisons: the option, the shifted windows (DST), the figures against a hand
computation over the Shopify stand-in's orders, the text, and a comparison fetch that fails."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from bot.app import load_config
from bot.config.model import ConfigError, JobConfig
from bot.sandbox.server import serve
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify import orders_query
from bot.shopify.client import ShopifyHttp
from bot.shopify.errors import ShopifyUnavailable
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.shapes import ShopifyBadAnswer
from bot.util.http import new_session
from bot.util.retry import NO_RETRY
from jobs import digest_compare, shopify_orders
from jobs.base import JobContext, JobFailed, Outcome
from jobs.digest_compare import parse_compare, percent_change, shifted
from jobs.shopify_orders import ShopifyOrdersParams

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SHOP = "my-store.myshopify.com"
DOMAIN = "https://bot.example.com"
MINUS = "\u2212"


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


class DictState:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def order(number: int, created: datetime, amount: str = "10000.0", currency: str = "KRW", *,
          cancelled: bool = False, financial: str = "PAID") -> dict[str, Any]:
    """A GraphQL order node as `fetch_orders` yields it."""
    return {"id": f"gid://shopify/Order/{number}", "name": f"#{1000 + number}", "createdAt": created.isoformat(),
            "cancelledAt": (created + timedelta(hours=1)).isoformat() if cancelled else None,
            "displayFinancialStatus": financial, "displayFulfillmentStatus": "UNFULFILLED",
            "totalPriceSet": {"shopMoney": {"amount": amount, "currencyCode": currency}},
            "lineItems": {"nodes": [{"name": "상품A", "sku": "A", "quantity": 1}]}}


class FakeShopify:
    """`fetch_orders` answering every window with `orders` (the job keeps those inside its window);
    `errors[i]` is raised while iterating the i-th fetch."""

    def __init__(self, orders: list[dict[str, Any]], errors: dict[int, Exception] | None = None):
        self.orders, self.errors = orders, errors or {}
        self.calls: list[dict[str, Any]] = []
        self.factories = 0

    def factory(self, shop: str) -> object:
        self.factories += 1
        return object()

    def fetch_orders(self, gql: Any, **kwargs: Any) -> Iterator[dict]:
        index = len(self.calls)
        self.calls.append(kwargs)

        def pages() -> Iterator[dict]:
            yield from self.orders
            if index in self.errors:
                raise self.errors[index]

        return pages()


def _job(template: str | None = None, **params: Any) -> JobConfig:
    return JobConfig(name="orders", kind="shopify-orders", at=("noon",), to=(), template=template,
                     params=ShopifyOrdersParams(SHOP, **params))


def _collect(fake: FakeShopify, monkeypatch: pytest.MonkeyPatch, *, since: datetime, until: datetime,
             **params: Any) -> dict[str, Any]:
    monkeypatch.setattr(shopify_orders, "fetch_orders", fake.fetch_orders)
    ctx = JobContext(state=DictState(), http=requests.Session(), now=until, since=since, until=until,
                     shopify=fake.factory)
    return shopify_orders.collect(_job(**params), ctx).context


def _text(context: dict[str, Any], **params: Any) -> str:
    return shopify_orders.render(_job(**params), Outcome(context=context), audience="me", web_domain=DOMAIN,
                                 default_link=DOMAIN)["text"]


# -- the option ---------------------------------------------------------------------------------
def test_compare_defaults_to_day_and_week_and_can_be_turned_off():
    assert shopify_orders.parse_params({"shop": SHOP}, ConfigProblem).compare == ("day", "week")
    assert shopify_orders.parse_params({"shop": SHOP, "compare": []}, ConfigProblem).compare == ()
    assert shopify_orders.parse_params({"shop": SHOP, "compare": ["week"]}, ConfigProblem).compare == ("week",)
    assert shopify_orders.parse_params({"shop": SHOP, "compare": ["week", "day"]}, ConfigProblem).compare == \
        ("week", "day")


@pytest.mark.parametrize(("value", "reason"), [
    ("day", "must be a list"),
    (True, "must be a list"),
    ([1], "must be a list"),
    (["month"], "unknown comparison 'month'"),
    (["Day"], "unknown comparison 'Day'"),
    (["day", "day"], "twice"),
])
def test_bad_compare(value, reason):
    with pytest.raises(ConfigProblem) as info:
        parse_compare({"compare": value}, ConfigProblem)
    assert info.value.key == "compare"
    assert reason in info.value.reason


def test_config_file_checks_compare_at_load(write_config):
    path = write_config("""
        [[jobs]]
        name = "orders"
        kind = "shopify-orders"
        shop = "my-store.myshopify.com"
        compare = ["yesterday"]
        at = ["noon"]
        to = ["me"]
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "jobs[orders].compare"
    assert "yesterday" in info.value.reason
    config = load_config(write_config("""
        [[jobs]]
        name = "orders"
        kind = "shopify-orders"
        shop = "my-store.myshopify.com"
        compare = ["week"]
        at = ["noon"]
        to = ["me"]
        """))
    assert config.jobs[0].params.compare == ("week",)


# -- windows ------------------------------------------------------------------------------------
def test_shift_keeps_local_hours_across_the_spring_change():
    # 2026-03-08: New York springs forward at 02:00 (EST −5 → EDT −4).
    start, end = datetime(2026, 3, 9, 0, 0, tzinfo=NEW_YORK), datetime(2026, 3, 9, 12, 0, tzinfo=NEW_YORK)
    day = shifted(start, 1), shifted(end, 1)
    assert [(m.day, m.hour, m.minute) for m in day] == [(8, 0, 0), (8, 12, 0)]
    assert [m.utcoffset() for m in day] == [timedelta(hours=-5), timedelta(hours=-4)]
    assert day[1].astimezone(timezone.utc) - day[0].astimezone(timezone.utc) == timedelta(hours=11)  # the same 12 local hours are 11 real ones that day
    week = shifted(start, 7), shifted(end, 7)
    assert [(m.day, m.hour, m.utcoffset()) for m in week] == [(2, 0, timedelta(hours=-5)), (2, 12, timedelta(hours=-5))]


def test_shift_keeps_local_hours_across_the_autumn_change():
    # 2026-10-25: Berlin falls back at 03:00 (CEST +2 → CET +1).
    start, end = datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN), datetime(2026, 10, 26, 12, 0, tzinfo=BERLIN)
    day = shifted(start, 1), shifted(end, 1)
    assert [(m.day, m.hour) for m in day] == [(25, 0), (25, 12)]
    assert day[1].astimezone(timezone.utc) - day[0].astimezone(timezone.utc) == timedelta(hours=13)


def test_shift_out_of_a_spring_gap_and_without_a_zone():
    # 02:30 does not exist in New York on 2026-03-08: it stands for 03:30 EDT.
    assert shifted(datetime(2026, 3, 9, 2, 30, tzinfo=NEW_YORK), 1) == datetime(2026, 3, 8, 3, 30, tzinfo=NEW_YORK)
    with pytest.raises(ValueError):
        shifted(datetime(2026, 3, 9, 2, 30), 1)


# -- changes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("current", "base", "text"), [
    (112, 100, "+12%"),
    (97, 100, f"{MINUS}3%"),
    (100, 100, "±0%"),
    (Decimal("1000.4"), 1000, "±0%"),
    (Decimal("1005"), 1000, "+1%"),  # half away from zero
    (Decimal("995"), 1000, f"{MINUS}1%"),
    (0, 100, f"{MINUS}100%"),
    (2500, 10, "+24,900%"),
    (5, 0, None),
    (5, None, None),
    (Decimal("0"), Decimal("0.00"), None),
])
def test_percent_change(current, base, text):
    assert percent_change(current, base) == text


# -- collect: figures equal a hand computation --------------------------------------------------
def test_figures_and_text_from_the_three_windows(monkeypatch):
    since, until = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL), datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL)
    at = datetime(2026, 11, 22, 9, 0, tzinfo=SEOUL)
    orders = [  # today: 3 orders, one cancelled → revenue 60,000 over 2 orders
        order(1, at, "40000.0"), order(2, at, "20000.0"), order(3, at, "99000.0", cancelled=True),
        # yesterday 08:00–12:00: 2 orders, revenue 50,000; one outside the hours
        order(4, at - timedelta(days=1), "30000.0"), order(5, at - timedelta(days=1), "20000.0"),
        order(6, at - timedelta(days=1, hours=2), "777000.0"),
        # last week: one refunded order only → 1 order, no revenue
        order(7, at - timedelta(days=7), "15000.0", financial="REFUNDED"),
    ]
    fake = FakeShopify(orders)
    c = _collect(fake, monkeypatch, since=since, until=until)
    assert fake.factories == 1  # one client, one view of the cost bucket, for all three windows
    assert [(call["created_from"], call["created_to"]) for call in fake.calls] == [
        (since, until), (since - timedelta(days=1), until - timedelta(days=1)),
        (since - timedelta(days=7), until - timedelta(days=7))]
    # Comparisons ask for totals only.
    assert [(call["line_items"], call["with_customer"]) for call in fake.calls[1:]] == [(1, False), (1, False)]
    assert c["aov"] == Decimal("30000.00")
    day, week = c["compare"]
    assert (day["name"], day["label"], day["count"], day["revenue"], day["aov"]) == \
        ("day", "어제", 2, Decimal("50000.0"), Decimal("25000.00"))
    assert day["changes"] == {"revenue": "+20%", "count": "+50%", "aov": "+20%"}
    assert (week["count"], week["revenue"], week["aov"]) == (1, Decimal(0), None)
    assert week["changes"] == {"revenue": None, "count": "+200%", "aov": None}
    assert c["compare_text"] == {"revenue": "어제 같은 시간 대비 +20%, 지난주 없음",
                                 "count": "어제 +50%, 지난주 +200%", "aov": "어제 +20%, 지난주 없음"}
    text = _text(c)
    assert "매출 ₩60,000 (어제 같은 시간 대비 +20%, 지난주 없음)\n주문 3건 (어제 +50%, 지난주 +200%)\n" \
           "객단가 ₩30,000 (어제 +20%, 지난주 없음)\n취소 1" in text


def test_a_day_without_orders_reads_none_not_a_division_by_zero(monkeypatch):
    since, until = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL), datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL)
    fake = FakeShopify([order(1, since + timedelta(hours=1), "12000.0"),
                        order(2, since - timedelta(days=7, hours=-1), "24000.0")])
    c = _collect(fake, monkeypatch, since=since, until=until)
    assert c["compare"][0]["count"] == 0
    assert c["compare_text"] == {"revenue": f"어제 없음, 지난주 대비 {MINUS}50%", "count": "어제 없음, 지난주 ±0%",
                                 "aov": f"어제 없음, 지난주 {MINUS}50%"}


def test_compare_off_and_one_comparison(monkeypatch):
    since, until = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL), datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL)
    fake = FakeShopify([order(1, since + timedelta(hours=1), "12000.0")])
    c = _collect(fake, monkeypatch, since=since, until=until, compare=())
    assert len(fake.calls) == 1
    assert (c["compare"], c["compare_text"]) == ([], {"revenue": "", "count": "", "aov": ""})
    assert "주문 1건 · 매출 ₩12,000\n" in _text(c, compare=())
    fake = FakeShopify([order(1, since + timedelta(hours=1), "12000.0")])
    c = _collect(fake, monkeypatch, since=since, until=until, compare=("week",))
    assert len(fake.calls) == 2
    assert c["compare_text"]["revenue"] == "지난주 없음"


def test_dollars_are_formatted_in_the_shops_currency(monkeypatch):
    since, until = datetime(2026, 11, 22, 8, 0, tzinfo=NEW_YORK), datetime(2026, 11, 22, 12, 0, tzinfo=NEW_YORK)
    at = since + timedelta(hours=1)
    fake = FakeShopify([order(1, at, "12.5", "USD"), order(2, at, "7.5", "USD"),
                        order(3, at - timedelta(days=1), "8.0", "USD")])
    c = _collect(fake, monkeypatch, since=since, until=until)
    assert "매출 $20.00 (어제 같은 시간 대비 +150%, 지난주 없음)\n주문 2건 (어제 +100%, 지난주 없음)\n" \
           "객단가 $10.00 (어제 +25%, 지난주 없음)" in _text(c)


def test_the_default_message_shows_the_comparisons_within_kakaos_200_characters(monkeypatch):
    since, until = datetime(2026, 11, 21, 18, 0, tzinfo=SEOUL), datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL)
    at = since + timedelta(hours=1)
    long_name = "아주 긴 상품 이름이 붙은 한정판 드립백 세트"
    today = [order(i, at, "1234567.0") for i in range(1, 13)]
    for o in today:
        o["lineItems"]["nodes"] = [{"name": f"{long_name} {o['id'][-1]}", "sku": "X", "quantity": 3}]
    today[0]["displayFinancialStatus"] = "REFUNDED"
    yesterday = [order(100 + i, at - timedelta(days=1), "1000.0") for i in range(7)]
    fake = FakeShopify(today + yesterday)
    c = _collect(fake, monkeypatch, since=since, until=until)
    text = _text(c)
    assert len(text) <= 200, text
    assert c["compare_text"]["revenue"] == "어제 같은 시간 대비 +193,903%, 지난주 없음"
    assert "객단가 ₩1,234,567 (어제 +123,357%, 지난주 없음)" in text
    assert "인기: " in text


# -- a comparison that fails ----------------------------------------------------------------------
@pytest.mark.parametrize("error", [ShopifyUnavailable("HTTP 503", status=503),
                                   ShopifyBadAnswer("data.orders.nodes[0].totalPriceSet: missing")])
def test_a_failing_comparison_fetch_leaves_the_digest_without_it(monkeypatch, caplog, error):
    since, until = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL), datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL)
    fake = FakeShopify([order(1, since + timedelta(hours=1), "12000.0"),
                        order(2, since - timedelta(days=7, hours=-1), "24000.0")], errors={1: error})
    with caplog.at_level(logging.WARNING, logger="jobs.digest_compare"):
        c = _collect(fake, monkeypatch, since=since, until=until)
    day, week = c["compare"]
    assert (day["available"], day["count"], day["changes"]["revenue"]) == (False, None, None)
    assert week["available"] and week["changes"]["revenue"] == f"{MINUS}50%"
    assert c["compare_text"]["revenue"] == f"어제 비교 불가, 지난주 대비 {MINUS}50%"
    assert "매출 ₩12,000 (어제 비교 불가, 지난주 대비 −50%)" in _text(c)
    assert "orders: comparison with 어제 같은 시간 (2026-11-21T08:00:00+09:00–2026-11-21T12:00:00+09:00) " \
           "unavailable" in caplog.text


def test_a_failing_main_fetch_still_fails_the_job(monkeypatch):
    since, until = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL), datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL)
    fake = FakeShopify([order(1, since + timedelta(hours=1))], errors={0: ShopifyBadAnswer("data.orders: missing")})
    with pytest.raises(JobFailed, match="nothing sent"):
        _collect(fake, monkeypatch, since=since, until=until)
    assert len(fake.calls) == 1  # no comparison fetched for a digest that is not sent


def test_compare_context_passes_on_what_is_not_a_job_failure():
    def broken(since: datetime, until: datetime) -> dict[str, Any]:
        raise RuntimeError("a bug, not an unavailable upstream")

    main = {"count": 1, "cancelled": 0, "refunded": 0, "currency": "KRW",
            "revenue": [{"currency": "KRW", "amount": Decimal(1)}]}
    start = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL)
    with pytest.raises(RuntimeError):
        digest_compare.compare_context(("day",), start, start + timedelta(hours=1), main, broken)


# -- through the GraphQL endpoint (the real client, HTTP mocked) ------------------------------------
GRAPHQL = f"https://{SHOP}/admin/api/2025-10/graphql.json"


class Tokens:
    def access_token(self) -> str:
        return "shpat_test"

    def renew_refused(self) -> bool:
        return False

    def rejected(self, reason: str) -> None:
        pass


def _page(nodes: list[dict], available: int) -> dict:
    cost = {"requestedQueryCost": 152, "actualQueryCost": 20,
            "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}
    return {"data": {"orders": {"nodes": nodes, "pageInfo": {"hasNextPage": False, "endCursor": None}}},
            "extensions": {"cost": cost}}


@responses.activate
def test_through_the_graphql_endpoint_one_client_waits_for_the_bucket():
    now = datetime.now(SEOUL).replace(microsecond=0)
    since = now - timedelta(hours=4)
    at = now - timedelta(hours=1)
    responses.post(GRAPHQL, json=_page([order(1, at, "45000.0")], 10))  # the bucket nearly empty after it
    responses.post(GRAPHQL, json=_page([order(2, at - timedelta(days=1), "30000.0")], 1990))
    responses.post(GRAPHQL, status=503, body="upstream connect error")
    slept: list[float] = []
    client = ShopifyGraphQL(ShopifyHttp(requests.Session(), retry=NO_RETRY), origin="https://{shop}", shop=SHOP,
                            api_version="2025-10", tokens=Tokens(), sleep=slept.append)
    made: list[str] = []
    outcome = shopify_orders.collect(_job(compare=("day", "week")), JobContext(
        state=DictState(), http=requests.Session(), now=now, since=since,
        shopify=lambda shop: made.append(shop) or client))
    assert made == [SHOP]
    assert len(responses.calls) == 3
    bodies = [json.loads(call.request.body) for call in responses.calls]
    assert [b["variables"]["query"] for b in bodies] == [
        f"created_at:>='{(since - timedelta(days=d)).isoformat()}' AND "
        f"created_at:<'{(now - timedelta(days=d)).isoformat()}'" for d in (0, 1, 7)]
    assert [b["variables"]["lineItems"] for b in bodies] == [10, 1, 1]
    assert slept and slept[0] > 0  # the comparison waited for the bucket the digest had drained
    c = outcome.context
    assert c["compare_text"]["revenue"] == "어제 같은 시간 대비 +50%, 지난주 비교 불가"


# -- against the Shopify stand-in ------------------------------------------------------------------
@pytest.mark.parametrize(("zone", "since", "until"), [
    # New York springs forward on 2026-03-08 and falls back on 2026-11-01; the digest of the days
    # after compares with a day whose same local hours are 23 and 25 real hours long.
    ("America/New_York", datetime(2026, 3, 9, 0, 0), datetime(2026, 3, 9, 12, 0)),
    ("America/New_York", datetime(2026, 11, 2, 0, 0), datetime(2026, 11, 2, 23, 0)),
    ("Asia/Seoul", datetime(2026, 11, 22, 8, 0), datetime(2026, 11, 22, 20, 0)),
])
def test_figures_equal_a_hand_computation_over_the_stand_ins_orders(monkeypatch, zone, since, until):
    tz = ZoneInfo(zone)
    since, until = since.replace(tzinfo=tz), until.replace(tzinfo=tz)
    monkeypatch.setattr(orders_query, "ORDERS_VISIBLE_DAYS", 100_000)  # fixed dates, however long ago
    sandbox = ShopifySandbox()
    currency = "KRW" if zone == "Asia/Seoul" else "USD"
    sandbox.add_shop(SHOP, currency=currency, timezone=zone)
    # Every 37 minutes for 9 days before `until` (a new day's statuses every few orders), and one
    # order a minute either side of each window's local edges.
    first = until.astimezone(timezone.utc) - timedelta(days=9)
    stored = sandbox.add_orders(SHOP, int(timedelta(days=9) / timedelta(minutes=37)), start=first,
                       every=timedelta(minutes=37), cancelled_every=7, refunded_every=5, fulfilled_every=3)
    for days in (0, 1, 7):
        for edge in (shifted(since, days), shifted(until, days)):
            for delta in (timedelta(minutes=-1), timedelta(0)):
                stored.append(sandbox.add_order(SHOP, createdAt=edge + delta, total="10.0"))
    with serve(sandbox.wsgi_app()) as server:
        client = ShopifyGraphQL(ShopifyHttp(new_session(), retry=NO_RETRY), origin=f"{server.url}/{{shop}}",
                                shop=SHOP, api_version="2025-10", tokens=_SandboxToken(sandbox.legacy_token(SHOP)),
                                sleep=lambda _s: None)
        outcome = shopify_orders.collect(_job(), JobContext(
            state=DictState(), http=requests.Session(), now=until, since=since, until=until,
            shopify=lambda shop: client))

    def hand(days: int) -> tuple[int, Decimal, Decimal | None]:
        # The same local wall-clock hours `days` earlier, counted by hand from the stand-in's orders.
        lo = datetime.combine(since.date() - timedelta(days=days), since.time(), tz)
        hi = datetime.combine(until.date() - timedelta(days=days), until.time(), tz)
        inside = [o for o in stored if lo <= _at(o["createdAt"]) < hi]
        paid = [o for o in inside if not o["cancelledAt"] and o["displayFinancialStatus"] not in
                ("REFUNDED", "PARTIALLY_REFUNDED")]
        revenue = sum((Decimal(o["totalPriceSet"]["shopMoney"]["amount"]) for o in paid), Decimal(0))
        aov = (revenue / len(paid)).quantize(Decimal("0.01")) if paid else None
        return len(inside), revenue, aov

    c = outcome.context
    count, revenue, aov = hand(0)
    assert (c["count"], c["revenue"][0]["amount"], c["aov"]) == (count, revenue, aov)
    for entry, days in zip(c["compare"], (1, 7)):
        assert (entry["count"], entry["revenue"], entry["aov"]) == hand(days)
        assert entry["changes"]["revenue"] == percent_change(revenue, hand(days)[1])
        assert entry["changes"]["count"] == percent_change(count, hand(days)[0])
    assert count > 10 and all(entry["count"] > 10 for entry in c["compare"])
    assert len(sandbox.graphql_requests) >= 3


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class _SandboxToken(Tokens):
    def __init__(self, token: str):
        self.token = token

    def access_token(self) -> str:
        return self.token
