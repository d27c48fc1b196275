"""The Admin GraphQL client against recorded answer shapes (`responses`): pagination, page
sizing under the 1,000-point limit, cost throttling (computed waits on a fake clock, never
wall time), THROTTLED as 200 and 429, error mapping, header warnings, the orders filter."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses

from bot.shopify.client import ShopifyHttp
from bot.shopify.cost import ThrottleState
from bot.shopify.errors import ShopifyAuthError, ShopifyGraphQLError, ShopifyThrottled, ShopifyUnavailable
from bot.shopify.graphql import EPSILON, MAX_THROTTLED_RETRIES, ShopifyGraphQL
from bot.shopify.orders_query import ORDER_FIELDS, fetch_orders, order_node_cost, orders_search
from bot.shopify.shapes import ShopifyBadAnswer
from bot.util.http import new_session
from bot.util.retry import RetryPolicy

from upstream_fixtures import load_fixture

SHOP = "test-shop.myshopify.com"
VERSION = "2025-10"
URL = f"https://{SHOP}/admin/api/{VERSION}/graphql.json"
TOKEN = "shpat_secret_token_123"
KST = timezone(timedelta(hours=9))

PRODUCTS = """\
query Products($first: Int!, $after: String) {
  products(first: $first, after: $after) { nodes { id title } pageInfo { hasNextPage endCursor } }
}
"""


class FakeTime:
    """clock() and sleep() for the client: sleeping advances the clock and is recorded."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeTokens:
    def __init__(self, token: str = TOKEN):
        self.token = token
        self.rejections: list[str] = []

    def access_token(self) -> str:
        return self.token

    def renew_refused(self) -> bool:
        return False  # a fixed token: nothing to renew with

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def retry_sleeps() -> list[float]:
    return []


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def gql(fake_time: FakeTime, retry_sleeps: list[float], tokens: FakeTokens) -> ShopifyGraphQL:
    http = ShopifyHttp(new_session(), timeout=5, retry=RetryPolicy(attempts=3, base_delay=0.01,
                                                                   sleep=retry_sleeps.append))
    return ShopifyGraphQL(http, origin="https://{shop}", shop=SHOP, api_version=VERSION, tokens=tokens,
                          clock=fake_time.clock, sleep=fake_time.sleep)


def cost(requested: float = 12, actual: float | None = None, available: float = 1990, maximum: float = 2000,
         rate: float = 100) -> dict:
    return {"cost": {"requestedQueryCost": requested,
                     "actualQueryCost": requested if actual is None else actual,
                     "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available,
                                        "restoreRate": rate}}}


def page(nodes: list[dict], cursor: str | None, *, key: str = "products", **costs: Any) -> dict:
    connection = {"nodes": nodes, "pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}}
    return {"data": {key: connection}, "extensions": cost(**costs)}


def throttled(requested: float = 992, available: float = 50, rate: float = 100) -> dict:
    extensions = cost(requested=requested, available=available, rate=rate)
    extensions["cost"]["actualQueryCost"] = None
    return {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                               "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": extensions}


def order_node(number: int = 1, **fields: Any) -> dict:
    """A well-formed order node, as ORDER_FIELDS selects it (tests/fixtures/shopify/graphql_orders_page.json)."""
    node = load_fixture("shopify/graphql_orders_page.json")["data"]["orders"]["nodes"][0]
    return {**node, "id": f"gid://shopify/Order/{number}", **fields}


def sent(rsps: responses.RequestsMock, index: int) -> dict:
    return json.loads(rsps.calls[index].request.body)


# -- requests and pagination --------------------------------------------------------------


def test_query_posts_document_and_variables_with_token_header(rsps, gql):
    rsps.add(responses.POST, URL, json={"data": {"shop": {"name": "Test"}}, "extensions": cost(requested=1)})
    assert gql.query("query Q($x: Int) { shop { name } }", {"x": 1}) == {"shop": {"name": "Test"}}
    request = rsps.calls[0].request
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert json.loads(request.body) == {"query": "query Q($x: Int) { shop { name } }", "variables": {"x": 1}}
    assert gql.requests_made == 1 and gql.cost_spent == 1
    assert gql.throttle == ThrottleState(maximum=2000, available=1990, restore_rate=100, at=1000.0)


def test_origin_override_builds_url(fake_time, tokens):
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, f"http://127.0.0.1:9001/{SHOP}/admin/api/{VERSION}/graphql.json",
                 json={"data": {"shop": {}}})
        client = ShopifyGraphQL(ShopifyHttp(new_session()), origin="http://127.0.0.1:9001/{shop}", shop=SHOP,
                                api_version=VERSION, tokens=tokens, clock=fake_time.clock, sleep=fake_time.sleep)
        assert client.query("{ shop { name } }") == {"shop": {}}


