"""tokens.kakao: Kakao token minting — reuse, refresh, rotation, concurrency, dead logins, secrecy.

Two levels:
- unit: KakaoAuth/KakaoHttp/KakaoTokens built directly on a SQLite file, Kakao mocked with
  `responses` (exact forms, scripted answers, callbacks that look at the database mid-call);
- end to end: an App (make_app) talking over loopback to the Kakao stand-in, with the fake clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from cryptography.fernet import Fernet
from sqlalchemy import event

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.kakao.client import KakaoApi, KakaoAuth, KakaoHttp, TokenAnswer
from bot.kakao.errors import (
    KakaoAuthError,
    KakaoLoginRequired,
    KakaoOAuthError,
    KakaoRateLimited,
)
from bot.store.db import Database
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from tokens.kakao import REFRESH_MARGIN, KakaoTokens
from tokens.models import KakaoLogin
from tokens.vault import Vault

KAKAO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kakao"
AUTH = "https://kauth.kakao.com"
API = "https://kapi.kakao.com"
TOKEN_URL = f"{AUTH}/oauth/token"
TOKEN_INFO = "/v1/user/access_token_info"
REDIRECT = "http://localhost:8080/kakao/callback"
REST_KEY = "unit-rest-key"
UNIT_SECRET = "unit-client-secret"
ACCOUNT = "shop"

ACCESS_TTL = 21600
REFRESH_TTL = 5184000


def kakao_fixture(name: str) -> dict[str, Any]:
    return json.loads((KAKAO_FIXTURES / name).read_text(encoding="utf-8"))


NO_SLEEP = RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None)


# =============================================================================================
# Unit level: responses
# =============================================================================================


@dataclass
class Unit:
    db: Database
    vault: Vault
    http: KakaoHttp
    auth: KakaoAuth
    tokens: KakaoTokens
    clock: Any

    def seed(self, account: str = ACCOUNT, access: str = "acc-1", refresh: str = "ref-1") -> None:
        self.tokens.store_login(account, TokenAnswer(access, ACCESS_TTL, refresh, REFRESH_TTL, "talk_message friends"))

    def row(self, account: str = ACCOUNT) -> KakaoLogin:
        with self.db.session() as session:
            row = session.get(KakaoLogin, account)
            assert row is not None
            session.expunge(row)
            return row

    def stored(self, account: str = ACCOUNT) -> tuple[str, str]:
        row = self.row(account)
        return self.vault.decrypt(row.access_token_enc), self.vault.decrypt(row.refresh_token_enc)

    def expire_access(self) -> None:
        """Move the clock past the access token's expiry (the refresh token stays valid)."""
        self.clock.advance(seconds=ACCESS_TTL + 1)


def build_unit(tmp_path: Path, clock: Any, *, client_secret: str | None = UNIT_SECRET,
               retry: RetryPolicy = NO_SLEEP, name: str = "unit.sqlite3") -> Unit:
    db = Database(f"sqlite:///{tmp_path / name}")
    db.migrate()
    vault = Vault(Fernet.generate_key().decode())
    http = KakaoHttp(new_session(), timeout=5, retry=retry)
    auth = KakaoAuth(http, auth_url=AUTH, rest_api_key=REST_KEY, client_secret=client_secret, redirect_uri=REDIRECT)
    return Unit(db, vault, http, auth, KakaoTokens(db, vault, auth, clock=clock), clock)


@pytest.fixture
def unit(tmp_path: Path, clock: Any) -> Iterator[Unit]:
    built = build_unit(tmp_path, clock)
    yield built
    built.db.dispose()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def form_of(call: Any) -> dict[str, str]:
    body = call.request.body
    body = body.decode() if isinstance(body, bytes) else body
    return dict(parse_qsl(body, keep_blank_values=True))


def token_calls(mock: responses.RequestsMock) -> list[dict[str, str]]:
    return [form_of(call) for call in mock.calls if call.request.url == TOKEN_URL]


def refresh_answer(access: str, rotated_to: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"token_type": "bearer", "access_token": access, "expires_in": 21599}
    if rotated_to:
        body.update(refresh_token=rotated_to, refresh_token_expires_in=5183999)
    return body


# -- the token forms ----------------------------------------------------------------------------


