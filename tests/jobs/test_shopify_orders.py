"""The `shopify-orders` job kind: params, the order window, the totals, errors, and the message."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from bot.app import load_config
from bot.config.model import ConfigError, JobConfig
from bot.delivery.runner import Runner
from bot.shopify.client import ShopifyHttp
from bot.shopify.errors import (
    ShopifyAuthError,
    ShopifyGraphQLError,
    ShopifyReauthRequired,
    ShopifyThrottled,
    ShopifyUnavailable,
    ShopNotConnected,
)
from bot.shopify.graphql import ShopifyGraphQL
from bot.util.retry import NO_RETRY
from jobs import job_kind, shopify_orders
from jobs.base import JobContext, JobFailed, Outcome
from jobs.shopify_orders import ShopifyOrdersParams

SEOUL = ZoneInfo("Asia/Seoul")
SHOP = "my-store.myshopify.com"
ADMIN = "https://admin.shopify.com/store/my-store/orders"
DOMAIN = "https://bot.example.com"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL)
SINCE = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL)


class DictState:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def order(number: int, amount: str = "45000.0", currency: str = "KRW", *, created: str = "2026-11-22T09:15:00+09:00",
          cancelled: str | None = None, financial: str = "PAID", fulfillment: str = "UNFULFILLED",
          items: list[tuple[str, int]] = (), customer: Any = None) -> dict[str, Any]:
    """A GraphQL order node as `fetch_orders` yields it (shape from UPSTREAMS.md)."""
    return {
        "id": f"gid://shopify/Order/{number}",
        "name": f"#{1000 + number}",
        "createdAt": created,
        "cancelledAt": cancelled,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": fulfillment,
        "totalPriceSet": {"shopMoney": {"amount": amount, "currencyCode": currency}},
        "lineItems": {"nodes": [{"name": name, "sku": f"SKU-{i}", "quantity": qty} for i, (name, qty) in enumerate(items)]},
        "customer": customer,
    }


class FakeShopify:
    """`ctx.shopify` and `fetch_orders` stand-ins: records the shop asked for and the query arguments."""

    def __init__(self, orders: list[dict[str, Any]] | None = None, *, error: Exception | None = None,
                 factory_error: Exception | None = None):
        self.orders, self.error, self.factory_error = orders or [], error, factory_error
        self.shops: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.client = object()

    def factory(self, shop: str) -> object:
        self.shops.append(shop)
        if self.factory_error:
            raise self.factory_error
        return self.client

    def fetch_orders(self, gql: Any, **kwargs: Any) -> Iterator[dict]:
        assert gql is self.client
        self.calls.append(kwargs)

        def pages() -> Iterator[dict]:  # lazy, like the real pager: errors arrive while iterating
            yield from self.orders
            if self.error:
                raise self.error

        return pages()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeShopify:
    stub = FakeShopify()
    monkeypatch.setattr(shopify_orders, "fetch_orders", stub.fetch_orders)
    return stub


def _parse(**raw: Any) -> ShopifyOrdersParams:
    return shopify_orders.parse_params(raw, ConfigProblem)


def _job(template: str | None = None, **params: Any) -> JobConfig:
    params.setdefault("compare", ())  # comparisons: tests/jobs/test_digest_compare.py
    return JobConfig(name="orders", kind="shopify-orders", at=("noon",), to=(), template=template,
                     params=ShopifyOrdersParams(SHOP, **params))


def _ctx(fake: FakeShopify | None, *, now: datetime = NOW, since: datetime | None = SINCE,
         until: datetime | None = None) -> JobContext:
    return JobContext(state=DictState(), http=requests.Session(), now=now, since=since, until=until,
                      shopify=fake.factory if fake else None)


def _text(job: JobConfig, outcome: Outcome, audience: str = "me", web_domain: str = DOMAIN) -> str:
    return shopify_orders.render(job, outcome, audience=audience, web_domain=web_domain, default_link=web_domain)["text"]


# -- params -------------------------------------------------------------------------------------
def test_registered_kind():
    assert job_kind("shopify-orders") is shopify_orders
    assert shopify_orders.SCHEDULED is True
    assert shopify_orders.PARAM_KEYS == {"shop", "top_products", "include_customers", "line_items", "compare",
                                         "chart"}


def test_parse_params_defaults_and_values():
    assert _parse(shop=SHOP) == ShopifyOrdersParams(SHOP, 3, False, 10)
    assert _parse(shop="My-Store.myshopify.com", top_products=10, include_customers=True, line_items=50) == \
        ShopifyOrdersParams(SHOP, 10, True, 50)
    assert _parse(shop=SHOP, top_products=1, line_items=1) == ShopifyOrdersParams(SHOP, 1, False, 1)


@pytest.mark.parametrize(("raw", "key", "reason"), [
    ({}, "shop", "required"),
    ({"shop": ""}, "shop", "required"),
    ({"shop": 5}, "shop", "required"),
    ({"shop": "evil.com"}, "shop", "not a shop domain"),
    ({"shop": "x.myshopify.com.evil.com"}, "shop", "not a shop domain"),
    ({"shop": "https://x.myshopify.com"}, "shop", "not a shop domain"),
    ({"shop": "x.myshopify.com/admin"}, "shop", "not a shop domain"),
    ({"shop": "-x.myshopify.com"}, "shop", "not a shop domain"),
    ({"shop": "x.myshopify.com:443"}, "shop", "not a shop domain"),
    ({"shop": SHOP, "top_products": 0}, "top_products", "between 1 and 10"),
    ({"shop": SHOP, "top_products": 11}, "top_products", "between 1 and 10"),
    ({"shop": SHOP, "top_products": "3"}, "top_products", "must be an integer"),
    ({"shop": SHOP, "top_products": True}, "top_products", "must be an integer"),
    ({"shop": SHOP, "top_products": 2.5}, "top_products", "must be an integer"),
    ({"shop": SHOP, "line_items": 0}, "line_items", "between 1 and 50"),
    ({"shop": SHOP, "line_items": 51}, "line_items", "between 1 and 50"),
    ({"shop": SHOP, "line_items": "10"}, "line_items", "must be an integer"),
    ({"shop": SHOP, "include_customers": "yes"}, "include_customers", "true or false"),
    ({"shop": SHOP, "include_customers": 1}, "include_customers", "true or false"),
])
def test_bad_params(raw, key, reason):
    with pytest.raises(ConfigProblem) as info:
        shopify_orders.parse_params(raw, ConfigProblem)
    assert info.value.key == key
    assert reason in info.value.reason


def test_config_file_names_the_job_and_key(write_config):
    path = write_config("""
        [[jobs]]
        name = "orders"
        kind = "shopify-orders"
        shop = "x.myshopify.com.evil.com"
        at = ["noon"]
        to = ["me"]
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "jobs[orders].shop"
    assert "x.myshopify.com.evil.com" in info.value.reason