def test_nodes_walks_three_pages_in_order_passing_cursors(rsps, gql):
    rsps.add(responses.POST, URL, json=page([{"id": 1}, {"id": 2}], "c1"))
    rsps.add(responses.POST, URL, json=page([{"id": 3}], "c2"))
    rsps.add(responses.POST, URL, json=page([{"id": 4}, {"id": 5}], None))
    got = list(gql.nodes(PRODUCTS, {"status": "ACTIVE"}, ["products"], node_cost=1))
    assert [node["id"] for node in got] == [1, 2, 3, 4, 5]
    variables = [sent(rsps, i)["variables"] for i in range(3)]
    assert [v["after"] for v in variables] == [None, "c1", "c2"]
    assert all(v["status"] == "ACTIVE" and v["first"] == 250 for v in variables)
    assert gql.requests_made == 3


def test_nodes_requires_paging_variables(gql):
    with pytest.raises(ValueError, match=r"\$first: Int!"):
        list(gql.nodes("query { products(first: 10) { nodes { id } } }", {}, ["products"]))


def test_nodes_stops_when_cursor_does_not_move(rsps, gql):
    rsps.add(responses.POST, URL, json=page([{"id": 1}], "same"))
    rsps.add(responses.POST, URL, json=page([{"id": 2}], "same"))
    assert [n["id"] for n in gql.nodes(PRODUCTS, {}, ["products"], node_cost=1)] == [1, 2]
    assert len(rsps.calls) == 2


def test_nodes_with_null_connection_is_a_bad_answer_not_nothing(rsps, gql):
    rsps.add(responses.POST, URL, json={"data": {"products": None}, "extensions": cost()})
    with pytest.raises(ShopifyBadAnswer, match=r"data\.products is null"):
        list(gql.nodes(PRODUCTS, {}, ["products"]))


# -- page size -----------------------------------------------------------------------------


def test_order_node_cost_and_page_size_keep_requested_cost_under_1000(rsps, gql):
    assert order_node_cost(10, with_customer=False) == 15
    rsps.add(responses.POST, URL, json=page([order_node(1)], "c1", key="orders", requested=992))
    rsps.add(responses.POST, URL, json=page([order_node(2)], None, key="orders", requested=992))
    list(fetch_orders(gql, created_from=datetime.now(KST) - timedelta(days=1)))
    firsts = [sent(rsps, i)["variables"]["first"] for i in range(2)]
    assert firsts == [66, 66]
    assert 2 + 66 * 15 <= 1000 < 2 + 67 * 15


def test_page_size_learned_from_first_answers_requested_cost(rsps, gql):
    # Unknown node cost: a first guess of 50; its answer says 2 + 50 × 15 = 752 → 66 per page after.
    rsps.add(responses.POST, URL, json=page([{"id": 1}], "c1", requested=752))
    rsps.add(responses.POST, URL, json=page([{"id": 2}], None, requested=992))
    list(gql.nodes(PRODUCTS, {}, ["products"]))
    assert [sent(rsps, i)["variables"]["first"] for i in range(2)] == [50, 66]


def test_page_size_never_above_250_or_page_size(rsps, gql):
    rsps.add(responses.POST, URL, json=page([], "c1", requested=252))
    rsps.add(responses.POST, URL, json=page([], None, requested=202))
    list(gql.nodes(PRODUCTS, {}, ["products"], node_cost=1))
    list(gql.nodes(PRODUCTS, {}, ["products"], node_cost=1, page_size=100))
    assert [sent(rsps, i)["variables"]["first"] for i in range(3)] == [250, 250, 100]


def test_max_cost_exceeded_halves_page_size(rsps, gql):
    too_much = {"errors": [{"message": "Query cost is 2752, which exceeds the single query max cost limit (1000).",
                            "extensions": {"code": "MAX_COST_EXCEEDED"}}]}
    rsps.add(responses.POST, URL, json=too_much)
    rsps.add(responses.POST, URL, json=too_much)
    rsps.add(responses.POST, URL, json=page([{"id": 1}], None))
    assert list(gql.nodes(PRODUCTS, {}, ["products"], page_size=200)) == [{"id": 1}]
    assert [sent(rsps, i)["variables"]["first"] for i in range(3)] == [200, 100, 50]