def test_code_exchange_form_includes_client_secret_when_configured(unit, rsps):
    rsps.post(TOKEN_URL, json=kakao_fixture("token_code.json"))
    answer = unit.auth.exchange_code("the-code")
    assert answer.access_token == "fake-access-6mT0hJ2pQx"
    assert answer.refresh_token == "fake-refresh-Vb8sK1dLw0"
    assert token_calls(rsps) == [{"grant_type": "authorization_code", "client_id": REST_KEY,
                                  "redirect_uri": REDIRECT, "code": "the-code", "client_secret": UNIT_SECRET}]
    assert rsps.calls[0].request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_code_exchange_form_has_no_client_secret_when_not_configured(tmp_path, clock, rsps):
    no_secret = build_unit(tmp_path, clock, client_secret=None)
    rsps.post(TOKEN_URL, json=kakao_fixture("token_code.json"))
    no_secret.auth.exchange_code("the-code")
    (form,) = token_calls(rsps)
    assert "client_secret" not in form
    assert form["code"] == "the-code" and form["grant_type"] == "authorization_code"
    no_secret.db.dispose()


def test_refresh_form_sends_the_stored_refresh_token_and_client_secret(unit, rsps):
    unit.seed(refresh="ref-stored")
    unit.expire_access()
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2"))
    assert unit.tokens.access_token(ACCOUNT) == "acc-2"
    assert token_calls(rsps) == [{"grant_type": "refresh_token", "client_id": REST_KEY,
                                  "refresh_token": "ref-stored", "client_secret": UNIT_SECRET}]


# -- reuse while valid, refresh inside the margin ------------------------------------------------


def test_access_token_is_reused_while_outside_the_refresh_margin(unit, rsps):
    unit.seed(access="acc-1")
    unit.clock.advance(seconds=ACCESS_TTL - REFRESH_MARGIN.total_seconds() - 1)
    assert [unit.tokens.access_token(ACCOUNT) for _ in range(3)] == ["acc-1"] * 3
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("left", [timedelta(minutes=5), timedelta(minutes=4, seconds=59),
                                  timedelta(seconds=1), timedelta(0), timedelta(hours=-3)])
def test_access_token_is_refreshed_inside_the_margin_or_after_expiry(unit, rsps, left):
    unit.seed(access="acc-1")
    unit.clock.advance(seconds=ACCESS_TTL - left.total_seconds())
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2"))
    assert unit.tokens.access_token(ACCOUNT) == "acc-2"
    assert len(token_calls(rsps)) == 1
    row = unit.row()
    assert row.access_expires_at == unit.clock() + timedelta(seconds=21599)
    assert row.refreshed_at == unit.clock()
    # The fresh token is then reused.
    assert unit.tokens.access_token(ACCOUNT) == "acc-2"
    assert len(token_calls(rsps)) == 1


# -- rotation ----------------------------------------------------------------------------------


def test_rotated_refresh_token_is_stored_encrypted_with_its_new_expiry(unit, rsps):
    unit.seed(refresh="ref-old")
    unit.clock.advance(days=31)  # the refresh token's last month: Kakao rotates
    rsps.post(TOKEN_URL, json=kakao_fixture("token_refresh_rotated.json"))
    assert unit.tokens.access_token(ACCOUNT) == "fake-access-Qe4rT7yUi9"

    row = unit.row()
    assert unit.vault.decrypt(row.refresh_token_enc) == "fake-refresh-Zx3cV5bN7m"
    assert "fake-refresh" not in row.refresh_token_enc and "fake-access" not in row.access_token_enc
    assert row.refresh_expires_at == unit.clock() + timedelta(seconds=5183999)
    assert row.access_expires_at == unit.clock() + timedelta(seconds=21599)


def test_after_rotation_later_refreshes_send_the_new_refresh_token_never_the_old(unit, rsps):
    unit.seed(refresh="ref-old")
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2", rotated_to="ref-new"))
    rsps.post(TOKEN_URL, json=refresh_answer("acc-3"))
    rsps.post(TOKEN_URL, json=refresh_answer("acc-4"))

    for expected in ("acc-2", "acc-3", "acc-4"):
        unit.expire_access()
        assert unit.tokens.access_token(ACCOUNT) == expected

    sent = [form["refresh_token"] for form in token_calls(rsps)]
    assert sent == ["ref-old", "ref-new", "ref-new"]


