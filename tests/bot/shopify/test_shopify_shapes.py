"""Issue 8 item 7: a Shopify answer that is not what the schema says fails the job with a clear error
and sends nothing — never a digest of "no orders" or a blank revenue. Recorded malformed answers
are in tests/fixtures/shopify/graphql_orders_bad_*.json."""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
import responses
from click.testing import CliRunner

from bot.app import App
from bot.cli.main import cli
from bot.config.model import JobConfig
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.client import ShopifyHttp
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.orders_query import fetch_orders
from bot.shopify.shapes import ShopifyBadAnswer
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from jobs import shopify_orders
from jobs.base import JobContext, JobFailed

from upstream_fixtures import load_fixture
from webhook_helpers import API_KEY, API_SECRET, CLIENT_SECRET, REST_KEY, SHOP

VERSION = "2025-10"
URL = f"https://{SHOP}/admin/api/{VERSION}/graphql.json"
KST = timezone(timedelta(hours=9))
DIGEST_JOB = f"""
[[jobs]]
name = "orders"
kind = "shopify-orders"
shop = "{SHOP}"
at = ["noon"]
to = ["me"]
"""


class Tokens:
    def access_token(self) -> str:
        return "shpat_test"

    def renew_refused(self) -> bool:
        raise AssertionError("a malformed answer is not a refused token")

    def rejected(self, reason: str) -> None:
        raise AssertionError("a malformed answer is not a refused token")


def client() -> ShopifyGraphQL:
    http = ShopifyHttp(new_session(), timeout=5, retry=RetryPolicy(attempts=1, base_delay=0, sleep=lambda _s: None))
    return ShopifyGraphQL(http, origin="https://{shop}", shop=SHOP, api_version=VERSION, tokens=Tokens(),
                          sleep=lambda _s: None)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def good_page() -> dict[str, Any]:
    page = load_fixture("shopify/graphql_orders_page.json")
    page["data"]["orders"]["pageInfo"] = {"hasNextPage": False, "endCursor": None}
    return page


def mutated(change: Callable[[dict], None]) -> dict[str, Any]:
    page = copy.deepcopy(good_page())
    change(page["data"]["orders"])
    return page


def _set(path: list[Any], value: Any) -> Callable[[dict], None]:
    def change(orders: dict) -> None:
        target = orders
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


RECORDED = [
    ("graphql_orders_bad_nodes_not_a_list.json", "data.orders.nodes is a string, not a list"),
    ("graphql_orders_bad_junk_node.json", "data.orders.nodes[0].createdAt is missing"),
    ("graphql_orders_bad_missing_amount.json", "data.orders.nodes[1].totalPriceSet.shopMoney.amount is missing"),
    ("graphql_orders_bad_null_connection.json", "data.orders is null, not an object"),
]

MUTATIONS = [
    (_set(["nodes", 0], 42), "data.orders.nodes[0] is the number 42, not an object"),
    (_set(["nodes", 0, "totalPriceSet", "shopMoney", "amount"], "abc"), "amount is a string, not an amount"),
    (_set(["nodes", 0, "totalPriceSet", "shopMoney", "amount"], True), "amount is true, not an amount"),
    (_set(["nodes", 0, "totalPriceSet", "shopMoney", "currencyCode"], None), "currencyCode is null"),
    (_set(["nodes", 0, "totalPriceSet"], None), "totalPriceSet is null, not an object"),
    (_set(["nodes", 0, "createdAt"], "yesterday"), "createdAt is a string, not a date-time"),
    (_set(["nodes", 0, "id"], 6100000000101), "id is the number 6100000000101, not an order id"),
    (_set(["nodes", 0, "lineItems", "nodes", 0, "quantity"], "2"), "quantity is a string, not an integer"),
    (_set(["nodes", 0, "lineItems"], {"nodes": None}), "lineItems.nodes is null, not a list"),
    (_set(["nodes", 1, "displayFulfillmentStatus"], KeyError), "nodes[1].displayFulfillmentStatus is missing"),
    (_set(["pageInfo"], {"hasNextPage": True, "endCursor": None}), "endCursor is null while hasNextPage"),
    (_set(["pageInfo"], KeyError), "data.orders.pageInfo is missing"),
]