def test_max_cost_exceeded_learns_the_cost_shopify_reports(rsps, gql):
    too_much = {"errors": [{"message": "Query cost is 3752 ...",
                            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 3752, "maxCost": 1000}}]}
    rsps.add(responses.POST, URL, json=too_much)
    rsps.add(responses.POST, URL, json=page([], None, requested=992))
    list(gql.nodes(PRODUCTS, {}, ["products"], page_size=250))
    assert [sent(rsps, i)["variables"]["first"] for i in range(2)] == [250, 66]


def test_max_cost_exceeded_from_query_is_an_error(rsps, gql):
    rsps.add(responses.POST, URL, json={"errors": [{"message": "Query cost is 1500",
                                                    "extensions": {"code": "MAX_COST_EXCEEDED"}}]})
    with pytest.raises(ShopifyGraphQLError, match="Query cost is 1500"):
        gql.query("{ shop { name } }")


# -- cost throttling ------------------------------------------------------------------------


def test_proactive_wait_is_exactly_deficit_over_restore_rate(rsps, gql, fake_time):
    # After page 1 the bucket holds 100; page 2 will request 992: wait (992 - 100) / 100 s.
    rsps.add(responses.POST, URL, json=page([{"id": 1}], "c1", requested=992, available=100))
    rsps.add(responses.POST, URL, json=page([{"id": 2}], "c2", requested=992, available=1500))
    rsps.add(responses.POST, URL, json=page([{"id": 3}], None, requested=992, available=1000))
    assert len(list(gql.nodes(PRODUCTS, {}, ["products"], node_cost=15))) == 3
    assert fake_time.sleeps == [pytest.approx(8.92 + EPSILON, abs=1e-9)]  # pages 2→3: 1500 ≥ 992, no wait
    assert gql.throttled_seen == 0


def test_proactive_wait_counts_restore_since_the_answer(rsps, gql, fake_time):
    rsps.add(responses.POST, URL, json=page([{"id": 1}], "c1", requested=992, available=100))
    rsps.add(responses.POST, URL, json=page([{"id": 2}], None, requested=992))
    nodes = gql.nodes(PRODUCTS, {}, ["products"], node_cost=15)
    next(nodes)
    fake_time.now += 3.0  # the caller spent 3 s on page 1: the bucket refilled by 300
    list(nodes)
    assert fake_time.sleeps == [pytest.approx(5.92 + EPSILON, abs=1e-9)]


def test_projection_is_capped_at_the_bucket_maximum(gql):
    state = ThrottleState(maximum=1000, available=900, restore_rate=50, at=0.0)
    assert state.projected(100.0) == 1000
    assert state.wait_for(1500, 0.0) == pytest.approx(2.0)  # never waits for more than the bucket holds
    assert state.wait_for(800, 0.0) == 0


def test_query_remembers_a_documents_cost_for_the_next_wait(rsps, gql, fake_time):
    rsps.add(responses.POST, URL, json={"data": {"shop": {}}, "extensions": cost(requested=500, available=300)})
    rsps.add(responses.POST, URL, json={"data": {"shop": {}}, "extensions": cost(requested=500, available=300)})
    gql.query("{ shop { name } }")
    gql.query("{ shop { name } }")
    assert fake_time.sleeps == [pytest.approx(2.0 + EPSILON, abs=1e-9)]


def test_throttled_200_is_waited_out_and_resent(rsps, gql, fake_time):
    rsps.add(responses.POST, URL, json=throttled(requested=992, available=50, rate=100))
    rsps.add(responses.POST, URL, json=page([{"id": 1}], None, requested=992))
    assert list(gql.nodes(PRODUCTS, {}, ["products"], node_cost=15)) == [{"id": 1}]
    assert fake_time.sleeps == [pytest.approx(9.42 + EPSILON, abs=1e-9)]
    assert sent(rsps, 0) == sent(rsps, 1)
    assert gql.throttled_seen == 1 and gql.requests_made == 2


def test_throttled_429_with_throttle_status_waits_deficit(rsps, gql, fake_time):
    rsps.add(responses.POST, URL, status=429, json=throttled(requested=500, available=300, rate=50))
    rsps.add(responses.POST, URL, json={"data": {"shop": {"name": "x"}}, "extensions": cost()})
    assert gql.query("{ shop { name } }") == {"shop": {"name": "x"}}
    assert fake_time.sleeps == [pytest.approx(4.0 + EPSILON, abs=1e-9)]


def test_throttled_429_with_retry_after(rsps, gql, fake_time, retry_sleeps):
    rsps.add(responses.POST, URL, status=429, body="Too many requests", headers={"Retry-After": "2.5"})
    rsps.add(responses.POST, URL, json={"data": {"shop": {}}, "extensions": cost()})
    assert gql.query("{ shop { name } }") == {"shop": {}}
    assert fake_time.sleeps == [2.5]
    assert retry_sleeps == []  # paced by the bucket logic, not the HTTP retry policy