def test_config_file_job_loads(write_config):
    config = load_config(write_config("""
        [[jobs]]
        name = "orders"
        kind = "shopify-orders"
        shop = "my-store.myshopify.com"
        top_products = 5
        include_customers = true
        at = ["morning", "evening"]
        to = ["me"]
        """))
    assert config.jobs[0].params == ShopifyOrdersParams(SHOP, 5, True, 10)


# -- the window ---------------------------------------------------------------------------------
def test_later_runs_fetch_from_since_to_now(fake):
    outcome = shopify_orders.collect(_job(line_items=7), _ctx(fake))
    assert fake.shops == [SHOP]
    assert fake.calls == [{"created_from": SINCE, "created_to": NOW, "line_items": 7, "with_customer": False}]
    assert outcome.context["period"] == "08:00–12:00"
    assert outcome.context["period_start"] == "2026-11-22T08:00:00+09:00"
    assert outcome.context["period_end"] == "2026-11-22T12:00:00+09:00"


def test_a_slot_sent_late_ends_at_its_scheduled_instant(fake):
    late = NOW + timedelta(minutes=20)
    outcome = shopify_orders.collect(_job(), _ctx(fake, now=late, until=NOW))
    assert fake.calls[0]["created_from"] == SINCE and fake.calls[0]["created_to"] == NOW
    assert outcome.context["period"] == "08:00–12:00"


def test_a_slot_sent_ahead_of_its_time_ends_now(fake):
    early = NOW - timedelta(hours=1)
    shopify_orders.collect(_job(), _ctx(fake, now=early, until=NOW))
    assert fake.calls[0]["created_to"] == early


