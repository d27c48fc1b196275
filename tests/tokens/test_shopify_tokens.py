"""tokens.shopify: Shopify token minting per connection mode — reuse, one-time refresh tokens,
commit before use, concurrency (threads and processes), dead grants, uninstall, secrecy, and
apps and shops that never share a token.

Unit level: ShopifyTokens on a SQLite file with a fake clock; Shopify's token endpoint is a
`responses` callback that behaves like Shopify at its strictest (refresh tokens are one-time use, as
before 2026-08-28's recovery rule — the bot must never need that rule; each app has
its own credentials, tokens belong to one app on one shop). The multi-process test serves a
small Flask token endpoint over loopback and runs on PostgreSQL (and on a shared SQLite file).
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from cryptography.fernet import Fernet
from sqlalchemy import event, select, update

from bot.sandbox.server import serve
from bot.shopify.client import ShopifyApp, ShopifyHttp, ShopifyOAuth, ShopifyTokenAnswer
from bot.shopify.errors import (
    ShopifyBadCredentials,
    ShopifyReauthRequired,
    ShopifyUnavailable,
    ShopNotConnected,
)
from bot.store.db import Database, utcnow
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from tokens.models import ShopifyInstall
from tokens.shopify import REFRESH_MARGIN, ShopifyTokens
from tokens.vault import Vault

SHOP = "some-shop.myshopify.com"
OTHER_SHOP = "other-shop.myshopify.com"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
TOKEN_URLS = re.compile(r"https://([a-z0-9-]+\.myshopify\.com)/admin/oauth/access_token")
APPS = {
    "default": ShopifyApp("default", api_key="key-default", api_secret="secret-default"),
    "second": ShopifyApp("second", api_key="key-second", api_secret="secret-second"),
}
ACCESS_TTL = 3600
REFRESH_TTL = 7_776_000
CC_TTL = 86_399
NO_SLEEP = RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None)


# =============================================================================================
# A token endpoint that behaves like Shopify's
# =============================================================================================


@dataclass
class FakeShopify:
    """POST /admin/oauth/access_token of every shop: refresh tokens are one-time use and belong to
    the (app, shop) they were issued for; client credentials are checked per app."""

    apps: dict[str, str] = field(default_factory=lambda: {app.api_key: app.api_secret for app in APPS.values()})
    forms: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (shop, form) per request
    issued: list[str] = field(default_factory=list)  # every token value handed out
    valid_refresh: dict[str, tuple[str, str]] = field(default_factory=dict)  # refresh token → (client_id, shop)
    scripted: list[tuple[int, dict]] = field(default_factory=list)  # next answers, before any logic
    delay: float = 0.0  # seconds each answer takes (keeps a refresh window open for concurrent callers)
    counter: Any = field(default_factory=lambda: itertools.count(1))

    def grant(self, client_id: str = "key-default", shop: str = SHOP, access: str | None = None,
              refresh: str | None = None) -> ShopifyTokenAnswer:
        """An OAuth pair as a code exchange would give it (the refresh token is valid here)."""
        n = next(self.counter)
        access, refresh = access or f"shpua_seed{n}", refresh or f"shprt_seed{n}"
        self.valid_refresh[refresh] = (client_id, shop)
        self.issued += [access, refresh]
        return ShopifyTokenAnswer(access, "read_orders", ACCESS_TTL, refresh, REFRESH_TTL)

    def callback(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        shop = TOKEN_URLS.fullmatch(request.url).group(1)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        form = dict(parse_qsl(body or "", keep_blank_values=True))
        self.forms.append((shop, form))
        if self.delay:
            time.sleep(self.delay)
        if self.scripted:
            status, answer = self.scripted.pop(0)
            return status, {}, json.dumps(answer)
        client_id = form.get("client_id", "")
        if self.apps.get(client_id) != form.get("client_secret"):
            return 401, {}, json.dumps({"error": "invalid_client", "error_description": "Client authentication failed"})
        n = next(self.counter)
        tag = f"{client_id.removeprefix('key-')}{n}"
        if form.get("grant_type") == "client_credentials":
            access = f"shpat_cc{tag}"
            self.issued.append(access)
            return 200, {}, json.dumps({"access_token": access, "scope": "read_orders", "expires_in": CC_TTL})
        if form.get("grant_type") == "refresh_token":
            owner = self.valid_refresh.pop(form.get("refresh_token", ""), None)  # one-time use
            if owner != (client_id, shop):
                return 400, {}, json.dumps({"error": "invalid_grant",
                                            "error_description": "refresh token is invalid or was already used"})
            access, refresh = f"shpua_{tag}", f"shprt_{tag}"
            self.valid_refresh[refresh] = (client_id, shop)
            self.issued += [access, refresh]
            return 200, {}, json.dumps({"access_token": access, "expires_in": ACCESS_TTL, "refresh_token": refresh,
                                        "refresh_token_expires_in": REFRESH_TTL, "scope": "read_orders"})
        return 400, {}, json.dumps({"error": "unsupported_grant_type"})

    def refreshes(self, shop: str | None = None) -> list[dict[str, str]]:
        return [form for where, form in self.forms
                if form.get("grant_type") == "refresh_token" and (shop is None or where == shop)]


@dataclass
class Unit:
    db: Database
    vault: Vault
    tokens: ShopifyTokens
    shopify: FakeShopify
    clock: Any

    def seed(self, app: str = "default", shop: str = SHOP, **kwargs: str) -> ShopifyTokenAnswer:
        answer = self.shopify.grant(APPS[app].api_key, shop, **kwargs)
        self.tokens.store(app, shop, "oauth", answer)
        return answer

    def row(self, shop: str = SHOP, app: str = "default") -> ShopifyInstall:
        with self.db.session() as session:
            row = session.execute(select(ShopifyInstall).where(ShopifyInstall.shop == shop,
                                                               ShopifyInstall.app == app)).scalar_one()
            session.expunge(row)
            return row

    def stored(self, shop: str = SHOP, app: str = "default") -> tuple[str, str | None]:
        row = self.row(shop, app)
        refresh = self.vault.decrypt(row.refresh_token_enc) if row.refresh_token_enc else None
        return self.vault.decrypt(row.access_token_enc), refresh

    def db_bytes(self) -> bytes:
        path = Path(self.db.engine.url.database)
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def oauth_factory(http: ShopifyHttp, origin: str = "https://{shop}"):  # noqa: ANN201
    made: dict[str, ShopifyOAuth] = {}

    def oauth_for(name: str) -> ShopifyOAuth:
        return made.setdefault(name, ShopifyOAuth(http, origin=origin, app=APPS[name]))

    return oauth_for


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def unit(tmp_path: Path, clock: Any, rsps: responses.RequestsMock) -> Iterator[Unit]:
    db = Database(f"sqlite:///{tmp_path / 'unit.sqlite3'}")
    db.migrate()
    vault = Vault(Fernet.generate_key().decode())
    http = ShopifyHttp(new_session(), timeout=5, retry=NO_SLEEP)
    shopify = FakeShopify()
    rsps.add_callback("POST", TOKEN_URLS, callback=shopify.callback)
    yield Unit(db, vault, ShopifyTokens(db, vault, oauth_for=oauth_factory(http), clock=clock), shopify, clock)
    db.dispose()


# =============================================================================================
# Storing, per mode
# =============================================================================================


def test_store_oauth_pair_is_encrypted_with_expiries_and_reported_without_tokens(unit):
    answer = unit.shopify.grant(access="shpua_first", refresh="shprt_first")
    status = unit.tokens.store("default", "Some-Shop.myshopify.com", "oauth", answer)

    assert (status.app, status.shop, status.mode, status.status) == ("default", SHOP, "oauth", "active")
    assert status.scopes == ("read_orders",)
    assert status.access_expires_at == unit.clock() + timedelta(seconds=ACCESS_TTL)
    assert status.refresh_expires_at == unit.clock() + timedelta(seconds=REFRESH_TTL)
    assert status.installed_at == unit.clock() and status.status_reason is None
    row = unit.row()
    assert "shpua_first" not in row.access_token_enc and "shprt_first" not in (row.refresh_token_enc or "")
    assert unit.stored() == ("shpua_first", "shprt_first")
    assert "shpua_first" not in repr(status) and "shprt_first" not in repr(status)
    assert unit.tokens.access_token(SHOP) == "shpua_first"
    assert unit.shopify.forms == []


def test_store_rejects_an_unknown_mode_and_a_shop_that_is_not_a_shop(unit):
    with pytest.raises(ValueError, match="mode"):
        unit.tokens.store("default", SHOP, "password", ShopifyTokenAnswer("t", ""))
    with pytest.raises(ValueError, match="shop domain"):
        unit.tokens.store("default", "evil.com", "oauth", ShopifyTokenAnswer("t", ""))
    assert unit.tokens.all_status() == []


def test_legacy_token_is_returned_as_is_forever(unit):
    status = unit.tokens.store_legacy("default", SHOP, "shpat_legacy1", "read_orders,read_products")
    assert status.mode == "legacy" and status.access_expires_at is None
    assert status.scopes == ("read_orders", "read_products")
    unit.clock.advance(days=3 * 365)
    assert [unit.tokens.access_token(SHOP) for _ in range(3)] == ["shpat_legacy1"] * 3
    assert unit.shopify.forms == []


def test_oauth_token_without_expiry_is_returned_as_is(unit):
    unit.tokens.store("default", SHOP, "oauth", ShopifyTokenAnswer("shpat_offline", "read_orders"))
    unit.clock.advance(days=400)
    assert unit.tokens.access_token(SHOP, "default") == "shpat_offline"
    assert unit.shopify.forms == []


def test_store_replaces_the_install_and_makes_it_active_again(unit):
    unit.seed(access="shpua_old", refresh="shprt_old")
    unit.tokens.rejected(SHOP, "default", "HTTP 401")
    assert unit.tokens.status(SHOP, "default").status == "invalid"

    unit.clock.advance(hours=1)
    status = unit.tokens.store("default", SHOP, "client_credentials", ShopifyTokenAnswer("shpat_cc", "read_orders",
                                                                                         CC_TTL))
    assert (status.mode, status.status, status.status_reason) == ("client_credentials", "active", None)
    assert status.refresh_expires_at is None and status.installed_at == unit.clock()
    assert unit.stored() == ("shpat_cc", None)
    assert len(unit.tokens.all_status()) == 1


# =============================================================================================
# OAuth: reuse, refresh with one-time refresh tokens, commit before use
# =============================================================================================


def test_access_token_is_reused_while_outside_the_margin(unit):
    unit.seed(access="shpua_1")
    unit.clock.advance(seconds=ACCESS_TTL - REFRESH_MARGIN.total_seconds() - 1)
    assert [unit.tokens.access_token(SHOP) for _ in range(3)] == ["shpua_1"] * 3
    assert unit.shopify.forms == []


@pytest.mark.parametrize("left", [REFRESH_MARGIN, timedelta(seconds=1), timedelta(0), timedelta(hours=-5)])
def test_refresh_inside_the_margin_stores_the_new_pair_encrypted(unit, left):
    unit.seed(access="shpua_1", refresh="shprt_1")
    unit.clock.advance(seconds=ACCESS_TTL - left.total_seconds())

    token = unit.tokens.access_token(SHOP)

    assert token.startswith("shpua_default") and token != "shpua_1"
    assert unit.shopify.refreshes() == [{"client_id": "key-default", "client_secret": "secret-default",
                                         "grant_type": "refresh_token", "refresh_token": "shprt_1"}]
    access, refresh = unit.stored()
    assert access == token and refresh is not None and refresh.startswith("shprt_default") and refresh != "shprt_1"
    row = unit.row()
    assert token not in row.access_token_enc and refresh not in (row.refresh_token_enc or "")
    status = unit.tokens.status(SHOP, "default")
    assert status.access_expires_at == unit.clock() + timedelta(seconds=ACCESS_TTL)
    assert status.refresh_expires_at == unit.clock() + timedelta(seconds=REFRESH_TTL)
    assert status.refreshed_at == unit.clock()
    assert unit.tokens.access_token(SHOP) == token  # then reused
    assert len(unit.shopify.refreshes()) == 1


def test_a_used_refresh_token_is_never_sent_again(unit):
    unit.seed(refresh="shprt_1")
    tokens = []
    for _ in range(4):
        unit.clock.advance(seconds=ACCESS_TTL)
        tokens.append(unit.tokens.access_token(SHOP))

    sent = [form["refresh_token"] for form in unit.shopify.refreshes()]
    assert len(sent) == 4 and len(set(sent)) == 4 and sent[0] == "shprt_1"
    assert len(set(tokens)) == 4
    # Each refresh sent the token the previous one stored (the fake refuses any other).
    assert unit.tokens.status(SHOP, "default").status == "active"
    assert unit.stored()[1] in unit.shopify.valid_refresh


def test_failed_commit_returns_no_token_and_keeps_the_old_pair(unit):
    unit.seed(access="shpua_1", refresh="shprt_1")
    unit.clock.advance(seconds=ACCESS_TTL)

    def refuse_install_writes(session) -> None:  # noqa: ANN001
        if any(isinstance(obj, ShopifyInstall) for obj in session.dirty):
            raise RuntimeError("disk I/O error")

    event.listen(unit.db.sessions, "before_commit", refuse_install_writes)
    try:
        with pytest.raises(RuntimeError, match="disk I/O error"):
            unit.tokens.access_token(SHOP)
    finally:
        event.remove(unit.db.sessions, "before_commit", refuse_install_writes)

    assert len(unit.shopify.refreshes()) == 1
    assert unit.stored() == ("shpua_1", "shprt_1")  # nothing half-written


def test_the_new_pair_is_committed_when_the_access_token_is_returned(unit):
    """Another instance (its own engine) sees the new pair by the time the caller has the token."""
    unit.seed(access="shpua_1", refresh="shprt_1")
    unit.clock.advance(seconds=ACCESS_TTL)
    token = unit.tokens.access_token(SHOP)
    other = Database(unit.db.url)
    try:
        with other.session() as session:
            row = session.execute(select(ShopifyInstall)).scalar_one()
            assert unit.vault.decrypt(row.access_token_enc) == token != "shpua_1"
            assert unit.vault.decrypt(row.refresh_token_enc) == unit.shopify.issued[-1] != "shprt_1"
    finally:
        other.dispose()


def test_eight_threads_on_an_expiring_token_cause_one_refresh(unit):
    unit.seed(access="shpua_1", refresh="shprt_1")
    unit.clock.advance(seconds=ACCESS_TTL - 60)
    unit.shopify.delay = 0.2  # a slow refresh: the other threads arrive while it runs
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def mint() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(unit.tokens.access_token(SHOP))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(unit.shopify.refreshes()) == 1
    assert len(results) == 8 and set(results) == {unit.stored()[0]} and results[0] != "shpua_1"
    assert unit.tokens.status(SHOP, "default").status == "active"


# =============================================================================================
# Dead grants and refused credentials: a person must act, nothing retries
# =============================================================================================


def test_invalid_grant_needs_reauth_naming_shopify_install_and_stops_asking(unit):
    unit.seed(refresh="shprt_1")
    unit.shopify.valid_refresh.clear()  # the merchant revoked it
    unit.clock.advance(seconds=ACCESS_TTL)

    with pytest.raises(ShopifyReauthRequired) as first:
        unit.tokens.access_token(SHOP)
    message = str(first.value)
    assert f"shopify install {SHOP} --app default" in message and SHOP in message
    status = unit.tokens.status(SHOP, "default")
    assert status.status == "needs_reauth"
    assert "invalid_grant" in status.status_reason and f"shopify install {SHOP} --app default" in status.status_reason
    assert "shprt_1" not in message and "shprt_1" not in status.status_reason

    requests_so_far = len(unit.shopify.forms)
    source = unit.tokens.source(SHOP)
    for attempt in (lambda: unit.tokens.access_token(SHOP), lambda: unit.tokens.access_token(SHOP, "default"),
                    source.access_token):
        with pytest.raises(ShopNotConnected) as again:
            attempt()
        assert "shopify install" in str(again.value) and "invalid_grant" in str(again.value)
    assert len(unit.shopify.forms) == requests_so_far == 1


def test_invalid_client_marks_the_install_invalid(unit):
    unit.seed(refresh="shprt_1")
    unit.shopify.apps["key-default"] = "a-rotated-secret"  # the app's secret changed at Shopify
    unit.clock.advance(seconds=ACCESS_TTL)

    with pytest.raises(ShopifyBadCredentials) as caught:
        unit.tokens.access_token(SHOP)
    assert SHOP in str(caught.value) and "'default'" in str(caught.value)
    status = unit.tokens.status(SHOP, "default")
    assert status.status == "invalid" and "invalid_client" in status.status_reason
    with pytest.raises(ShopNotConnected):
        unit.tokens.access_token(SHOP)
    assert len(unit.shopify.forms) == 1


def test_expired_refresh_token_needs_reauth_without_asking_shopify(unit):
    unit.seed()
    unit.clock.advance(seconds=REFRESH_TTL)
    with pytest.raises(ShopifyReauthRequired) as caught:
        unit.tokens.access_token(SHOP)
    assert "expired" in str(caught.value) and "shopify install" in str(caught.value)
    assert unit.shopify.forms == []
    assert unit.tokens.status(SHOP, "default").status == "needs_reauth"


def test_persistent_5xx_fails_without_marking_the_install(unit):
    unit.seed(access="shpua_1", refresh="shprt_1")
    unit.clock.advance(seconds=ACCESS_TTL)
    unit.shopify.scripted = [(503, {"error": "unavailable"})] * 3
    with pytest.raises(ShopifyUnavailable):
        unit.tokens.access_token(SHOP)
    assert len(unit.shopify.forms) == 3  # retried per policy: a 5xx spent no refresh token
    assert unit.tokens.status(SHOP, "default").status == "active"
    assert unit.stored() == ("shpua_1", "shprt_1")
    assert unit.tokens.access_token(SHOP) != "shpua_1"  # Shopify is back: the kept refresh token works


# =============================================================================================
# Client credentials
# =============================================================================================


def test_client_credentials_token_is_renewed_near_its_24_hours(unit):
    status = unit.tokens.store("default", SHOP, "client_credentials",
                               ShopifyTokenAnswer("shpat_cc_first", "read_orders", CC_TTL))
    assert status.access_expires_at == unit.clock() + timedelta(seconds=CC_TTL)

    unit.clock.advance(hours=23, minutes=50)
    assert unit.tokens.access_token(SHOP) == "shpat_cc_first"
    assert unit.shopify.forms == []

    unit.clock.advance(minutes=6)  # 3 minutes left: inside the margin
    renewed = unit.tokens.access_token(SHOP)
    assert renewed.startswith("shpat_ccdefault")
    assert unit.shopify.forms == [(SHOP, {"client_id": "key-default", "client_secret": "secret-default",
                                          "grant_type": "client_credentials"})]
    assert unit.stored() == (renewed, None)
    assert unit.tokens.status(SHOP, "default").access_expires_at == unit.clock() + timedelta(seconds=CC_TTL)
    assert unit.tokens.access_token(SHOP) == renewed and len(unit.shopify.forms) == 1


def test_client_credentials_refused_marks_invalid_and_names_shopify_connect(unit):
    unit.tokens.store("default", SHOP, "client_credentials", ShopifyTokenAnswer("shpat_cc", "read_orders", CC_TTL))
    unit.shopify.apps.pop("key-default")  # the app was deleted
    unit.clock.advance(days=1)
    with pytest.raises(ShopifyBadCredentials):
        unit.tokens.access_token(SHOP)
    with pytest.raises(ShopNotConnected) as caught:
        unit.tokens.access_token(SHOP)
    assert f"shopify connect {SHOP} --app default" in str(caught.value)
    assert len(unit.shopify.forms) == 1


# =============================================================================================
# What the Admin API and webhooks say: rejected, uninstalled
# =============================================================================================


@pytest.mark.parametrize("mode, hint", [("oauth", "shopify install"), ("client_credentials", "shopify connect"),
                                        ("legacy", "shopify add-token")])
def test_rejected_marks_invalid_and_later_calls_fail_without_http(unit, mode, hint):
    unit.tokens.store("default", SHOP, mode, ShopifyTokenAnswer("shpat_x", "read_orders", CC_TTL if mode != "legacy"
                                                                else None))
    unit.tokens.rejected(SHOP, "default", "HTTP 401 from the Admin API")
    status = unit.tokens.status(SHOP, "default")
    assert status.status == "invalid" and "HTTP 401" in status.status_reason
    unit.clock.advance(days=2)  # even an expired token is not renewed for an invalid install
    with pytest.raises(ShopNotConnected) as caught:
        unit.tokens.access_token(SHOP)
    assert hint in str(caught.value) and SHOP in str(caught.value) and "'default'" in str(caught.value)
    assert unit.shopify.forms == []


def test_source_rejection_of_a_token_already_replaced_keeps_the_install(unit):
    unit.seed(access="shpua_1")
    source = unit.tokens.source(SHOP)
    assert source.access_token() == "shpua_1"
    unit.clock.advance(seconds=ACCESS_TTL)
    unit.tokens.access_token(SHOP)  # another caller renewed meanwhile
    source.rejected("HTTP 401")  # the refusal was of the old token
    assert unit.tokens.status(SHOP, "default").status == "active"

    fresh = source.access_token()
    source.rejected("HTTP 401")  # a refusal of the current token counts
    assert fresh != "shpua_1"
    assert unit.tokens.status(SHOP, "default").status == "invalid"


def test_uninstalled_wipes_the_token_ciphertext_from_the_database_file(unit):
    unit.seed(access="shpua_1", refresh="shprt_1")
    unit.clock.advance(seconds=ACCESS_TTL)
    unit.tokens.access_token(SHOP)  # a refresh: the row was rewritten once
    row = unit.row()
    ciphertexts = [row.access_token_enc.encode(), row.refresh_token_enc.encode()]
    assert all(c in unit.db_bytes() for c in ciphertexts)  # the check below can see them

    unit.tokens.uninstalled(SHOP, "default")

    raw = unit.db_bytes()
    for ciphertext in ciphertexts:
        assert ciphertext not in raw
    row = unit.row()
    assert row.access_token_enc == "" and row.refresh_token_enc is None
    status = unit.tokens.status(SHOP, "default")
    assert status.status == "uninstalled" and "uninstalled" in status.status_reason
    with pytest.raises(ShopNotConnected) as caught:
        unit.tokens.access_token(SHOP)
    assert "uninstalled" in str(caught.value) and "shopify install" in str(caught.value)
    assert len(unit.shopify.forms) == 1
    unit.tokens.uninstalled(SHOP, "second")  # an app that was never installed: nothing happens
    assert len(unit.tokens.all_status()) == 1


# =============================================================================================
# Several apps, several shops: no global session
# =============================================================================================


def test_two_apps_on_two_shops_in_alternation_keep_their_own_tokens(unit):
    unit.seed("default", SHOP, refresh="shprt_a")
    unit.seed("second", OTHER_SHOP, refresh="shprt_b")
    got: dict[tuple[str, str], list[str]] = {("default", SHOP): [], ("second", OTHER_SHOP): []}
    for _ in range(3):
        unit.clock.advance(seconds=ACCESS_TTL)
        for app, shop in (("default", SHOP), ("second", OTHER_SHOP)):
            got[(app, shop)].append(unit.tokens.access_token(shop, app))
            assert unit.stored(shop, app)[0] == got[(app, shop)][-1]

    assert all(token.startswith("shpua_default") for token in got[("default", SHOP)])
    assert all(token.startswith("shpua_second") for token in got[("second", OTHER_SHOP)])
    # Every refresh went to the right shop with the right app's credentials and its own refresh token.
    for shop, app in ((SHOP, "default"), (OTHER_SHOP, "second")):
        forms = unit.shopify.refreshes(shop)
        assert len(forms) == 3
        assert {(f["client_id"], f["client_secret"]) for f in forms} == {(APPS[app].api_key, APPS[app].api_secret)}
    assert all(status.status == "active" for status in unit.tokens.all_status())


def test_the_same_shop_installed_by_two_apps_keeps_two_rows(unit):
    unit.seed("default", SHOP, access="shpua_a", refresh="shprt_a")
    unit.clock.advance(minutes=1)
    unit.seed("second", SHOP, access="shpua_b", refresh="shprt_b")

    assert {(s.app, s.shop) for s in unit.tokens.all_status()} == {("default", SHOP), ("second", SHOP)}
    assert unit.tokens.access_token(SHOP, "default") == "shpua_a"
    assert unit.tokens.access_token(SHOP, "second") == "shpua_b"
    assert unit.tokens.access_token(SHOP) == "shpua_b"  # no app named: the most recent install

    unit.clock.advance(seconds=ACCESS_TTL)
    new_a = unit.tokens.access_token(SHOP, "default")
    assert unit.stored(SHOP, "second") == ("shpua_b", "shprt_b")  # untouched by the other app's refresh
    new_b = unit.tokens.access_token(SHOP, "second")
    assert new_a.startswith("shpua_default") and new_b.startswith("shpua_second")
    assert [f["refresh_token"] for f in unit.shopify.refreshes()] == ["shprt_a", "shprt_b"]

    unit.tokens.rejected(SHOP, "second", "HTTP 401")
    assert unit.tokens.access_token(SHOP) == new_a  # the other app's install still serves the shop
    assert unit.tokens.status(SHOP, "default").status == "active"


def test_no_install_is_not_connected_and_names_shopify_connect(unit):
    with pytest.raises(ShopNotConnected) as caught:
        unit.tokens.access_token(SHOP)
    assert f"python -m bot shopify connect {SHOP}" in str(caught.value)
    unit.seed("default", SHOP)
    with pytest.raises(ShopNotConnected) as other_app:
        unit.tokens.access_token(SHOP, "second")
    assert f"shopify connect {SHOP} --app second" in str(other_app.value)
    assert unit.tokens.status(SHOP, "second") is None
    assert unit.shopify.forms == []


# =============================================================================================
# Secrecy: no token in the database file or the logs
# =============================================================================================


def test_no_token_plaintext_in_the_database_file_or_the_logs(unit, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # bound parameters too
    unit.seed("default", SHOP)
    unit.tokens.store("second", OTHER_SHOP, "client_credentials", ShopifyTokenAnswer("shpat_ccfirst", "read_orders",
                                                                                     CC_TTL))
    unit.shopify.issued.append("shpat_ccfirst")
    unit.tokens.store_legacy("second", SHOP, "shpat_legacyvalue", "read_orders")
    unit.shopify.issued.append("shpat_legacyvalue")
    unit.clock.advance(days=1)
    unit.tokens.access_token(SHOP, "default")  # refresh
    unit.tokens.access_token(OTHER_SHOP)  # client credentials again
    unit.shopify.valid_refresh.clear()
    unit.clock.advance(days=1)
    with pytest.raises(ShopifyReauthRequired):
        unit.tokens.access_token(SHOP, "default")
    unit.tokens.rejected(OTHER_SHOP, "second", "HTTP 401")
    statuses = unit.tokens.all_status()

    assert len(unit.shopify.issued) == 7  # seed pair, cc, legacy, refreshed pair, cc renewed
    raw = unit.db_bytes()
    text = caplog.text + "\n".join(repr(record.args) + str(record.msg) for record in caplog.records)
    assert "shopify_installs" in text  # the SQL with its parameters was captured
    for token in unit.shopify.issued:
        assert token.encode() not in raw
        assert token not in text
        assert token not in repr(statuses)


# =============================================================================================
# Several processes sharing one database: one refresh
# =============================================================================================


class TokenEndpoint:
    """A Flask stand-in of /{shop}/admin/oauth/access_token that counts refreshes and answers slowly."""

    def __init__(self, latency: float = 0.5):
        from flask import Flask, jsonify, request

        self.latency, self.refreshes, self.valid = latency, [], set()
        self.counter, self.lock = itertools.count(1), threading.Lock()
        app = Flask("shopify-token-endpoint")

        @app.post("/<shop>/admin/oauth/access_token")
        def token(shop: str):  # noqa: ANN202
            form = request.form.to_dict()
            with self.lock:
                self.refreshes.append(form)
                alive = form.get("refresh_token") in self.valid
                self.valid.discard(form.get("refresh_token"))  # one-time use
                n = next(self.counter)
            time.sleep(self.latency)  # keeps the first refresh in flight while the other process arrives
            if not alive:
                return jsonify(error="invalid_grant", error_description="already used"), 400
            with self.lock:
                self.valid.add(f"shprt_mp{n}")
            return jsonify(access_token=f"shpua_mp{n}", expires_in=ACCESS_TTL, refresh_token=f"shprt_mp{n}",
                           refresh_token_expires_in=REFRESH_TTL, scope="read_orders")

        self.app = app


def _mp_tokens(db_url: str, secret_key: str, origin: str) -> ShopifyTokens:
    http = ShopifyHttp(new_session(), timeout=30, retry=RetryPolicy(attempts=1))
    return ShopifyTokens(Database(db_url), Vault(secret_key), oauth_for=oauth_factory(http, origin))


def mint_in_child(db_url: str, secret_key: str, origin: str, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: its own engine, vault and minter; waits for the others, mints once."""
    tokens = _mp_tokens(db_url, secret_key, origin)
    try:
        tokens.status(SHOP, "default")  # connect (and import everything) before the start line
        barrier.wait(timeout=60)
        results.put(("token", tokens.access_token(SHOP)))
    except Exception as exc:  # noqa: BLE001 — reported to the test process
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        tokens.db.dispose()


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def shared_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'shared.sqlite3'}"


