"""Issue 8 item 8: a 401 from the Admin API on a token the bot can renew (an expiring OAuth token with
its refresh token, client credentials) renews it once and asks again; the install is marked only when
the renewal fails or the renewed token is refused too. Shopify mocked with `responses`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl

import pytest
import responses
from cryptography.fernet import Fernet
from sqlalchemy import select

from bot.shopify.client import ShopifyApp, ShopifyHttp, ShopifyOAuth, ShopifyTokenAnswer
from bot.shopify.errors import ShopifyAuthError, ShopifyReauthRequired, ShopifyUnavailable
from bot.shopify.graphql import ShopifyGraphQL
from bot.store.db import Database
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from tokens.models import ShopifyInstall
from tokens.shopify import ShopifyTokens
from tokens.vault import Vault

from upstream_fixtures import load_fixture

SHOP = "some-shop.myshopify.com"
VERSION = "2026-07"
GRAPHQL = f"https://{SHOP}/admin/api/{VERSION}/graphql.json"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
APP = ShopifyApp("default", api_key="key-default", api_secret="secret-default")
SHOP_ANSWER = {"data": {"shop": {"name": "Some Shop"}}}
REFUSED = load_fixture("shopify/error_401.json")


class Setup:
    def __init__(self, tmp_path: Path, clock: Any, rsps: responses.RequestsMock):
        self.db = Database(f"sqlite:///{tmp_path / 'unit.sqlite3'}")
        self.db.migrate()
        self.vault = Vault(Fernet.generate_key().decode())
        http = ShopifyHttp(new_session(), timeout=5, retry=RetryPolicy(attempts=2, base_delay=0,
                                                                       sleep=lambda _s: None))
        oauth = ShopifyOAuth(http, origin="https://{shop}", app=APP)
        self.tokens = ShopifyTokens(self.db, self.vault, oauth_for=lambda _name: oauth, clock=clock)
        self.gql = ShopifyGraphQL(http, origin="https://{shop}", shop=SHOP, api_version=VERSION,
                                  tokens=self.tokens.source(SHOP), sleep=lambda _s: None)
        self.rsps = rsps

    def connect(self, mode: str = "oauth", refresh: str | None = "shprt_stored") -> None:
        expires = None if mode == "legacy" else 3600
        answer = ShopifyTokenAnswer("shpua_old", "read_orders", expires, refresh, 7_776_000 if refresh else None)
        self.tokens.store(APP.name, SHOP, mode, answer)

    def graphql_tokens(self) -> list[str]:
        return [call.request.headers["X-Shopify-Access-Token"] for call in self.rsps.calls
                if call.request.url == GRAPHQL]

    def token_forms(self) -> list[dict[str, str]]:
        return [dict(parse_qsl(call.request.body)) for call in self.rsps.calls if call.request.url == TOKEN_URL]

    def status(self) -> str:
        return self.tokens.status(SHOP, APP.name).status

    def stored(self) -> tuple[str, str | None]:
        with self.db.session() as session:
            row = session.execute(select(ShopifyInstall)).scalar_one()
            refresh = self.vault.decrypt(row.refresh_token_enc) if row.refresh_token_enc else None
            return self.vault.decrypt(row.access_token_enc), refresh


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def unit(tmp_path: Path, clock: Any, rsps: responses.RequestsMock) -> Iterator[Setup]:
    setup = Setup(tmp_path, clock, rsps)
    yield setup
    setup.db.dispose()


def test_a_401_on_an_expiring_token_refreshes_once_and_asks_again(unit: Setup) -> None:
    unit.connect()
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    unit.rsps.post(TOKEN_URL, json=load_fixture("shopify/token_expiring.json"))
    unit.rsps.post(GRAPHQL, json=SHOP_ANSWER)
    assert unit.gql.query("{ shop { name } }") == SHOP_ANSWER["data"]
    fresh = load_fixture("shopify/token_expiring.json")
    assert unit.graphql_tokens() == ["shpua_old", fresh["access_token"]]
    (form,) = unit.token_forms()
    assert (form["grant_type"], form["refresh_token"]) == ("refresh_token", "shprt_stored")
    assert unit.status() == "active"
    assert unit.stored() == (fresh["access_token"], fresh["refresh_token"])  # stored before it was used


def test_a_refused_refresh_needs_the_merchant_and_asks_nothing_more(unit: Setup) -> None:
    unit.connect()
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    unit.rsps.post(TOKEN_URL, status=400, json=load_fixture("shopify/error_invalid_grant.json"))
    with pytest.raises(ShopifyReauthRequired, match="shopify install"):
        unit.gql.query("{ shop { name } }")
    assert unit.status() == "needs_reauth"
    assert unit.graphql_tokens() == ["shpua_old"]


def test_a_renewed_token_refused_too_marks_the_install_after_one_refresh(unit: Setup) -> None:
    unit.connect()
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    unit.rsps.post(TOKEN_URL, json=load_fixture("shopify/token_expiring.json"))
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    with pytest.raises(ShopifyAuthError):
        unit.gql.query("{ shop { name } }")
    assert unit.status() == "invalid" and len(unit.token_forms()) == 1


def test_a_token_endpoint_that_is_down_leaves_the_install_active(unit: Setup) -> None:
    unit.connect()
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    unit.rsps.post(TOKEN_URL, status=503, body="")
    unit.rsps.post(TOKEN_URL, status=503, body="")
    with pytest.raises(ShopifyUnavailable):
        unit.gql.query("{ shop { name } }")
    assert unit.status() == "active"
    assert unit.stored() == ("shpua_old", "shprt_stored")


def test_client_credentials_ask_for_a_new_token_once(unit: Setup) -> None:
    unit.connect("client_credentials", refresh=None)
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    unit.rsps.post(TOKEN_URL, json=load_fixture("shopify/token_client_credentials.json"))
    unit.rsps.post(GRAPHQL, json=SHOP_ANSWER)
    assert unit.gql.query("{ shop { name } }") == SHOP_ANSWER["data"]
    assert unit.token_forms()[0]["grant_type"] == "client_credentials"
    assert unit.status() == "active"


@pytest.mark.parametrize("mode, refresh", [("legacy", None), ("oauth", None)])
def test_a_token_that_cannot_be_renewed_is_marked_at_once(unit: Setup, mode: str, refresh: str | None) -> None:
    unit.connect(mode, refresh=refresh)
    unit.rsps.post(GRAPHQL, status=401, json=REFUSED)
    with pytest.raises(ShopifyAuthError):
        unit.gql.query("{ shop { name } }")
    assert unit.status() == "invalid" and unit.token_forms() == []


def test_a_403_is_not_a_token_problem_a_refresh_could_fix(unit: Setup) -> None:
    unit.connect()
    unit.rsps.post(GRAPHQL, status=403, json={"errors": "[API] This action requires merchant approval"})
    with pytest.raises(ShopifyAuthError):
        unit.gql.query("{ shop { name } }")
    assert unit.status() == "invalid" and unit.token_forms() == []


def test_a_token_renewed_by_another_caller_is_used_without_asking_shopify(unit: Setup) -> None:
    unit.connect()
    source = unit.tokens.source(SHOP)
    assert source.access_token() == "shpua_old"
    unit.tokens.store(APP.name, SHOP, "oauth", ShopifyTokenAnswer("shpua_other", "read_orders", 3600, "shprt_o",
                                                                  7_776_000))
    assert source.renew_refused() is True
    assert source.access_token() == "shpua_other" and unit.token_forms() == []
    assert unit.stored() == ("shpua_other", "shprt_o")