def test_first_run_starts_at_local_midnight(fake):
    # 00:30 in Seoul is still the previous day in UTC: the window must start at Seoul's midnight.
    now = datetime(2026, 11, 22, 0, 30, tzinfo=SEOUL)
    outcome = shopify_orders.collect(_job(), _ctx(fake, now=now, since=None))
    start = fake.calls[0]["created_from"]
    assert start == datetime(2026, 11, 22, 0, 0, tzinfo=SEOUL)
    assert start.utcoffset() == timedelta(hours=9)
    assert fake.calls[0]["created_to"] == now
    assert outcome.context["period"] == "00:00–00:30"


def test_since_in_another_zone_is_shown_in_the_local_zone_across_days(fake):
    since = datetime(2026, 11, 21, 9, 0, tzinfo=ZoneInfo("UTC"))  # 18:00 in Seoul
    now = datetime(2026, 11, 22, 8, 0, tzinfo=SEOUL)
    outcome = shopify_orders.collect(_job(), _ctx(fake, now=now, since=since))
    assert fake.calls[0]["created_from"] == since
    assert outcome.context["period"] == "11/21 18:00–11/22 08:00"


def test_orders_outside_the_window_are_left_out(fake):
    fake.orders = [
        order(1, created="2026-11-22T07:59:59+09:00"),  # before since
        order(2, created="2026-11-22T08:00:00+09:00"),  # the start is in
        order(3, created="2026-11-22T02:59:59Z"),  # 11:59:59 in Seoul
        order(4, created="2026-11-22T12:00:00+09:00"),  # the end is out
    ]
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    assert outcome.context["count"] == 2


def test_since_not_before_now_asks_nothing(fake):
    outcome = shopify_orders.collect(_job(), _ctx(fake, since=NOW))
    assert fake.calls == [] and outcome.empty


# -- the totals ---------------------------------------------------------------------------------
def test_a_day_of_orders(fake):
    fake.orders = [
        order(1, "45000.0", items=[("상품A", 2), ("상품B", 1)]),
        order(2, "30000.0", fulfillment="FULFILLED", items=[("상품A", 3)]),
        order(3, "12000.0", fulfillment="PARTIALLY_FULFILLED", items=[("상품C", 1)]),
        order(4, "99000.0", cancelled="2026-11-22T10:00:00+09:00", financial="REFUNDED", items=[("상품C", 9)]),
        order(5, "20000.0", financial="PARTIALLY_REFUNDED", fulfillment="FULFILLED", items=[("상품B", 2)]),
        order(6, "8000.0", financial="REFUNDED", fulfillment="UNFULFILLED"),  # refunded, nothing to ship
        order(7, "5000.0", financial="PENDING", fulfillment="ON_HOLD"),
    ]
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    c = outcome.context
    assert not outcome.empty
    assert c["count"] == 7
    assert c["cancelled"] == 1  # order 4: cancelled (and refunded) counts once, as cancelled
    assert c["refunded"] == 2  # orders 5 and 6
    assert c["revenue"] == [{"currency": "KRW", "amount": Decimal("92000")}]  # 1+2+3+7; not 4, 5, 6
    assert c["refunded_amounts"] == [{"currency": "KRW", "amount": Decimal("28000")}]
    assert c["unfulfilled"] == 3  # 1, 3, 7; not the cancelled 4 or the fully refunded 6
    # Quantities over the orders not cancelled; order 4's nine 상품C are not sales.
    assert c["top_products"] == [{"name": "상품A", "quantity": 5}, {"name": "상품B", "quantity": 3},
                                 {"name": "상품C", "quantity": 1}]
    assert c["currency"] == "KRW"
    assert c["customers"] == []
    assert outcome.link == ADMIN and c["admin_url"] == ADMIN


def test_money_is_summed_as_decimal(fake):
    fake.orders = [order(i, "0.1", "USD") for i in range(3)]
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    (revenue,) = outcome.context["revenue"]
    assert revenue == {"currency": "USD", "amount": Decimal("0.3")}
    assert isinstance(revenue["amount"], Decimal) and str(revenue["amount"]) == "0.3"
    assert "매출 $0.30" in _text(_job(), outcome)


def test_several_currencies_are_summed_apart(fake):
    fake.orders = [order(1, "10000.0", "KRW"), order(2, "2.5", "USD"), order(3, "20000", "KRW"),
                   order(4, "1.25", "usd"), order(5, "7", "EUR", cancelled="2026-11-22T09:00:00+09:00")]
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    # The most used currency first; a currency seen only on a cancelled order shows 0.
    assert outcome.context["revenue"] == [
        {"currency": "KRW", "amount": Decimal("30000.0")},
        {"currency": "USD", "amount": Decimal("3.75")},
        {"currency": "EUR", "amount": Decimal("0")},
    ]
    text = _text(_job(), outcome)
    assert "매출 ₩30,000 + $3.75 외" in text