def test_two_processes_on_an_expired_token_refresh_once(shared_db_url):
    endpoint = TokenEndpoint()
    secret_key = Fernet.generate_key().decode()
    with serve(endpoint.app) as server:
        origin = f"{server.url}/{{shop}}"
        tokens = _mp_tokens(shared_db_url, secret_key, origin)
        try:
            tokens.db.migrate()
            endpoint.valid.add("shprt_start")
            tokens.store("default", SHOP, "oauth",
                         ShopifyTokenAnswer("shpua_start", "read_orders", ACCESS_TTL, "shprt_start", REFRESH_TTL))
            with tokens.db.session() as session:
                session.execute(update(ShopifyInstall).values(access_expires_at=utcnow() - timedelta(minutes=1)))

            context = multiprocessing.get_context("spawn")
            barrier, results = context.Barrier(2), context.Queue()
            children = [context.Process(target=mint_in_child, args=(shared_db_url, secret_key, origin, barrier, results))
                        for _ in range(2)]
            for child in children:
                child.start()
            try:
                answers = [results.get(timeout=120) for _ in children]
            except queue.Empty:
                pytest.fail("a child process gave no answer")
            finally:
                for child in children:
                    child.join(timeout=30)
                    if child.is_alive():
                        child.terminate()
            assert [child.exitcode for child in children] == [0, 0]

            assert [kind for kind, _ in answers] == ["token", "token"], answers
            assert {token for _, token in answers} == {"shpua_mp1"}
            assert [form["refresh_token"] for form in endpoint.refreshes] == ["shprt_start"]
            with tokens.db.session() as session:
                row = session.execute(select(ShopifyInstall)).scalar_one()
                assert tokens.vault.decrypt(row.access_token_enc) == "shpua_mp1"
                assert tokens.vault.decrypt(row.refresh_token_enc) == "shprt_mp1"
                assert row.status == "active"
        finally:
            tokens.db.dispose()