def test_refresh_without_rotation_keeps_the_old_refresh_token_and_its_expiry(unit, rsps):
    unit.seed(refresh="ref-1")
    before = unit.row()
    unit.expire_access()
    rsps.post(TOKEN_URL, json=kakao_fixture("token_refresh_plain.json"))
    assert unit.tokens.access_token(ACCOUNT) == "fake-access-Lk2jH4gF6d"

    after = unit.row()
    assert unit.vault.decrypt(after.refresh_token_enc) == "ref-1"
    assert after.refresh_token_enc == before.refresh_token_enc  # not even re-encrypted
    assert after.refresh_expires_at == before.refresh_expires_at
    assert after.scopes == "talk_message friends"  # an answer without scope keeps the granted ones


def test_failed_commit_withholds_the_new_access_token(unit, rsps):
    """The rotated refresh token must be stored before the access token is used: no commit, no token."""
    unit.seed(access="acc-1", refresh="ref-old")
    unit.expire_access()
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2", rotated_to="ref-new"))

    def refuse_login_writes(session) -> None:  # noqa: ANN001
        if any(isinstance(obj, KakaoLogin) for obj in session.dirty):
            raise RuntimeError("disk I/O error")

    event.listen(unit.db.sessions, "before_commit", refuse_login_writes)
    try:
        with pytest.raises(RuntimeError, match="disk I/O error"):
            unit.tokens.access_token(ACCOUNT)
    finally:
        event.remove(unit.db.sessions, "before_commit", refuse_login_writes)

    assert len(token_calls(rsps)) == 1
    assert unit.stored() == ("acc-1", "ref-old")  # nothing half-written either


def test_rotated_tokens_are_in_the_database_before_the_access_token_reaches_kakao(unit, rsps):
    unit.seed(access="acc-1", refresh="ref-old")
    unit.expire_access()
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2", rotated_to="ref-new"))
    seen: dict[str, Any] = {}

    def token_info(request: requests.PreparedRequest):
        # Another process's view: its own engine and its own KakaoTokens on the same file.
        other_db = Database(unit.db.url)
        try:
            other = KakaoTokens(other_db, unit.vault, unit.auth, clock=unit.clock)
            seen["other_access"] = other.access_token(ACCOUNT)
            with other_db.session() as session:
                seen["other_refresh"] = unit.vault.decrypt(session.get(KakaoLogin, ACCOUNT).refresh_token_enc)
        finally:
            other_db.dispose()
        seen["bearer"] = request.headers["Authorization"]
        return 200, {}, json.dumps({"id": 1, "expires_in": 21599, "app_id": 1})

    rsps.add_callback("GET", API + TOKEN_INFO, callback=token_info)
    KakaoApi(unit.http, api_url=API, tokens=unit.tokens.source(ACCOUNT)).token_info()

    assert seen == {"bearer": "Bearer acc-2", "other_access": "acc-2", "other_refresh": "ref-new"}
    assert len(token_calls(rsps)) == 1  # the other instance found a fresh token: no second refresh


# -- concurrency in one process -----------------------------------------------------------------


def test_eight_threads_on_an_expired_token_cause_one_refresh(unit, rsps):
    unit.seed(access="acc-1", refresh="ref-1")
    unit.expire_access()
    refreshes: list[int] = []

    def slow_refresh(request: requests.PreparedRequest):
        refreshes.append(1)
        time.sleep(0.2)  # keep the window open so the other threads really overlap it
        return 200, {}, json.dumps(refresh_answer(f"acc-new-{len(refreshes)}"))

    rsps.add_callback("POST", TOKEN_URL, callback=slow_refresh)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def mint() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(unit.tokens.access_token(ACCOUNT))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(refreshes) == 1
    assert results == ["acc-new-1"] * 8


# -- -401 from the API: renew ----------------------------------------------------------------------


def test_renew_refreshes_a_rejected_token_even_if_the_database_thinks_it_valid(unit, rsps):
    unit.seed(access="acc-1")
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2"))
    assert unit.tokens.access_token(ACCOUNT) == "acc-1"  # valid by the clock
    assert unit.tokens.renew(ACCOUNT, rejected="acc-1") == "acc-2"
    assert len(token_calls(rsps)) == 1


def test_renew_of_an_already_replaced_token_returns_the_new_one_without_refreshing(unit, rsps):
    unit.seed(access="acc-1")
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2"))
    assert unit.tokens.renew(ACCOUNT, rejected="acc-1") == "acc-2"
    # A second caller that was refused the same old token: someone already renewed.
    assert unit.tokens.renew(ACCOUNT, rejected="acc-1") == "acc-2"
    assert len(token_calls(rsps)) == 1