@pytest.mark.parametrize("name, where", RECORDED)
def test_a_recorded_malformed_answer_raises_naming_where(rsps, name: str, where: str) -> None:
    rsps.post(URL, json=load_fixture(f"shopify/{name}"))
    with pytest.raises(ShopifyBadAnswer) as info:
        list(fetch_orders(client(), created_from=datetime.now(KST) - timedelta(hours=3)))
    message = str(info.value)
    assert where in message and message.startswith(f"{SHOP}: ") and "api_version" in message


@pytest.mark.parametrize("change, where", MUTATIONS)
def test_every_selected_field_is_checked(rsps, change: Callable[[dict], None], where: str) -> None:
    rsps.post(URL, json=mutated(change))
    with pytest.raises(ShopifyBadAnswer, match=where.replace("[", r"\[").replace("]", r"\]")):
        list(fetch_orders(client(), created_from=datetime.now(KST) - timedelta(hours=3)))


def test_nullable_fields_may_be_null_and_a_wellformed_answer_passes(rsps) -> None:
    def nulls(orders: dict) -> None:
        node = orders["nodes"][0]
        node.update(cancelledAt=None, displayFinancialStatus=None, customer=None)
        node["lineItems"]["nodes"][0]["sku"] = None
        orders["nodes"][1]["customer"] = {"displayName": None}  # protected customer data

    rsps.post(URL, json=mutated(nulls))
    orders = list(fetch_orders(client(), created_from=datetime.now(KST) - timedelta(hours=3), with_customer=True))
    assert [order["name"] for order in orders] == ["#1001", "#1002"]


def test_a_customer_that_is_not_an_object_is_refused_when_asked_for(rsps) -> None:
    rsps.post(URL, json=mutated(_set(["nodes", 0, "customer"], "홍길동")))
    with pytest.raises(ShopifyBadAnswer, match=r"nodes\[0\]\.customer is a string") as info:
        list(fetch_orders(client(), created_from=datetime.now(KST) - timedelta(hours=3), with_customer=True))
    assert "홍길동" not in str(info.value)  # never the value: it may be personal data


def test_the_digest_job_fails_instead_of_reporting_no_orders(rsps) -> None:
    rsps.post(URL, json=load_fixture("shopify/graphql_orders_bad_nodes_not_a_list.json"))
    job = JobConfig(name="orders", kind="shopify-orders", at=("noon",), to=(),
                    params=shopify_orders.ShopifyOrdersParams(SHOP))
    now = datetime.now(KST)
    with pytest.raises(JobFailed) as info:
        shopify_orders.collect(job, JobContext(state=None, http=requests.Session(), now=now,
                                               since=now - timedelta(hours=4), shopify=lambda shop: client()))
    assert str(info.value).startswith("orders: nothing sent: ")
    assert "data.orders.nodes is a string, not a list" in str(info.value)


@pytest.mark.parametrize("name", ["graphql_orders_bad_nodes_not_a_list.json", "graphql_orders_bad_junk_node.json",
                                  "graphql_orders_bad_missing_amount.json"])
def test_send_now_exits_1_and_kakao_receives_nothing(make_bot: Callable[..., App], shopify: ShopifySandbox,
                                                     sandbox: KakaoSandbox, secret_key: str, name: str) -> None:
    app = make_bot(DIGEST_JOB)
    shopify.add_order(SHOP)
    shopify.fail_next("/graphql.json", 200, load_fixture(f"shopify/{name}"))
    env = {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY, "KAKAO_CLIENT_SECRET": CLIENT_SECRET,
           "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET,
           "BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli, ["--config", str(Path(app.config.path)), "send-now", "orders"], env=env,
                                    catch_exceptions=False)
    finally:  # the CLI installs its own stderr handler: put pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 1, result.output
    assert "does not match the Admin API schema" in result.output
    assert sandbox.received("me") == []