def test_all_cancelled_reads_zero_in_the_shop_currency(fake):
    fake.orders = [order(1, cancelled="2026-11-22T09:00:00+09:00")]
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    assert outcome.context["revenue"] == [{"currency": "KRW", "amount": Decimal(0)}]
    assert "주문 1건 · 매출 ₩0\n취소 1 · 환불 0 · 미출고 0" in _text(_job(), outcome)


def test_top_products_are_limited_and_ties_are_stable(fake):
    fake.orders = [order(1, items=[("B", 2), ("A", 2), ("C", 5), ("D", 1)]),
                   order(2, items=[("  A  ", 1), ("", 4)])]
    fake.orders[1]["lineItems"]["nodes"][1]["sku"] = None  # no name, no sku
    c = shopify_orders.collect(_job(top_products=3), _ctx(fake)).context
    assert c["top_products"] == [{"name": "C", "quantity": 5}, {"name": "(이름 없음)", "quantity": 4},
                                 {"name": "A", "quantity": 3}]


def test_odd_nodes_do_not_crash(fake):
    fake.orders = [
        {"id": "gid://shopify/Order/9", "name": "#9"},  # everything missing
        order(2, "not a number"),
        order(3, items=[("X", None)]),  # type: ignore[list-item]
        {**order(4), "lineItems": None, "totalPriceSet": None},
    ]
    outcome = shopify_orders.collect(_job(include_customers=True), _ctx(fake))
    assert outcome.context["count"] == 4
    assert outcome.context["revenue"] == [{"currency": "KRW", "amount": Decimal("45000.0")}]
    assert outcome.context["top_products"] == []


def test_null_customers_never_crash(fake):
    fake.orders = [order(1, customer=None), order(2, customer={"displayName": None}),
                   order(3, customer={"displayName": "  홍 길동 "}), order(4, customer={}),
                   order(5, customer={"displayName": "홍 길동"}), order(6, customer={"displayName": "김철수"})]
    del fake.orders[0]["customer"]
    outcome = shopify_orders.collect(_job(include_customers=True), _ctx(fake))
    assert fake.calls[0]["with_customer"] is True
    assert outcome.context["customers"] == ["홍 길동", "김철수"]


def test_customers_are_not_collected_unless_opted_in(fake):
    fake.orders = [order(1, customer={"displayName": "홍길동"})]
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    assert fake.calls[0]["with_customer"] is False
    assert outcome.context["customers"] == []
    assert "홍길동" not in _text(_job(), outcome, "me")


def test_no_orders_is_empty(fake):
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    assert outcome.empty and outcome.context["count"] == 0
    assert outcome.context["revenue"] == [] and outcome.context["top_products"] == []
    assert _text(_job(), outcome) == "🛍 주문 요약 (08:00–12:00)\n새 주문이 없습니다."


# -- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "expected"), [
    (ShopNotConnected(f"{SHOP} is not connected: run `python -m bot shopify install {SHOP}`", shop=SHOP),
     f"orders: {SHOP} is not connected: run `python -m bot shopify install {SHOP}`"),
    (ShopifyAuthError("HTTP 401", status=401, shop=SHOP),
     f"orders: Shopify token for {SHOP} refused (HTTP 401): reconnect the shop with "
     f"`python -m bot shopify install {SHOP}` (or `python -m bot shopify connect {SHOP}` for your own app)"),
    (ShopifyReauthRequired("refresh token expired", error="invalid_grant", shop=SHOP),
     f"orders: Shopify token for {SHOP} refused: reconnect the shop with `python -m bot shopify install {SHOP}`"),
    (ShopifyUnavailable(f"{SHOP} answered HTTP 503", status=503),
     f"orders: Shopify unavailable for {SHOP}: {SHOP} answered HTTP 503"),
    (ShopifyThrottled("still THROTTLED"), f"orders: Shopify unavailable for {SHOP}: still THROTTLED"),
    (ShopifyGraphQLError("GraphQL query failed: Field 'x' doesn't exist"),
     f"orders: Shopify unavailable for {SHOP}: GraphQL query failed: Field 'x' doesn't exist"),
])
@pytest.mark.parametrize("where", ["factory", "while paging"])
def test_shopify_errors_become_readable_job_failures(fake, error, expected, where):
    fake.orders = [order(1)]
    if where == "factory":
        fake.factory_error = error
    else:
        fake.error = error
    with pytest.raises(JobFailed) as info:
        shopify_orders.collect(_job(), _ctx(fake))
    assert str(info.value).startswith(expected)