def test_api_minus_401_refreshes_once_and_retries_once(unit, rsps):
    unit.seed(access="acc-1")
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2"))
    rsps.get(API + TOKEN_INFO, status=401, json=kakao_fixture("error_-401.json"))
    rsps.get(API + TOKEN_INFO, json={"id": 7, "expires_in": 100, "app_id": 1})
    assert KakaoApi(unit.http, api_url=API, tokens=unit.tokens.source(ACCOUNT)).token_info()["id"] == 7
    bearers = [call.request.headers["Authorization"] for call in rsps.calls if call.request.url == API + TOKEN_INFO]
    assert bearers == ["Bearer acc-1", "Bearer acc-2"]
    assert len(token_calls(rsps)) == 1


# -- dead logins: a person must act, nothing retries in a loop ----------------------------------------


def test_koe322_marks_the_login_and_later_calls_fail_without_any_request(unit, rsps):
    unit.seed()
    unit.expire_access()
    rsps.post(TOKEN_URL, status=400, json=kakao_fixture("error_koe322.json"))

    with pytest.raises(KakaoLoginRequired) as first:
        unit.tokens.access_token(ACCOUNT)
    assert f"kakao login --account {ACCOUNT}" in str(first.value)
    assert "KOE322" in (unit.row().needs_login_reason or "")
    assert unit.tokens.status(ACCOUNT).needs_login_reason

    calls = len(rsps.calls)
    for attempt in (lambda: unit.tokens.access_token(ACCOUNT), lambda: unit.tokens.renew(ACCOUNT, "acc-1"),
                    lambda: KakaoApi(unit.http, api_url=API, tokens=unit.tokens.source(ACCOUNT)).token_info()):
        with pytest.raises(KakaoLoginRequired) as again:
            attempt()
        assert f"kakao login --account {ACCOUNT}" in str(again.value)
    assert len(rsps.calls) == calls


def test_koe322_marks_the_login_even_when_the_access_token_is_still_valid(unit, rsps):
    """A -401 renewal that meets KOE322 must also stop further attempts."""
    unit.seed(access="acc-1")
    rsps.post(TOKEN_URL, status=400, json=kakao_fixture("error_koe322.json"))
    with pytest.raises(KakaoLoginRequired):
        unit.tokens.renew(ACCOUNT, rejected="acc-1")
    with pytest.raises(KakaoLoginRequired):
        unit.tokens.access_token(ACCOUNT)
    assert len(token_calls(rsps)) == 1


def test_refresh_token_past_its_expiry_needs_a_person_without_calling_kakao(unit, rsps):
    unit.seed()
    unit.clock.advance(seconds=REFRESH_TTL)
    with pytest.raises(KakaoLoginRequired) as caught:
        unit.tokens.access_token(ACCOUNT)
    assert f"kakao login --account {ACCOUNT}" in str(caught.value)
    assert "expired" in str(caught.value)
    assert len(rsps.calls) == 0
    assert unit.row().needs_login_reason


def test_unknown_account_needs_a_login_named_by_account(unit, rsps):
    with pytest.raises(KakaoLoginRequired) as caught:
        unit.tokens.access_token("nobody")
    assert "kakao login --account nobody" in str(caught.value)
    assert len(rsps.calls) == 0


def test_a_new_login_clears_the_needs_login_mark(unit, rsps):
    unit.seed()
    unit.clock.advance(seconds=REFRESH_TTL)
    with pytest.raises(KakaoLoginRequired):
        unit.tokens.access_token(ACCOUNT)
    unit.seed(access="acc-fresh", refresh="ref-fresh")
    assert unit.tokens.status(ACCOUNT).needs_login_reason is None
    assert unit.tokens.access_token(ACCOUNT) == "acc-fresh"
    assert len(rsps.calls) == 0


def test_koe237_is_rate_limited_and_does_not_mark_the_login(unit, rsps):
    unit.seed(refresh="ref-1")
    unit.expire_access()
    rsps.post(TOKEN_URL, status=400, json=kakao_fixture("error_koe237.json"))
    with pytest.raises(KakaoRateLimited) as caught:
        unit.tokens.access_token(ACCOUNT)
    assert not isinstance(caught.value, KakaoLoginRequired)
    assert len(token_calls(rsps)) == 1  # not retried: retrying makes a rate limit worse
    assert unit.row().needs_login_reason is None
    assert unit.stored()[1] == "ref-1"

    rsps.replace(responses.POST, TOKEN_URL, json=refresh_answer("acc-later"))
    assert unit.tokens.access_token(ACCOUNT) == "acc-later"


