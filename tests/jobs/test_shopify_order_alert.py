"""The `shopify-order-alert` job kind: params, config, the alert text from both order shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from bot.app import load_config
from bot.config.model import ConfigError, JobConfig
from bot.kakao.recipients import Recipient
from bot.shopify.orders import order_gid
from jobs import job_kind, known_kinds
from jobs import shopify_order_alert as alert
from jobs.base import JobContext, JobFailed
from jobs.shopify_order_alert import ShopifyOrderAlertParams

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
SHOP = "my-store.myshopify.com"
DOMAIN = "https://bot.example.com"
SEOUL = ZoneInfo("Asia/Seoul")


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def parse(**raw: Any) -> ShopifyOrderAlertParams:
    return alert.parse_params(raw, ConfigProblem)


def job(template: str | None = None, **params: Any) -> JobConfig:
    return JobConfig(name="new-orders", kind=alert.KIND, at=(), to=(Recipient("me"),), template=template,
                     params=ShopifyOrderAlertParams(SHOP, **params))


def webhook_body() -> dict[str, Any]:
    return json.loads((FIXTURES / "webhook_orders_create.json").read_text(encoding="utf-8"))


def graphql_node(**overrides: Any) -> dict[str, Any]:
    node = {"id": "gid://shopify/Order/6100000000101", "name": "#1001", "createdAt": "2026-11-21T15:00:00Z",
            "cancelledAt": None, "displayFinancialStatus": "PAID", "displayFulfillmentStatus": "UNFULFILLED",
            "totalPriceSet": {"shopMoney": {"amount": "33000.0", "currencyCode": "KRW"}},
            "lineItems": {"nodes": [{"name": "드립백 10개입", "sku": "DRIP-10", "quantity": 2},
                                    {"name": "콜드브루 500ml", "sku": "COLD-500", "quantity": 1}]}}
    node.update(overrides)
    return node


def text(order: dict[str, Any], *, audience: str = "me", web_domain: str = DOMAIN, **kwargs: Any) -> str:
    the_job = kwargs.pop("the_job", None) or job()
    outcome = alert.alert_outcome(the_job, order, timezone=SEOUL, **kwargs)
    return alert.render(the_job, outcome, audience=audience, web_domain=web_domain, default_link=web_domain)["text"]


# -- params and config -------------------------------------------------------------------------


def test_params_defaults_and_normalisation() -> None:
    assert parse(shop=" My-Store.myshopify.com ") == ShopifyOrderAlertParams(SHOP, True, 3)
    assert parse(shop=SHOP, on_update=False, top_items=10) == ShopifyOrderAlertParams(SHOP, False, 10)


@pytest.mark.parametrize("raw, key, reason", [
    ({}, "shop", "required"),
    ({"shop": "my-store.com"}, "shop", "is not a shop domain"),
    ({"shop": SHOP, "on_update": "yes"}, "on_update", "true or false"),
    ({"shop": SHOP, "top_items": 0}, "top_items", "between 1 and 10"),
    ({"shop": SHOP, "top_items": 11}, "top_items", "between 1 and 10"),
    ({"shop": SHOP, "top_items": True}, "top_items", "must be an integer"),
])
def test_bad_params_are_refused_by_key(raw: dict, key: str, reason: str) -> None:
    with pytest.raises(ConfigProblem) as caught:
        parse(**raw)
    assert caught.value.key == key and reason in caught.value.reason


def test_the_kind_is_registered_and_not_scheduled(write_config) -> None:  # noqa: ANN001
    assert alert.KIND in known_kinds() and job_kind(alert.KIND) is alert and alert.SCHEDULED is False
    config = load_config(write_config(f"""
        [[jobs]]
        name = "new-orders"
        kind = "shopify-order-alert"
        shop = "{SHOP}"
        top_items = 5
        to = ["me", "friend:홍길동"]
        """))
    (loaded,) = config.jobs
    assert loaded.at == () and loaded.params == ShopifyOrderAlertParams(SHOP, True, 5)
    assert config.warnings == ()  # unscheduled: nothing planned against the quotas
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(f"""
            [[jobs]]
            name = "new-orders"
            kind = "shopify-order-alert"
            shop = "{SHOP}"
            at = ["noon"]
            to = ["me"]
            """))
    assert caught.value.key == "jobs[new-orders].at" and "not scheduled" in caught.value.reason


def test_collect_refuses_an_alert_job(write_config) -> None:  # noqa: ANN001
    config = load_config(write_config(f"""
        [[jobs]]
        name = "new-orders"
        kind = "shopify-order-alert"
        shop = "{SHOP}"
        to = ["me"]
        """))
    ctx = JobContext(state=None, http=requests.Session(), now=None)  # type: ignore[arg-type]
    with pytest.raises(JobFailed, match="not scheduled"):
        alert.collect(config.jobs[0], ctx)


# -- the alert ---------------------------------------------------------------------------------


def test_a_new_order_from_its_webhook_body() -> None:
    assert text(webhook_body()) == "🛒 새 주문 #1001\n₩33,000 · 3개\n• 드립백 10개입 ×2\n• 콜드브루 500ml ×1"


def test_the_same_order_from_graphql_reads_the_same() -> None:
    assert text(graphql_node()) == text(webhook_body())
    context = alert.alert_outcome(job(), graphql_node(), timezone=SEOUL).context
    assert context["order_id"] == "gid://shopify/Order/6100000000101"
    assert context["created_at"] == "11/22 00:00"
    assert context["admin_url"] == "https://admin.shopify.com/store/my-store/orders/6100000000101"


def test_no_customer_data_reaches_anyone() -> None:
    body = webhook_body()
    body["shipping_address"] = {"name": "이서준", "address1": "테헤란로 1", "phone": "010-1234-5678"}
    body["email"] = "customer1001@example.com"
    custom = job(template="{{ name }} {{ customer }} {{ shipping_address }} {{ email }} {{ items }}")
    for audience in ("me", "friend"):
        for the_job in (job(), custom):
            shown = text(body, audience=audience, the_job=the_job)
            for personal in ("서준", "customer1001", "테헤란로", "1234-5678", "6100000000104"):
                assert personal not in shown


def test_an_update_names_what_changed() -> None:
    shown = text(webhook_body(), event="updated", changes=["shipping_address", "line_items"])
    assert shown.startswith("✏️ 주문 변경 #1001\n변경: 배송지, 상품 구성\n₩33,000 · 3개")


def test_many_items_are_cut_to_top_items_and_counted() -> None:
    items = [{"name": f"상품{i}", "sku": f"S{i}", "quantity": 1} for i in range(6)]
    node = graphql_node(lineItems={"nodes": items})
    assert text(node) == "🛒 새 주문 #1001\n₩33,000 · 6개\n• 상품0 ×1\n• 상품1 ×1\n• 상품2 ×1\n외 3개 상품"
    assert text(node, the_job=job(top_items=1)).endswith("• 상품0 ×1\n외 5개 상품")


def test_money_test_and_cancelled_orders() -> None:
    usd = graphql_node(totalPriceSet={"shopMoney": {"amount": "19.9", "currencyCode": "USD"}})
    assert "$19.90 · 3개" in text(usd)
    body = webhook_body()
    body.update(test=True, cancelled_at="2026-11-22T01:00:00+09:00")
    assert text(body).startswith("🛒 새 주문 #1001 (테스트)\n₩33,000 · 3개 · 취소됨")
    no_total = webhook_body()
    del no_total["total_price_set"], no_total["total_price"]
    assert text(no_total).splitlines()[1] == "3개"


def test_removed_items_are_not_shown() -> None:
    body = webhook_body()
    body["line_items"][0]["current_quantity"] = 0
    assert text(body) == "🛒 새 주문 #1001\n₩33,000 · 1개\n• 콜드브루 500ml ×1"


def test_the_link_is_the_order_in_the_admin_only_on_the_registered_domain() -> None:
    outcome = alert.alert_outcome(job(), webhook_body())
    kept = alert.render(job(), outcome, audience="me", web_domain="https://admin.shopify.com",
                        default_link="https://admin.shopify.com")
    assert kept["link"]["web_url"] == "https://admin.shopify.com/store/my-store/orders/6100000000101"
    default = alert.render(job(), outcome, audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert default["link"]["web_url"] == DOMAIN


@pytest.mark.parametrize("order, gid", [
    ({"admin_graphql_api_id": "gid://shopify/Order/5", "id": 5}, "gid://shopify/Order/5"),
    ({"id": 5}, "gid://shopify/Order/5"),
    ({"id": "5"}, "gid://shopify/Order/5"),
    ({"id": "gid://shopify/Order/5"}, "gid://shopify/Order/5"),
    ({"id": True}, None),
    ({"id": "gid://shopify/Customer/5"}, None),
    ({}, None),
])
def test_order_gid_from_either_shape(order: dict, gid: str | None) -> None:
    assert order_gid(order) == gid