def test_no_shopify_access_in_the_context_fails_the_job():
    with pytest.raises(JobFailed, match="no Shopify access"):
        shopify_orders.collect(_job(), _ctx(None))


# -- the message --------------------------------------------------------------------------------
def test_the_default_message(fake):
    fake.orders = ([order(i, "100000.0", items=[("상품A", 1)]) for i in range(5)]
                   + [order(10 + i, "200000.0", fulfillment="FULFILLED", items=[("상품B", 1)]) for i in range(3)]
                   + [order(20, "34000.0", fulfillment="FULFILLED", cancelled="2026-11-22T11:00:00+09:00"),
                      order(21, "45000.0", financial="REFUNDED", fulfillment="FULFILLED")])
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    assert _text(_job(), outcome) == (
        "🛍 주문 요약 (08:00–12:00)\n"
        "주문 10건 · 매출 ₩1,100,000\n"
        "취소 1 · 환불 1 (₩45,000) · 미출고 5\n"
        "인기: 상품A ×5, 상품B ×3"
    )


def test_krw_has_no_decimals(fake):
    fake.orders = [order(1, "1234000.0"), order(2, "0.5")]
    text = _text(_job(), shopify_orders.collect(_job(), _ctx(fake)))
    assert "₩1,234,001" in text and "₩1,234,000.5" not in text and ".00" not in text


def test_a_busy_day_fits_kakao_text(fake):
    long_name = "아주 긴 상품 이름이 계속 이어지는 한정판 겨울 니트 가디건 - 라이트 그레이 / XL"
    fake.orders = [order(i, f"{123456789 + i}.0", ["KRW", "USD", "JPY", "EUR"][i % 4],
                         cancelled="2026-11-22T09:00:00+09:00" if i % 7 == 0 else None,
                         financial="PARTIALLY_REFUNDED" if i % 5 == 0 else "PAID",
                         items=[(f"{long_name} {j}", i % 13 + j) for j in range(10)],
                         customer={"displayName": f"고객 이름이 아주 긴 사람 {i}"}) for i in range(9999)]
    job = _job(top_products=10, include_customers=True, line_items=50)
    outcome = shopify_orders.collect(job, _ctx(fake, since=datetime(2026, 11, 21, 18, tzinfo=SEOUL)))
    for audience in ("me", "friend"):
        message = shopify_orders.render(job, outcome, audience=audience, web_domain=DOMAIN, default_link=DOMAIN)
        assert message["object_type"] == "text"
        assert 0 < len(message["text"]) <= 200
        assert message["text"].startswith("🛍 주문 요약 (11/21 18:00–11/22 12:00)\n주문 9999건 · 매출 ")


def test_a_busy_one_currency_day_keeps_every_line(fake):
    # Long product and customer names are shortened line by line, so nothing is cut off the end.
    fake.orders = [order(i, "130500.0", cancelled="2026-11-22T09:00:00+09:00" if i < 12 else None,
                         financial="PARTIALLY_REFUNDED" if 12 <= i < 20 else "PAID",
                         items=[(f"겨울 한정판 캐시미어 니트 가디건 - 라이트 그레이 / XL {j}", 1 + j) for j in range(10)],
                         customer={"displayName": f"아주 긴 이름을 가진 단골 고객님 {i}"}) for i in range(350)]
    job = _job(top_products=10, include_customers=True, line_items=50)
    outcome = shopify_orders.collect(job, _ctx(fake, since=datetime(2026, 11, 21, 18, tzinfo=SEOUL)))
    text = _text(job, outcome, "me")
    assert len(text) <= 200 and not text.endswith("…")
    lines = text.split("\n")
    assert lines[:3] == ["🛍 주문 요약 (11/21 18:00–11/22 12:00)", "주문 350건 · 매출 ₩43,065,000",
                         "취소 12 · 환불 8 (₩1,044,000) · 미출고 338"]  # partly refunded still ships
    assert lines[3].startswith("인기: 겨울 한정판 캐시미어 니트 가디건… ×3380")
    assert lines[4].startswith("고객: 아주 긴 이름을 가진 단골 고객님 12") and lines[4].endswith(" 외 335명")
    friend = _text(job, outcome, "friend")
    assert friend == "\n".join(lines[:4]) and "고객" not in friend