def test_kakao_5xx_on_the_token_endpoint_is_retried_then_succeeds(unit, rsps):
    unit.seed()
    unit.expire_access()
    rsps.post(TOKEN_URL, status=500, body="<html>oops</html>")
    rsps.post(TOKEN_URL, status=503, json={"error": "server_error", "error_description": "busy"})
    rsps.post(TOKEN_URL, json=refresh_answer("acc-2"))
    assert unit.tokens.access_token(ACCOUNT) == "acc-2"
    assert len(token_calls(rsps)) == 3
    assert unit.stored()[0] == "acc-2"


def test_kakao_5xx_that_persists_fails_without_marking_the_login(tmp_path, clock, rsps):
    sleeps: list[float] = []
    built = build_unit(tmp_path, clock, retry=RetryPolicy(attempts=3, base_delay=0.5, sleep=sleeps.append))
    built.seed(access="acc-1", refresh="ref-1")
    built.expire_access()
    rsps.post(TOKEN_URL, status=502, json={"error": "server_error"})
    with pytest.raises(KakaoOAuthError) as caught:
        built.tokens.access_token(ACCOUNT)
    assert caught.value.retryable and not isinstance(caught.value, KakaoLoginRequired)
    assert len(token_calls(rsps)) == 3 and len(sleeps) == 2
    assert built.row().needs_login_reason is None
    assert built.stored() == ("acc-1", "ref-1")
    built.db.dispose()


# =============================================================================================
# End to end: the Kakao stand-in over loopback
# =============================================================================================


def refresh_requests(sandbox: Any) -> list[dict[str, str]]:
    return [form for form in sandbox.token_requests if form.get("grant_type") == "refresh_token"]


def stored_tokens(app: App, account: str = "default") -> tuple[str, str]:
    with app.db.session() as session:
        row = session.get(KakaoLogin, account)
        return app.vault.decrypt(row.access_token_enc), app.vault.decrypt(row.refresh_token_enc)


@pytest.fixture
def app_without_secret(write_config, kakao_server, clock, secret_key, sandbox) -> Iterator[App]:
    """An App whose environment has no KAKAO_CLIENT_SECRET."""
    path = write_config(f"""\
        [database]
        url = "sqlite:///nosecret.sqlite3"

        [kakao]
        redirect_uri = "http://127.0.0.1:8080/kakao/callback"
        auth_url = "{kakao_server.url}"
        api_url = "{kakao_server.url}"
        """, name="nosecret.toml")
    app = App(load_config(path), Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": sandbox.rest_api_key}),
              clock=clock, retry=NO_SLEEP)
    app.db.migrate()
    yield app
    app.close()


def test_e2e_code_exchange_sends_the_configured_client_secret(make_app, sandbox):
    app = make_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    status = app.kakao_tokens.store_login("default", app.kakao_auth.exchange_code(code))
    assert sandbox.token_requests[-1]["client_secret"] == sandbox.client_secret
    assert sandbox.token_requests[-1]["code"] == code
    assert status.scopes == ("talk_message", "friends")


def test_e2e_code_exchange_without_client_secret_when_the_app_has_none(app_without_secret, sandbox):
    sandbox.client_secret = None  # the Kakao app has its client secret turned off
    code = sandbox.issue_code(app_without_secret.config.kakao.redirect_uri)
    app_without_secret.kakao_tokens.store_login("default", app_without_secret.kakao_auth.exchange_code(code))
    assert "client_secret" not in sandbox.token_requests[-1]
    assert app_without_secret.kakao_api("default").token_info()["id"] == sandbox.owner_id


def test_e2e_missing_client_secret_koe010_tells_to_set_kakao_client_secret(app_without_secret, sandbox):
    code = sandbox.issue_code(app_without_secret.config.kakao.redirect_uri)
    with pytest.raises(KakaoOAuthError) as caught:
        app_without_secret.kakao_auth.exchange_code(code)
    assert caught.value.code == "KOE010"
    assert "KAKAO_CLIENT_SECRET" in str(caught.value)
    assert len(sandbox.token_requests) == 1  # a client error: not retried


