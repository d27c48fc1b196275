"""The Shopify sandbox over real HTTP: OAuth, token rotation, client credentials, uninstall,
GraphQL orders, query cost and throttling, versions, webhook subscriptions and deliveries.

Answers are compared with the fixtures in tests/fixtures/shopify (exactly, or by shape where
values are random), so the fixtures and the sandbox cannot drift apart.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask
from flask import request as flask_request

from bot.sandbox.server import serve
from bot.sandbox.shopify import INTERNAL_ERROR, ShopifySandbox
from bot.sandbox.shopify_graphql import UNSUPPORTED
from bot.shopify.signing import verify_query, verify_webhook

from epoch_clock import EpochClock
from upstream_fixtures import load_fixture, shape

SEOUL = ZoneInfo("Asia/Seoul")
SHOP, OTHER = "kimchi-store.myshopify.com", "other-store.myshopify.com"
KEY, SECRET = "sandbox-shopify-key", "sandbox-shopify-secret-0123456789ab"
REDIRECT = "https://bot.example.com/shopify/default/callback"
HOOKS = "https://bot.example.com/shopify/default/webhooks"
START = datetime(2026, 11, 22, 0, 0, tzinfo=SEOUL)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=SEOUL).timestamp()

ORDERS = """
query Orders($first: Int!, $after: String, $query: String, $lines: Int = 5) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes {
      id name createdAt cancelledAt displayFinancialStatus displayFulfillmentStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: $lines) { nodes { name sku quantity } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
SHOP_QUERY = "{ shop { name currencyCode myshopifyDomain ianaTimezone } }"
CUSTOMERS = "{ orders(first: 1) { nodes { id name customer { displayName } } } }"
SUBSCRIBE = """
mutation {
  webhookSubscriptionCreate(topic: ORDERS_CREATE, webhookSubscription: {uri: "%s"}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}
"""


def fixture(name: str) -> Any:
    return load_fixture(f"shopify/{name}")


@dataclass
class Env:
    sb: ShopifySandbox
    url: str
    clock: EpochClock
    wall: EpochClock

    def token(self, shop: str = SHOP, as_json: bool = False, **form: Any) -> requests.Response:
        body = {"client_id": KEY, "client_secret": SECRET, **form}
        url = f"{self.url}/{shop}/admin/oauth/access_token"
        if as_json:
            return requests.post(url, json=body, timeout=5)
        return requests.post(url, data=body, timeout=5)

    def exchange(self, code: str, expiring: bool = True, **form: Any) -> requests.Response:
        return self.token(code=code, **({"expiring": "1"} if expiring else {}), **form)

    def install(self, shop: str = SHOP, scope: str = "read_orders") -> dict[str, Any]:
        answer = self.exchange(self.sb.issue_code(shop, KEY, scope=scope), shop=shop)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def refresh(self, refresh_token: str, shop: str = SHOP) -> requests.Response:
        return self.token(shop, grant_type="refresh_token", refresh_token=refresh_token)

    def graphql(self, access: str | None, query: str, variables: dict[str, Any] | None = None,
                version: str = "2025-10", shop: str = SHOP) -> requests.Response:
        headers = {"X-Shopify-Access-Token": access} if access else {}
        return requests.post(f"{self.url}/{shop}/admin/api/{version}/graphql.json", headers=headers,
                             json={"query": query, "variables": variables or {}}, timeout=5)

    def orders(self, access: str, **variables: Any) -> dict[str, Any]:
        answer = self.graphql(access, ORDERS, variables)
        assert answer.status_code == 200, answer.text
        return answer.json()


def start(request: pytest.FixtureRequest, **kwargs: Any) -> Env:
    clock, wall = EpochClock(1000.0), EpochClock(NOW)
    sb = ShopifySandbox(clock=clock, wall_clock=wall, **kwargs)
    sb.register_app(KEY, SECRET, own_shops=[SHOP])
    sb.add_shop(SHOP, name="김치 상회")
    sb.add_shop(OTHER, currency="USD", timezone="America/New_York")
    server = serve(sb.wsgi_app())
    request.addfinalizer(server.close)
    return Env(sb, server.url, clock, wall)


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Env:
    return start(request)


# ---- OAuth --------------------------------------------------------------------------------


def test_authorize_redirects_with_a_signed_callback(env: Env) -> None:
    params = {"client_id": KEY, "scope": "read_orders,write_orders", "redirect_uri": REDIRECT, "state": "ab12cd"}
    authorize = f"{env.url}/{SHOP}/admin/oauth/authorize"
    answer = requests.get(authorize, params=params, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    pairs = parse_qsl(urlsplit(location).query)
    assert [k for k, _ in pairs] == ["code", "hmac", "host", "shop", "state", "timestamp"]
    assert verify_query(pairs, [SECRET]) and not verify_query(pairs, ["other-secret"])
    query = dict(pairs)
    assert query["shop"] == SHOP and query["state"] == "ab12cd" and query["timestamp"] == str(int(NOW))
    assert base64.b64decode(query["host"] + "==") == b"admin.shopify.com/store/kimchi-store"
    tokens = env.exchange(query["code"]).json()
    assert tokens["scope"] == "read_orders,write_orders"

    unknown = requests.get(f"{env.url}/{SHOP}/admin/oauth/authorize", params={**params, "client_id": "nope"},
                           allow_redirects=False, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"
    nowhere = requests.get(f"{env.url}/unknown.myshopify.com/admin/oauth/authorize", params=params,
                           allow_redirects=False, timeout=5)
    assert nowhere.status_code == 404


def test_code_exchange_expiring_and_not(env: Env) -> None:
    expiring = env.exchange(env.sb.issue_code(SHOP, KEY, scope="read_orders,write_orders"))
    assert expiring.status_code == 200
    assert shape(expiring.json()) == shape(fixture("token_expiring.json"))
    body = expiring.json()
    assert body["access_token"].startswith("shpca_") and body["refresh_token"].startswith("shprt_")
    assert (body["expires_in"], body["refresh_token_expires_in"]) == (3600, 7776000)
    assert body["scope"] == "read_orders,write_orders"

    plain = env.exchange(env.sb.issue_code(SHOP, KEY), expiring=False)
    assert shape(plain.json()) == shape(fixture("token_offline.json"))
    env.clock.advance(10 * 86400)  # non-expiring: still works much later
    assert env.graphql(plain.json()["access_token"], SHOP_QUERY).status_code == 200
    assert env.graphql(body["access_token"], SHOP_QUERY).status_code == 401

    as_json = env.token(as_json=True, code=env.sb.issue_code(SHOP, KEY), expiring=1)
    assert as_json.status_code == 200 and "refresh_token" in as_json.json()
    assert env.sb.token_requests[-1]["expiring"] == 1


def test_code_is_single_use_and_needs_the_secret(env: Env) -> None:
    code = env.sb.issue_code(SHOP, KEY)
    wrong = env.exchange(code, client_secret="guess")
    assert wrong.status_code == 400 and wrong.json() == fixture("error_invalid_client.json")
    assert env.exchange(code).status_code == 200  # the code survived the refused attempt
    reused = env.exchange(code)
    assert reused.status_code == 400 and reused.json() == fixture("error_invalid_grant.json")
    assert env.exchange("never-issued").json() == fixture("error_invalid_grant.json")
    other_shop = env.exchange(env.sb.issue_code(SHOP, KEY), shop=OTHER)
    assert other_shop.json() == fixture("error_invalid_grant.json")


# ---- refresh ------------------------------------------------------------------------------


def test_refresh_rotates_the_pair(env: Env) -> None:
    first = env.install()
    answer = env.refresh(first["refresh_token"])
    assert answer.status_code == 200
    assert shape(answer.json()) == shape(fixture("token_expiring.json"))
    second = answer.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert env.sb.token_requests[-1]["grant_type"] == "refresh_token"
    # The old access token keeps working until it expires; the new one has a fresh hour.
    env.clock.advance(1800)
    assert env.graphql(first["access_token"], SHOP_QUERY).status_code == 200
    env.clock.advance(1800)
    assert env.graphql(first["access_token"], SHOP_QUERY).status_code == 401
    assert env.graphql(second["access_token"], SHOP_QUERY).status_code == 401  # same hour: both done
    third = env.refresh(second["refresh_token"]).json()
    env.sb.expire_access_tokens()
    assert env.graphql(third["access_token"], SHOP_QUERY).status_code == 401


def test_used_refresh_token_works_until_the_new_access_token_is_used(env: Env) -> None:
    first = env.install()
    lost = env.refresh(first["refresh_token"]).json()  # say the bot never stored this answer
    retry = env.refresh(first["refresh_token"])
    assert retry.status_code == 200  # grace: the replacement was never used
    kept = retry.json()
    assert env.graphql(kept["access_token"], SHOP_QUERY).status_code == 200
    gone = env.refresh(first["refresh_token"])
    assert gone.status_code == 400 and gone.json() == fixture("error_invalid_grant.json")
    assert env.refresh(kept["refresh_token"]).status_code == 200
    assert env.graphql(lost["access_token"], SHOP_QUERY).status_code == 200  # issued tokens live on


def test_using_the_new_refresh_token_retires_the_old_one(env: Env) -> None:
    first = env.install()
    second = env.refresh(first["refresh_token"]).json()
    assert env.refresh(second["refresh_token"]).status_code == 200
    assert env.refresh(first["refresh_token"]).json() == fixture("error_invalid_grant.json")


def test_refresh_grace_is_capped_and_expired_tokens_fail(env: Env) -> None:
    first = env.install()
    assert env.refresh(first["refresh_token"]).status_code == 200
    env.clock.advance(30 * 86400)
    assert env.refresh(first["refresh_token"]).json() == fixture("error_invalid_grant.json")

    unused = env.install()
    env.clock.advance(env.sb.refresh_ttl)
    assert env.refresh(unused["refresh_token"]).json() == fixture("error_invalid_grant.json")
    assert env.refresh("shprt_never-issued").json() == fixture("error_invalid_grant.json")


# ---- client credentials, legacy tokens, uninstall --------------------------------------------


TOKEN_EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                  "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                  "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
                  "expiring": "1"}


def test_token_exchange_installs_with_an_expiring_pair(env: Env) -> None:
    answer = env.token(subject_token=env.sb.session_token(SHOP, KEY), **TOKEN_EXCHANGE)
    assert answer.status_code == 200, answer.text
    assert shape(answer.json()) == shape(fixture("token_expiring.json"))
    assert env.graphql(answer.json()["access_token"], SHOP_QUERY).status_code == 200


def test_token_exchange_refuses_session_tokens_it_did_not_issue_for_this_shop_and_app(env: Env) -> None:
    expired = env.sb.session_token(SHOP, KEY)
    env.wall.advance(120)
    for subject in (expired, env.sb.session_token(OTHER, KEY), env.sb.session_token(SHOP, KEY) + "x", "junk", ""):
        answer = env.token(subject_token=subject, **TOKEN_EXCHANGE)
        assert answer.status_code == 400 and answer.json() == fixture("error_invalid_subject_token.json")


def test_token_exchange_needs_the_id_token_and_offline_types(env: Env) -> None:
    for wrong in ({"subject_token_type": "urn:x"}, {"requested_token_type": "urn:x"}):
        answer = env.token(subject_token=env.sb.session_token(SHOP, KEY), **{**TOKEN_EXCHANGE, **wrong})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_client_credentials_on_own_shops_only(env: Env) -> None:
    own = env.token(grant_type="client_credentials")
    assert own.status_code == 200
    assert shape(own.json()) == shape(fixture("token_client_credentials.json"))
    assert own.json()["access_token"].startswith("shpat_") and own.json()["expires_in"] == 86399
    assert env.graphql(own.json()["access_token"], SHOP_QUERY).status_code == 200
    env.clock.advance(86399)
    assert env.graphql(own.json()["access_token"], SHOP_QUERY).status_code == 401

    foreign = env.token(OTHER, grant_type="client_credentials")
    assert foreign.status_code == 400 and foreign.json() == fixture("error_shop_not_permitted.json")


def test_legacy_token_never_expires(env: Env) -> None:
    token = env.sb.legacy_token(SHOP)
    assert token.startswith("shpat_")
    env.clock.advance(365 * 86400)
    env.sb.expire_access_tokens()
    assert env.graphql(token, SHOP_QUERY).status_code == 200
    assert env.graphql(token, SHOP_QUERY, shop=OTHER).status_code == 401  # tokens belong to one shop


def test_uninstall_kills_tokens_and_reinstall_works(env: Env) -> None:
    tokens = env.install()
    assert env.graphql(tokens["access_token"], SUBSCRIBE % HOOKS).status_code == 200
    env.sb.uninstall(SHOP, KEY)
    answer = env.graphql(tokens["access_token"], SHOP_QUERY)
    assert answer.status_code == 401 and answer.json() == fixture("error_401.json")
    assert env.refresh(tokens["refresh_token"]).json() == fixture("error_invalid_client.json")
    assert env.token(grant_type="client_credentials").json() == fixture("error_app_not_installed.json")
    assert env.sb.subscriptions[SHOP] == []

    again = env.install()  # a new consent installs the app again
    assert env.graphql(again["access_token"], SHOP_QUERY).status_code == 200
    assert env.token(grant_type="client_credentials").status_code == 200


def test_uninstall_can_deliver_app_uninstalled(request: pytest.FixtureRequest, env: Env) -> None:
    received = receiver(request)
    env.sb.uninstall(SHOP, KEY, webhook_url=received.url)
    (hook,) = received.hooks
    assert hook["headers"]["X-Shopify-Topic"] == "app/uninstalled"
    assert verify_webhook(hook["body"], hook["headers"]["X-Shopify-Hmac-Sha256"], [SECRET])
    assert json.loads(hook["body"])["myshopify_domain"] == SHOP


# ---- GraphQL: answers ---------------------------------------------------------------------------


def test_shop_query_and_auth_errors(env: Env) -> None:
    access = env.install()["access_token"]
    answer = env.graphql(access, SHOP_QUERY)
    assert answer.status_code == 200 and answer.json() == fixture("graphql_shop.json")
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"

    for token in (None, "shpca_wrong"):
        refused = env.graphql(token, SHOP_QUERY)
        assert refused.status_code == 401 and refused.json() == fixture("error_401.json")
    no_query = requests.post(f"{env.url}/{SHOP}/admin/api/2025-10/graphql.json", json={"variables": {}},
                             headers={"X-Shopify-Access-Token": access}, timeout=5)
    assert no_query.status_code == 400
    unsupported = env.graphql(access, "{ products(first: 5) { nodes { id } } shop { name } }")
    assert unsupported.json() == {"errors": [{"message": UNSUPPORTED, "path": ["products"]}]}
    for garbage in ("", "{ shop { name }", "query ($a: Int = ) { shop { name } }", "hello"):
        answer = env.graphql(access, garbage)
        assert answer.status_code == 200 and "data" not in answer.json(), garbage
    commented = env.graphql(access, '# the shop\n{ shop { name } # "#" is fine in strings\n }')
    assert commented.json()["data"] == {"shop": {"name": "김치 상회"}}


def test_orders_page_matches_the_fixture(env: Env) -> None:
    access = env.install()["access_token"]
    made = env.sb.add_orders(SHOP, 3, start=START, every=timedelta(hours=1), fulfilled_every=2)
    page = env.orders(access, first=2)
    assert shape(page) == shape(fixture("graphql_orders_page.json"))
    nodes = page["data"]["orders"]["nodes"]
    assert [n["name"] for n in nodes] == ["#1001", "#1002"] == [m["name"] for m in made[:2]]
    assert nodes[0]["createdAt"] == "2026-11-21T15:00:00Z"  # midnight in Seoul, written in UTC
    assert [n["displayFulfillmentStatus"] for n in nodes] == ["UNFULFILLED", "FULFILLED"]
    fixed = fixture("graphql_orders_page.json")["data"]["orders"]["nodes"]
    for node, expected in zip(nodes, fixed):  # the generated catalogue is deterministic
        assert node["totalPriceSet"] == expected["totalPriceSet"]
        assert node["lineItems"] == expected["lineItems"]
    assert page["extensions"] == fixture("graphql_orders_page.json")["extensions"]


def test_orders_pagination_over_three_pages_with_a_created_at_filter(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 30, start=START, every=timedelta(hours=1))
    late = env.sb.add_order(SHOP, createdAt=START + timedelta(hours=7, minutes=30),
                            lineItems=[{"name": "선물 포장", "sku": None, "quantity": 1, "price": 3000}])
    assert late["totalPriceSet"]["shopMoney"]["amount"] == "3000.0"
    since = "created_at:>='2026-11-22T05:00:00+09:00'"
    names: list[str] = []
    pages, after = [], None
    while True:
        data = env.orders(access, first=10, after=after, query=since)["data"]["orders"]
        pages.append(len(data["nodes"]))
        names += [n["name"] for n in data["nodes"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert pages == [10, 10, 6]
    expected = [f"#{n}" for n in range(1006, 1009)] + ["#1031"] + [f"#{n}" for n in range(1009, 1031)]
    assert names == expected  # sortKey CREATED_AT, ascending

    window = f"{since} AND created_at:<'2026-11-22T10:00:00+09:00'"
    data = env.orders(access, first=50, query=window)["data"]["orders"]
    assert [n["name"] for n in data["nodes"]] == ["#1006", "#1007", "#1008", "#1031", "#1009", "#1010"]
    assert not data["pageInfo"]["hasNextPage"]

    env.wall.advance(2 * 86400)  # past the last order's creation
    env.sb.update_order(SHOP, "#1001", displayFinancialStatus="REFUNDED")
    updated = env.orders(access, first=50, query="updated_at:>='2026-11-24T00:00:00+09:00'")
    assert [n["name"] for n in updated["data"]["orders"]["nodes"]] == ["#1001"]
    assert updated["data"]["orders"]["nodes"][0]["displayFinancialStatus"] == "REFUNDED"


def test_generated_statuses_and_money(env: Env) -> None:
    made = env.sb.add_orders(SHOP, 6, start=START, every=timedelta(minutes=10), cancelled_every=3,
                             refunded_every=2, pending_every=5)
    assert [m["displayFinancialStatus"] for m in made] == ["PAID", "REFUNDED", "REFUNDED", "REFUNDED",
                                                          "PENDING", "REFUNDED"]
    assert [m["cancelledAt"] is not None for m in made] == [False, False, True, False, False, True]
    usd = env.sb.add_orders(OTHER, 1, start=datetime(2026, 11, 22, 9, 0), every=timedelta(hours=1))
    assert usd[0]["totalPriceSet"]["shopMoney"] == {"amount": "27.48", "currencyCode": "USD"}  # 9.99 × 2 + 7.5
    assert usd[0]["createdAt"] == "2026-11-22T14:00:00Z"  # naive start = the shop's zone (New York)


def test_line_items_first_as_literal_and_cursor_errors(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 2, start=START, every=timedelta(hours=1), line_items=4)
    literal = "{ orders(first: 2) { nodes { lineItems(first: 3) { nodes { sku } pageInfo { hasNextPage } } } } }"
    nodes = env.graphql(access, literal).json()["data"]["orders"]["nodes"]
    assert [len(n["lineItems"]["nodes"]) for n in nodes] == [3, 3]
    assert nodes[0]["lineItems"]["pageInfo"] == {"hasNextPage": True}

    for first in (0, 251):
        bad = env.graphql(access, ORDERS, {"first": first}).json()
        assert "data" not in bad and "first" in bad["errors"][0]["message"]
    missing = env.graphql(access, "{ orders { nodes { id } } }").json()
    assert missing["errors"][0]["message"] == "you must provide one of first or last"
    bad_cursor = env.graphql(access, ORDERS, {"first": 1, "after": "!!"}).json()
    assert "Invalid cursor" in bad_cursor["errors"][0]["message"]


def test_protected_customer_data_is_null_with_an_error(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 1, start=START, every=timedelta(hours=1))
    answer = env.graphql(access, CUSTOMERS)
    assert answer.status_code == 200
    body = answer.json()
    expected = fixture("graphql_orders_protected_customer.json")
    assert shape(body) == shape(expected)
    assert body["errors"] == expected["errors"] and body["extensions"] == expected["extensions"]
    assert body["data"]["orders"]["nodes"][0]["name"] == "#1001"

    env.sb.add_orders(OTHER, 1, start=START, every=timedelta(hours=1), protected_customer=False)
    other = env.graphql(env.install(OTHER)["access_token"], CUSTOMERS, shop=OTHER).json()
    assert "errors" not in other
    assert other["data"]["orders"]["nodes"][0]["customer"] == {"displayName": "이서준"}


def test_orders_need_read_orders(env: Env) -> None:
    env.sb.register_app("narrow-key", "narrow-secret", scopes_granted="read_products")
    code = env.sb.issue_code(SHOP, "narrow-key", scope="read_orders")
    tokens = env.token(client_id="narrow-key", client_secret="narrow-secret", code=code, expiring="1").json()
    assert tokens["scope"] == "read_products"  # the merchant granted less than was asked
    body = env.graphql(tokens["access_token"], CUSTOMERS).json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_search_warnings_and_orders_window(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 3, start=START - timedelta(days=61), every=timedelta(days=30))
    body = env.orders(access, first=10, query="financial_status:paid")
    assert len(body["data"]["orders"]["nodes"]) == 3
    assert body["extensions"]["search"][0]["warnings"][0]["field"] == "financial_status"
    env.sb.orders_window_days = 60  # read_orders sees 60 days
    assert [n["name"] for n in env.orders(access, first=10)["data"]["orders"]["nodes"]] == ["#1002", "#1003"]


# ---- GraphQL: cost and throttling ---------------------------------------------------------------


def test_status_and_fulfillment_status_filter_orders(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 4, start=START, every=timedelta(hours=1), cancelled_every=4, fulfilled_every=3)
    body = env.orders(access, first=10, query="fulfillment_status:unfulfilled status:open")
    assert [n["name"] for n in body["data"]["orders"]["nodes"]] == ["#1001", "#1002"]
    assert "search" not in body["extensions"]


def test_cost_numbers_for_a_known_query(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 10, start=START, every=timedelta(hours=1))
    # One order: Order 1 + totalPriceSet 1 + shopMoney 1 + lineItems (2 + 5 × 1) = 10 requested,
    # 7 actual with 2 line items. The page: 2 + 10 × 10 = 102 requested, 2 + 10 × 7 = 72 actual.
    cost = env.orders(access, first=10)["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (102, 72)
    assert cost["throttleStatus"]["currentlyAvailable"] == 2000 - 72
    assert env.orders(access, first=10)["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1856
    env.clock.advance(1.0)  # +100 points
    assert env.orders(access, first=10)["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1884
    last = env.sb.graphql_requests[-1]
    assert (last["shop"], last["requested_cost"], last["actual_cost"], last["throttled"]) == (SHOP, 102, 72, False)
    assert last["variables"] == {"first": 10}

    with_customer = env.graphql(access, CUSTOMERS).json()["extensions"]["cost"]
    assert (with_customer["requestedQueryCost"], with_customer["actualQueryCost"]) == (4, 4)
    empty = env.orders(access, first=50, query="created_at:>='2030-01-01'")["extensions"]["cost"]
    assert (empty["requestedQueryCost"], empty["actualQueryCost"]) == (502, 2)


@pytest.mark.parametrize("status", [200, 429])
def test_bucket_drains_throttles_and_restores(request: pytest.FixtureRequest, status: int) -> None:
    env = start(request, throttle_status=status)
    access = env.install()["access_token"]
    env.sb.add_orders(SHOP, 50, start=START, every=timedelta(minutes=1), line_items=5)
    for _ in range(3):
        assert env.orders(access, first=50)["extensions"]["cost"]["actualQueryCost"] == 502
    throttled = env.graphql(access, ORDERS, {"first": 50})
    assert throttled.status_code == status
    assert throttled.json() == fixture("graphql_throttled.json")
    assert ("Retry-After" in throttled.headers) == (status == 429)
    if status == 429:
        assert throttled.headers["Retry-After"] == "1.0"
    assert env.sb.graphql_requests[-1]["throttled"] and env.sb.graphql_requests[-1]["actual_cost"] is None
    assert env.sb.available(SHOP, KEY) == 494  # a refused query costs nothing

    env.clock.advance(0.08)  # 8 points restored: exactly enough
    again = env.graphql(access, ORDERS, {"first": 50})
    assert again.status_code == 200
    assert again.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
    env.clock.advance(3600)
    assert env.sb.available(SHOP, KEY) == 2000  # capped at the bucket size

    # Buckets are per shop and app: another shop is untouched.
    other = env.graphql(env.install(OTHER)["access_token"], SHOP_QUERY, shop=OTHER).json()
    assert other["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1999


def test_max_cost_exceeded(env: Env) -> None:
    access = env.install()["access_token"]
    answer = env.graphql(access, ORDERS, {"first": 100, "lines": 10})  # 2 + 100 × 15
    assert answer.status_code == 200 and answer.json() == fixture("graphql_max_cost.json")
    assert env.sb.available(SHOP, KEY) == 2000


# ---- versions -----------------------------------------------------------------------------------


def test_versions_fall_forward_and_deprecation_header(env: Env) -> None:
    access = env.install()["access_token"]
    served = {v: env.graphql(access, SHOP_QUERY, version=v).headers["X-Shopify-API-Version"]
              for v in ("2025-10", "2025-04", "2025-08", "2027-01", "unstable")}
    assert served == {"2025-10": "2025-10", "2025-04": "2025-07", "2025-08": "2025-10",
                      "2027-01": "2026-10", "unstable": "unstable"}
    assert "X-Shopify-API-Deprecated-Reason" not in env.graphql(access, SHOP_QUERY).headers
    env.sb.deprecated_versions.add("2025-07")
    old = env.graphql(access, SHOP_QUERY, version="2025-01")
    reason = "https://shopify.dev/api/usage/versioning#deprecation-practices"
    assert old.headers["X-Shopify-API-Deprecated-Reason"] == reason
    assert env.sb.graphql_requests[-1]["version"] == "2025-01"
    assert env.sb.graphql_requests[-1]["served_version"] == "2025-07"
    assert env.graphql(access, SHOP_QUERY, version="latest").status_code == 404


# ---- webhooks -----------------------------------------------------------------------------------


def test_webhook_subscription_create_is_recorded(env: Env) -> None:
    access = env.install()["access_token"]
    created = env.graphql(access, SUBSCRIBE % HOOKS).json()
    assert shape(created) == shape(fixture("graphql_webhook_subscription_create.json"))
    assert created["extensions"] == fixture("graphql_webhook_subscription_create.json")["extensions"]
    legacy = """mutation Sub($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
      webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
        webhookSubscription { id topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
        userErrors { field message }
      }
    }"""
    variables = {"topic": "APP_UNINSTALLED", "sub": {"callbackUrl": HOOKS, "format": "JSON"}}
    second = env.graphql(access, legacy, variables).json()["data"]["webhookSubscriptionCreate"]
    assert second["userErrors"] == []
    assert second["webhookSubscription"]["endpoint"] == {"__typename": "WebhookHttpEndpoint", "callbackUrl": HOOKS}
    env.graphql(access, SUBSCRIBE % HOOKS)  # duplicates are recorded too
    subs = env.sb.subscriptions[SHOP]
    assert [(s["topic"], s["uri"]) for s in subs] == [("ORDERS_CREATE", HOOKS), ("APP_UNINSTALLED", HOOKS),
                                                      ("ORDERS_CREATE", HOOKS)]
    assert subs[0]["id"] == created["data"]["webhookSubscriptionCreate"]["webhookSubscription"]["id"]

    listed = env.graphql(access, "{ webhookSubscriptions(first: 10, topics: [ORDERS_CREATE]) "
                                 "{ nodes { id topic uri } } }").json()
    assert listed["data"]["webhookSubscriptions"]["nodes"] == [subs[0], subs[2]]
    bad = env.graphql(access, SUBSCRIBE % "not a url").json()["data"]["webhookSubscriptionCreate"]
    assert bad["webhookSubscription"] is None and bad["userErrors"][0]["message"] == "Address is invalid"


@dataclass
class Receiver:
    url: str
    hooks: list[dict[str, Any]]


def receiver(request: pytest.FixtureRequest) -> Receiver:
    """A stand-in for the bot's webhook endpoint that keeps what it got."""
    hooks: list[dict[str, Any]] = []
    app = Flask("receiver")

    @app.post("/hooks")
    def hook() -> tuple[str, int]:
        hooks.append({"headers": dict(flask_request.headers), "body": flask_request.get_data()})
        return "", 200

    server = serve(app)
    request.addfinalizer(server.close)
    return Receiver(server.url + "/hooks", hooks)


def test_send_webhook_with_real_headers_and_signature(request: pytest.FixtureRequest, env: Env) -> None:
    received = receiver(request)
    (order,) = env.sb.add_orders(SHOP, 1, start=START, every=timedelta(hours=1), protected_customer=False)
    payload = env.sb.rest_order(SHOP, order["id"])
    assert shape(payload) == shape(fixture("webhook_orders_create.json"))
    assert payload["created_at"] == "2026-11-22T00:00:00+09:00" and payload["total_price"] == "33000.00"

    answer = env.sb.send_webhook(received.url, topic="orders/create", shop=SHOP, payload=payload, secret=SECRET,
                                 webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", event_id="ev-1")
    assert answer.status_code == 200
    (hook,) = received.hooks
    headers, body = hook["headers"], hook["body"]
    assert json.loads(body) == payload
    assert verify_webhook(body, headers["X-Shopify-Hmac-Sha256"], [SECRET])
    assert headers["X-Shopify-Topic"] == "orders/create" and headers["X-Shopify-Shop-Domain"] == SHOP
    assert headers["X-Shopify-Api-Version"] == "2025-10"
    assert headers["X-Shopify-Webhook-Id"] == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert headers["X-Shopify-Event-Id"] == "ev-1"
    assert datetime.fromisoformat(headers["X-Shopify-Triggered-At"]).timestamp() == NOW

    env.sb.send_webhook(received.url, topic="orders/create", shop=SHOP, payload=payload, secret=SECRET,
                        hmac_override="forged")
    assert not verify_webhook(received.hooks[1]["body"], received.hooks[1]["headers"]["X-Shopify-Hmac-Sha256"],
                              [SECRET])
    assert received.hooks[1]["headers"]["X-Shopify-Webhook-Id"] != headers["X-Shopify-Webhook-Id"]  # uuid4

    protected = env.sb.add_order(SHOP, createdAt=START)
    assert "customer" not in env.sb.rest_order(SHOP, protected["id"])


# ---- scripting, latency, plumbing -----------------------------------------------------------------


def test_fail_next_and_hang_next_match_path_suffixes(env: Env) -> None:
    access = env.install()["access_token"]
    env.sb.fail_next("/graphql.json", 500, INTERNAL_ERROR, times=2)
    answers = [env.graphql(access, SHOP_QUERY) for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 200]
    assert answers[0].json() == INTERNAL_ERROR
    assert env.sb.count("/graphql.json") == 3
    assert ("POST", f"/{SHOP}/admin/api/2025-10/graphql.json") in env.sb.calls

    env.sb.hang_next("/graphql.json", 1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{env.url}/{SHOP}/admin/api/2025-10/graphql.json", json={"query": SHOP_QUERY},
                      headers={"X-Shopify-Access-Token": access}, timeout=0.2)
    assert env.graphql(access, SHOP_QUERY).status_code == 200  # only the next one hangs


def test_works_with_latency_and_concurrent_clients(request: pytest.FixtureRequest) -> None:
    env = start(request, latency=0.01)
    access = env.install()["access_token"]
    statuses: list[int] = []

    def call() -> None:
        statuses.append(env.graphql(access, SHOP_QUERY).status_code)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 5
    assert env.sb.available(SHOP, KEY) == 1995


def test_unknown_paths_and_shops(env: Env) -> None:
    assert requests.get(f"{env.url}/{SHOP}/admin/nothing", timeout=5).status_code == 404
    assert requests.get(f"{env.url}/{SHOP}/admin/oauth/access_token", timeout=5).status_code == 405
    with pytest.raises(KeyError):
        env.sb.add_orders("ghost.myshopify.com", 1, start=START, every=timedelta(hours=1))
    with pytest.raises(ValueError):
        env.sb.add_shop("evil.example.com")