def test_customer_names_reach_me_only_when_opted_in(fake):
    fake.orders = [order(1, customer={"displayName": "홍길동"}), order(2, customer={"displayName": "김철수"})]
    job = _job(include_customers=True)
    outcome = shopify_orders.collect(job, _ctx(fake))
    assert "고객: 홍길동, 김철수" in _text(job, outcome, "me")
    assert "홍길동" not in _text(job, outcome, "friend")
    # Not even a custom template can show them to a friend.
    leaky = _job(template="{{ customers|join(',') }}|{{ customers }}", include_customers=True)
    assert "홍길동" not in _text(leaky, outcome, "friend")
    assert "홍길동" in _text(leaky, outcome, "me")
    # An outcome that somehow carries names is scrubbed for "me" too when the job did not opt in.
    assert "홍길동" not in _text(_job(), outcome, "me")


def test_the_button_goes_to_the_admin_only_on_a_registered_domain(fake, caplog):
    outcome = shopify_orders.collect(_job(), _ctx(fake))
    message = shopify_orders.render(_job(), outcome, audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert message["link"] == {"web_url": DOMAIN, "mobile_web_url": DOMAIN}
    assert message["button_title"] == "자세히 보기"
    assert "not on the Kakao web domain" not in caplog.text  # fell back without a warning per message
    admin = shopify_orders.render(_job(), outcome, audience="me", web_domain="https://admin.shopify.com",
                                  default_link="https://admin.shopify.com")
    assert admin["link"]["web_url"] == ADMIN
    # The admin address is there for a custom template to print.
    assert _text(_job(template="{{ admin_url }}"), outcome) == ADMIN


# -- against the GraphQL endpoint (the real client, HTTP mocked) ----------------------------------
GRAPHQL = f"https://{SHOP}/admin/api/2025-10/graphql.json"
COST = {"requestedQueryCost": 152, "actualQueryCost": 20,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1980, "restoreRate": 100.0}}


class Tokens:
    def __init__(self) -> None:
        self.rejections: list[str] = []

    def access_token(self) -> str:
        return "shpat_test"

    def renew_refused(self) -> bool:
        return False  # a fixed token: nothing to renew with

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)


def _real_client(tokens: Tokens) -> ShopifyGraphQL:
    return ShopifyGraphQL(ShopifyHttp(requests.Session(), retry=NO_RETRY), origin="https://{shop}", shop=SHOP,
                          api_version="2025-10", tokens=tokens, sleep=lambda _s: None)