def test_e2e_valid_access_token_is_reused_without_token_requests(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    before = sandbox.count("/oauth/token")
    first = app.kakao_tokens.access_token("default")
    clock.advance(seconds=sandbox.access_ttl - REFRESH_MARGIN.total_seconds() - 60)
    assert app.kakao_tokens.access_token("default") == first
    app.kakao_api("default").token_info()
    assert sandbox.count("/oauth/token") == before


def test_e2e_refresh_inside_the_margin_gives_a_working_new_token(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    old_access, old_refresh = stored_tokens(app)
    clock.advance(seconds=sandbox.access_ttl - 240)  # 4 minutes left: inside the 5 minute margin
    new_access = app.kakao_tokens.access_token("default")
    assert new_access != old_access
    assert [form["refresh_token"] for form in refresh_requests(sandbox)] == [old_refresh]
    assert app.kakao_api("default").token_info()["id"] == sandbox.owner_id
    assert len(refresh_requests(sandbox)) == 1


def test_e2e_rotation_is_persisted_and_the_old_refresh_token_never_used_again(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    _, original_refresh = stored_tokens(app)
    before = app.kakao_tokens.status("default")

    clock.advance(seconds=sandbox.refresh_ttl - sandbox.rotate_within + 3600)  # the last month: rotation
    app.kakao_tokens.access_token("default")
    _, rotated = stored_tokens(app)
    assert rotated != original_refresh
    after = app.kakao_tokens.status("default")
    assert after.refresh_expires_at == clock() + timedelta(seconds=sandbox.refresh_ttl)
    assert after.refresh_expires_at > before.refresh_expires_at

    for _ in range(2):  # later refreshes (no rotation: the new one has two months left)
        clock.advance(seconds=sandbox.access_ttl + 1)
        app.kakao_api("default").token_info()
    sent = [form["refresh_token"] for form in refresh_requests(sandbox)]
    assert sent == [original_refresh, rotated, rotated]
    assert stored_tokens(app)[1] == rotated


def test_e2e_refresh_without_rotation_keeps_refresh_token_and_expiry(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    _, refresh = stored_tokens(app)
    before = app.kakao_tokens.status("default")
    clock.advance(seconds=sandbox.access_ttl + 1)
    app.kakao_tokens.access_token("default")
    after = app.kakao_tokens.status("default")
    assert stored_tokens(app)[1] == refresh
    assert after.refresh_expires_at == before.refresh_expires_at
    assert after.access_expires_at == clock() + timedelta(seconds=sandbox.access_ttl)


def test_e2e_eight_threads_on_an_expired_token_cause_one_refresh(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    clock.advance(seconds=sandbox.access_ttl + 1)
    sandbox.hang_next("/oauth/token", 0.3)  # a slow refresh: the other threads arrive meanwhile
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def mint() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(app.kakao_tokens.access_token("default"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(refresh_requests(sandbox)) == 1
    assert len(set(results)) == 1 and len(results) == 8
    assert results[0] == stored_tokens(app)[0]
    assert app.kakao_api("default").token_info()["id"] == sandbox.owner_id


def test_e2e_minus_401_refreshes_once_retries_once_and_succeeds(make_app, logged_in, sandbox):
    app = make_app()
    logged_in(app)
    old_access, _ = stored_tokens(app)
    sandbox.expire_access_tokens()  # Kakao says expired; the database still thinks it valid
    info = app.kakao_api("default").token_info()
    assert info["id"] == sandbox.owner_id
    assert len(refresh_requests(sandbox)) == 1
    assert sandbox.count(TOKEN_INFO) == 2
    assert stored_tokens(app)[0] != old_access


def test_e2e_second_minus_401_after_the_retry_surfaces_without_a_loop(make_app, logged_in, sandbox):
    app = make_app()
    logged_in(app)
    sandbox.fail_next(TOKEN_INFO, 401, kakao_fixture("error_-401.json"), times=5)
    with pytest.raises(KakaoAuthError) as caught:
        app.kakao_api("default").token_info()
    assert caught.value.code == -401
    assert sandbox.count(TOKEN_INFO) == 2
    assert len(refresh_requests(sandbox)) == 1
    assert app.kakao_tokens.status("default").needs_login_reason is None


def test_e2e_revoked_refresh_token_needs_login_and_stops_all_requests(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app, "shop")
    sandbox.revoke_refresh_tokens()
    clock.advance(seconds=sandbox.access_ttl + 1)
    with pytest.raises(KakaoLoginRequired) as caught:
        app.kakao_api("shop").token_info()
    assert "kakao login --account shop" in str(caught.value)
    assert "KOE322" in str(caught.value)
    status = app.kakao_tokens.status("shop")
    assert status.needs_login_reason and "KOE322" in status.needs_login_reason

    calls = len(sandbox.calls)
    for _ in range(3):
        with pytest.raises(KakaoLoginRequired) as again:
            app.kakao_tokens.access_token("shop")
        assert "kakao login --account shop" in str(again.value)
        with pytest.raises(KakaoLoginRequired):
            app.kakao_api("shop").token_info()
    assert len(sandbox.calls) == calls  # no retry storm


def test_e2e_expired_refresh_token_needs_login_without_calling_kakao(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app, "shop")
    calls = len(sandbox.calls)
    clock.advance(seconds=sandbox.refresh_ttl + 1)
    with pytest.raises(KakaoLoginRequired) as caught:
        app.kakao_tokens.access_token("shop")
    assert "kakao login --account shop" in str(caught.value)
    assert len(sandbox.calls) == calls
    assert app.kakao_tokens.status("shop").needs_login_reason


def test_e2e_koe237_is_rate_limited_not_a_dead_login(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    clock.advance(seconds=sandbox.access_ttl + 1)
    sandbox.access_limit_per_10min = 0  # Kakao refuses to issue more tokens for this user now
    with pytest.raises(KakaoRateLimited) as caught:
        app.kakao_tokens.access_token("default")
    assert caught.value.code == "KOE237"
    assert app.kakao_tokens.status("default").needs_login_reason is None
    assert len(refresh_requests(sandbox)) == 1  # not retried

    sandbox.access_limit_per_10min = 20  # later, the limit has room again
    assert app.kakao_api("default").token_info()["id"] == sandbox.owner_id
    assert len(refresh_requests(sandbox)) == 2


def test_e2e_5xx_on_the_token_endpoint_is_retried_then_succeeds(make_app, logged_in, sandbox, clock):
    app = make_app()
    logged_in(app)
    before = sandbox.count("/oauth/token")
    clock.advance(seconds=sandbox.access_ttl + 1)
    sandbox.fail_next("/oauth/token", 503, {"error": "server_error", "error_description": "maintenance"}, times=2)
    token = app.kakao_tokens.access_token("default")
    assert sandbox.count("/oauth/token") == before + 3
    assert len(refresh_requests(sandbox)) == 1  # the two failed attempts never reached the token logic
    assert token == stored_tokens(app)[0]
    assert app.kakao_api("default").token_info()["id"] == sandbox.owner_id


def test_e2e_no_token_in_plaintext_in_the_sqlite_files_or_the_logs(make_app, logged_in, sandbox, clock, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # bound parameters too
    caplog.set_level(logging.DEBUG, logger="urllib3")
    app = make_app()
    issued: list[str] = []
    real_call = app.kakao_http.call

    def recording_call(method: str, url: str, **kwargs: Any) -> dict:
        body = real_call(method, url, **kwargs)
        if url.endswith("/oauth/token"):
            issued.extend(body[key] for key in ("access_token", "refresh_token") if key in body)
        return body

    app.kakao_http.call = recording_call  # type: ignore[method-assign]
    logged_in(app)
    app.kakao_api("default").token_info()
    clock.advance(seconds=sandbox.refresh_ttl - sandbox.rotate_within + 60)  # refresh with rotation
    app.kakao_api("default").token_info()
    sandbox.expire_access_tokens()  # a -401 renewal
    app.kakao_api("default").token_info()

    assert len(issued) == 5  # login: access+refresh; rotation: access+refresh; renewal: access

    db_file = Path(app.db.engine.url.database)
    raw = b"".join(path.read_bytes() for path in (db_file, Path(f"{db_file}-wal")) if path.exists())
    with app.db.session() as session:
        current = session.get(KakaoLogin, "default")
    assert current.access_token_enc.encode() in raw  # the files hold the (encrypted) row
    for token in issued:
        assert token.encode() not in raw

    text = caplog.text + "\n".join(repr(record.args) + str(record.msg) for record in caplog.records)
    assert "/oauth/token" in text  # the HTTP debug lines were captured
    assert "kakao_logins" in text  # and the SQL with its parameters
    for token in issued:
        assert token not in text