def test_throttled_without_hints_waits_one_second(rsps, gql, fake_time):
    rsps.add(responses.POST, URL, status=429, body="")
    rsps.add(responses.POST, URL, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]})
    rsps.add(responses.POST, URL, json={"data": {"shop": {}}})
    assert gql.query("{ shop { name } }") == {"shop": {}}
    assert fake_time.sleeps == [1.0, 1.0]


def test_throttled_gives_up_after_the_cap(rsps, gql, fake_time):
    rsps.add(responses.POST, URL, json=throttled())
    with pytest.raises(ShopifyThrottled, match="THROTTLED"):
        gql.query("{ shop { name } }")
    assert len(rsps.calls) == MAX_THROTTLED_RETRIES + 1
    assert len(fake_time.sleeps) == MAX_THROTTLED_RETRIES


# -- failures ------------------------------------------------------------------------------


def test_5xx_and_connection_errors_are_retried(rsps, gql, retry_sleeps):
    rsps.add(responses.POST, URL, status=502, body="Bad gateway")
    rsps.add(responses.POST, URL, body=requests.ConnectionError("reset"))
    rsps.add(responses.POST, URL, json={"data": {"shop": {}}, "extensions": cost()})
    assert gql.query("{ shop { name } }") == {"shop": {}}
    assert len(rsps.calls) == 3 and len(retry_sleeps) == 2


def test_5xx_gives_up_after_the_retry_policy(rsps, gql):
    rsps.add(responses.POST, URL, status=503, body="")
    with pytest.raises(ShopifyUnavailable):
        gql.query("{ shop { name } }")
    assert len(rsps.calls) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_marks_install_and_tells_how_to_reconnect(rsps, gql, tokens, status):
    rsps.add(responses.POST, URL, status=status, json={"errors": "[API] Invalid API key or access token"})
    with pytest.raises(ShopifyAuthError) as caught:
        gql.query("{ shop { name } }")
    assert len(rsps.calls) == 1
    assert len(tokens.rejections) == 1 and str(status) in tokens.rejections[0]
    assert f"python -m bot shopify install {SHOP}" in str(caught.value)
    assert "connect" in str(caught.value) and TOKEN not in str(caught.value)
    assert caught.value.status == status


def test_errors_without_data_raise_with_messages(rsps, gql):
    rsps.add(responses.POST, URL, json={"errors": [
        {"message": "Field 'nope' doesn't exist on type 'Shop'", "extensions": {"code": "undefinedField"}},
        {"message": "Second problem"}]})
    with pytest.raises(ShopifyGraphQLError) as caught:
        gql.query("{ shop { nope } }")
    assert "Field 'nope' doesn't exist" in str(caught.value) and "Second problem" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_other_4xx_is_a_graphql_error(rsps, gql):
    rsps.add(responses.POST, URL, status=400, json={"errors": [{"message": "Parse error on \"}\""}]})
    with pytest.raises(ShopifyGraphQLError, match="HTTP 400.*Parse error"):
        gql.query("{ shop { ")


def test_errors_with_data_return_data_and_warn_once(rsps, gql, caplog):
    protected = {"data": {"orders": {"nodes": [order_node(1, customer=None)],
                                     "pageInfo": {"hasNextPage": False, "endCursor": None}}},
                 "errors": [{"message": "This app is not approved to access the Customer object.",
                             "path": ["orders", "nodes", n, "customer"], "extensions": {"code": "ACCESS_DENIED"}}
                            for n in range(2)],
                 "extensions": cost()}
    rsps.add(responses.POST, URL, json=protected)
    rsps.add(responses.POST, URL, json=protected)
    caplog.set_level(logging.WARNING, logger="bot.shopify.graphql")
    for _ in range(2):
        orders = list(fetch_orders(gql, created_from=datetime.now(KST) - timedelta(hours=3), with_customer=True))
        assert orders == [order_node(1, customer=None)]
    warnings = [r for r in caplog.records if "not approved to access the Customer" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].getMessage().count("not approved") == 1


def test_non_json_answer_is_unavailable(rsps, gql):
    rsps.add(responses.POST, URL, body="<html>oops</html>", content_type="text/html")
    with pytest.raises(ShopifyUnavailable, match="not JSON"):
        gql.query("{ shop { name } }")


# -- headers and logs ----------------------------------------------------------------------