def _page(nodes: list[dict], cursor: str | None, **extra: Any) -> dict:
    return {"data": {"orders": {"nodes": nodes, "pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}}},
            "extensions": {"cost": COST}, **extra}


@responses.activate
def test_collect_through_the_graphql_endpoint_pages_and_survives_protected_customer_data():
    now = datetime.now(SEOUL).replace(microsecond=0)
    since = now - timedelta(hours=4)
    created = (now - timedelta(hours=1)).isoformat()
    # Protected customer data: names come back null, with an error beside the data.
    protected = {"errors": [{"message": "This app is not approved to access the Customer object.",
                             "path": ["orders", "nodes", 0, "customer"]}]}
    responses.post(GRAPHQL, json=_page([order(1, "45000.0", created=created, items=[("상품A", 2)], customer=None)],
                                       "c1", **protected))
    responses.post(GRAPHQL, json=_page([order(2, "30000.0", created=created, financial="REFUNDED",
                                              items=[("상품B", 1)], customer={"displayName": None})], None))
    tokens = Tokens()
    job = _job(include_customers=True, line_items=5)
    outcome = shopify_orders.collect(job, JobContext(state=DictState(), http=requests.Session(), now=now, since=since,
                                                     shopify=lambda shop: _real_client(tokens)))
    assert len(responses.calls) == 2
    body = json.loads(responses.calls[0].request.body)
    assert body["variables"]["query"] == f"created_at:>='{since.isoformat()}' AND created_at:<'{now.isoformat()}'"
    assert body["variables"]["lineItems"] == 5
    assert "customer { displayName }" in body["query"]
    assert responses.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_test"
    assert json.loads(responses.calls[1].request.body)["variables"]["after"] == "c1"
    c = outcome.context
    assert (c["count"], c["refunded"], c["customers"]) == (2, 1, [])
    assert c["revenue"] == [{"currency": "KRW", "amount": Decimal("45000.0")}]
    assert c["top_products"] == [{"name": "상품A", "quantity": 2}, {"name": "상품B", "quantity": 1}]
    assert "고객" not in _text(job, outcome, "me")


@responses.activate
def test_collect_through_the_graphql_endpoint_counts_the_window():
    now = datetime.now(SEOUL).replace(microsecond=0)
    since = now - timedelta(hours=4)
    created = (now - timedelta(hours=1)).isoformat()
    responses.post(GRAPHQL, json=_page([order(1, "45000.0", created=created, items=[("상품A", 2)]),
                                        order(2, "30000.0", created=created, financial="REFUNDED")], None))
    outcome = shopify_orders.collect(_job(), JobContext(state=DictState(), http=requests.Session(), now=now,
                                                        since=since, shopify=lambda shop: _real_client(Tokens())))
    body = json.loads(responses.calls[0].request.body)
    assert "customer" not in body["query"]
    c = outcome.context
    assert (c["count"], c["refunded"]) == (2, 1)
    assert c["revenue"] == [{"currency": "KRW", "amount": Decimal("45000.0")}]
    assert c["refunded_amounts"] == [{"currency": "KRW", "amount": Decimal("30000.0")}]
    assert c["top_products"] == [{"name": "상품A", "quantity": 2}]


@responses.activate
def test_a_refused_token_through_the_graphql_endpoint():
    responses.post(GRAPHQL, status=401, json={"errors": "[API] Invalid API key or access token"})
    tokens = Tokens()
    with pytest.raises(JobFailed) as info:
        shopify_orders.collect(_job(), JobContext(
            state=DictState(), http=requests.Session(), now=datetime.now(SEOUL), since=None,
            shopify=lambda shop: _real_client(tokens)))
    assert "Shopify token for my-store.myshopify.com refused (HTTP 401): reconnect" in str(info.value)
    assert "shpat_test" not in str(info.value)
    assert len(tokens.rejections) == 1


@responses.activate
def test_shopify_down_through_the_graphql_endpoint():
    responses.post(GRAPHQL, status=503, body="upstream connect error")
    with pytest.raises(JobFailed, match=f"orders: Shopify unavailable for {SHOP}: .*HTTP 503"):
        shopify_orders.collect(_job(), JobContext(state=DictState(), http=requests.Session(), now=datetime.now(SEOUL),
                                                  shopify=lambda shop: _real_client(Tokens())))


# -- the runner hands the job its Shopify access ------------------------------------------------
def test_the_runner_gives_collect_the_apps_shopify_client(make_app, fake, monkeypatch):
    app = make_app("""
        [[jobs]]
        name = "orders"
        kind = "shopify-orders"
        shop = "my-store.myshopify.com"
        at = ["noon"]
        to = ["me"]
        """)
    asked: list[str] = []

    def shopify_graphql(shop: str, **options: object) -> object:  # options: the runner's progress (item 21)
        asked.append(shop)
        return fake.client

    monkeypatch.setattr(app, "shopify_graphql", shopify_graphql)
    fake.orders = [order(1, "45000.0", created=(app.clock() - timedelta(minutes=30)).isoformat(), items=[("상품A", 1)])]
    since, until = app.clock() - timedelta(hours=1), app.clock() - timedelta(minutes=10)
    report = Runner(app).run(app.config.jobs[0], "manual", dry_run=True, since=since, until=until)
    assert report.status == "dry-run", report.error
    assert asked == [SHOP]  # one client for the digest and both comparison windows (one cost bucket)
    assert (fake.calls[0]["created_from"], fake.calls[0]["created_to"]) == (since, until)
    assert [(c["created_from"], c["created_to"]) for c in fake.calls[1:]] == [
        (since - timedelta(days=1), until - timedelta(days=1)), (since - timedelta(days=7), until - timedelta(days=7))]
    (label, message), = report.previews
    assert label == "me"
    assert "매출 ₩45,000 (어제 없음, 지난주 없음)\n주문 1건 (어제 없음, 지난주 없음)" in message["text"]