def test_deprecation_header_logged_once(rsps, gql, caplog):
    headers = {"X-Shopify-API-Deprecated-Reason": "https://shopify.dev/changelog/field-x-deprecated",
               "X-Shopify-API-Version": VERSION}
    for _ in range(3):
        rsps.add(responses.POST, URL, json={"data": {"shop": {}}}, headers=headers)
    caplog.set_level(logging.WARNING, logger="bot.shopify.graphql")
    for _ in range(3):
        gql.query("{ shop { name } }")
    assert len([r for r in caplog.records if "field-x-deprecated" in r.getMessage()]) == 1


def test_version_fall_forward_logged_once_naming_both(rsps, gql, caplog):
    for _ in range(2):
        rsps.add(responses.POST, URL, json={"data": {"shop": {}}}, headers={"X-Shopify-API-Version": "2026-01"})
    caplog.set_level(logging.WARNING, logger="bot.shopify.graphql")
    gql.query("{ shop { name } }")
    gql.query("{ shop { name } }")
    records = [r.getMessage() for r in caplog.records if "2026-01" in r.getMessage()]
    assert len(records) == 1 and VERSION in records[0]


def test_token_never_logged(rsps, gql, caplog):
    caplog.set_level(logging.DEBUG)
    rsps.add(responses.POST, URL, status=502, body="")
    rsps.add(responses.POST, URL, json=throttled(), headers={"X-Shopify-API-Version": "2026-01",
                                                             "X-Shopify-API-Deprecated-Reason": "x"})
    rsps.add(responses.POST, URL, json={"data": {"shop": None}, "errors": [{"message": "partial"}]})
    rsps.add(responses.POST, URL, status=401, json={"errors": "[API] Invalid API key or access token"})
    gql.query("{ shop { name } }")
    with pytest.raises(ShopifyAuthError):
        gql.query("{ shop { name } }")
    assert caplog.records and TOKEN not in caplog.text


# -- orders --------------------------------------------------------------------------------


def test_fetch_orders_builds_filter_sort_and_fields(rsps, gql):
    start = (datetime.now(KST) - timedelta(days=2)).replace(microsecond=0)
    end = start + timedelta(days=1)
    rsps.add(responses.POST, URL, json=page([order_node(1)], None, key="orders"))
    assert list(fetch_orders(gql, created_from=start, created_to=end, line_items=5)) == [order_node(1)]
    body = sent(rsps, 0)
    assert body["variables"]["query"] == (f"created_at:>='{start.isoformat()}' AND "
                                          f"created_at:<'{end.isoformat()}'")
    assert "+09:00'" in body["variables"]["query"]
    assert body["variables"]["lineItems"] == 5
    assert "sortKey: CREATED_AT" in body["query"] and ORDER_FIELDS in body["query"]
    assert "customer" not in body["query"]
    assert body["variables"]["first"] == (1000 - 2) // order_node_cost(5, False)


def test_fetch_orders_asks_for_customer_only_when_asked(rsps, gql):
    rsps.add(responses.POST, URL, json=page([], None, key="orders"))
    list(fetch_orders(gql, created_from=datetime.now(KST), with_customer=True))
    body = sent(rsps, 0)
    assert "customer { displayName }" in body["query"]
    assert body["variables"]["query"].startswith("created_at:>='") and " AND " not in body["variables"]["query"]


def test_orders_search_format():
    start = datetime(2026, 11, 22, 0, 0, tzinfo=KST)
    assert orders_search(start) == "created_at:>='2026-11-22T00:00:00+09:00'"
    assert orders_search(start, start + timedelta(hours=12)) == (
        "created_at:>='2026-11-22T00:00:00+09:00' AND created_at:<'2026-11-22T12:00:00+09:00'")


def test_fetch_orders_clamps_to_60_days_and_logs(rsps, gql, caplog):
    rsps.add(responses.POST, URL, json=page([], None, key="orders"))
    caplog.set_level(logging.WARNING, logger="bot.shopify.orders_query")
    list(fetch_orders(gql, created_from=datetime.now(KST) - timedelta(days=90)))
    searched = sent(rsps, 0)["variables"]["query"]
    since = datetime.fromisoformat(searched.split("'")[1])
    assert timedelta(days=59, hours=23) < datetime.now(timezone.utc) - since <= timedelta(days=60, seconds=5)
    assert searched.endswith("+09:00'")
    assert any("60 days" in r.getMessage() for r in caplog.records)


def test_fetch_orders_rejects_naive_datetimes(gql):
    with pytest.raises(ValueError, match="time zone"):
        fetch_orders(gql, created_from=datetime(2026, 11, 22))
