"""The HTTP server's own parts: JSON errors, the body limit, the access log (no query strings),
/healthz and /kakao/callback — through Flask's test client, plus one real waitress server
started by `run_service` on a free loopback port."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import text

from bot.app import App
from bot.connect import oauth_states
from bot.web.server import MAX_BODY_BYTES, create_app
from tokens.models import KakaoLogin, ShopifyInstall

from service_helpers import free_port, served

SHOP = "my-store.myshopify.com"
LEGACY_TOKEN = "shpat_healthzsecret0123456789"


@pytest.fixture
def app(make_app) -> App:
    return make_app()


@pytest.fixture
def client(app: App):
    return create_app(app).test_client()


def stored_secrets(app: App) -> list[str]:
    """Every token value and ciphertext in the database: none may appear in an answer or a log."""
    values: list[str] = []
    with app.db.session() as session:
        for login in session.query(KakaoLogin):
            values += [login.access_token_enc, login.refresh_token_enc,
                       app.vault.decrypt(login.access_token_enc), app.vault.decrypt(login.refresh_token_enc)]
        for install in session.query(ShopifyInstall):
            values += [install.access_token_enc, app.vault.decrypt(install.access_token_enc)]
    return values


def token_exchanges(sandbox: Any) -> list[dict[str, str]]:
    return [form for form in sandbox.token_requests if form.get("grant_type") == "authorization_code"]


# -- JSON errors and the body limit ----------------------------------------------------------------


def test_unknown_path_is_a_json_404(client):
    answer = client.get("/no/such/page")
    assert answer.status_code == 404
    assert answer.is_json and answer.json["error"] == "not_found" and answer.json["message"]


def test_wrong_method_is_a_json_405_that_names_the_allowed_ones(client):
    answer = client.post("/healthz", data=b"{}")
    assert answer.status_code == 405
    assert answer.is_json and answer.json["error"] == "method_not_allowed"
    assert "GET" in answer.headers["Allow"]


@pytest.mark.parametrize("path", ["/healthz", "/kakao/callback", "/no/such/page"])
def test_a_body_over_the_limit_is_a_json_413_whatever_the_route(client, path):
    answer = client.post(path, data=b"x" * (MAX_BODY_BYTES + 1), content_type="application/json")
    assert answer.status_code == 413
    assert answer.json == {"error": "body_too_large",
                           "message": f"the request body is larger than {MAX_BODY_BYTES} bytes"}


def test_an_unexpected_exception_is_a_json_500_without_details(app, caplog):
    flask_app = create_app(app)

    def boom() -> None:
        raise RuntimeError("internal detail code=abc123")

    flask_app.add_url_rule("/boom", "boom", boom)
    with caplog.at_level(logging.ERROR):
        answer = flask_app.test_client().get("/boom")
    assert answer.status_code == 500
    assert answer.json == {"error": "internal_error", "message": "internal error (see the server log)"}
    assert "RuntimeError" in caplog.text  # the person reading the log gets the traceback


# -- the access log --------------------------------------------------------------------------------


def test_access_log_has_one_line_per_request_and_never_the_query(client, caplog):
    caplog.set_level(logging.INFO)
    query = urlencode({"code": "SECRETCODE123", "state": "SECRETSTATE456", "hmac": "SECRETHMAC789"})
    assert client.get(f"/kakao/callback?{query}").status_code == 400
    assert client.get(f"/no/such?{query}").status_code == 404
    assert client.get("/healthz").status_code == 200

    lines = [record.getMessage() for record in caplog.records if record.name == "bot.access"]
    assert len(lines) == 3
    assert lines[0].startswith("GET /kakao/callback 400 ") and lines[0].endswith("ms")
    assert lines[1].startswith("GET /no/such 404 ")
    assert lines[2].startswith("GET /healthz 200 ")
    everything = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    for secret in ("SECRETCODE123", "SECRETSTATE456", "SECRETHMAC789"):
        assert secret not in everything


def test_access_log_escapes_what_could_forge_a_log_line(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/a%0d%0aGET /forged 200 1.0ms")
    (line,) = [record.getMessage() for record in caplog.records if record.name == "bot.access"]
    assert "\n" not in line and "\r" not in line and " /forged" not in line


# -- /healthz -------------------------------------------------------------------------------------


def test_healthz_with_nothing_stored_is_200(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json
    assert body["status"] == "ok" and body["db"] == "ok"
    assert body["kakao"] == [] and body["shopify"] == []
    # No `run` in this process (a test client, gunicorn): no scheduler, and it says so.
    assert body["scheduler"]["running"] is False and "python -m bot run" in body["scheduler"]["reason"]
    assert body["webhooks"] == {"unprocessed": 0, "pending": 0, "processing": 0, "retrying": 0,
                                "oldest_pending_age_seconds": None}
    assert body["version"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_healthz_reports_a_healthy_login_without_token_values(app, client, logged_in):
    logged_in(app, "default")
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    answer = client.get("/healthz")
    assert answer.status_code == 200
    (login,) = answer.json["kakao"]
    assert login == {"account": "default", "status": "ok",
                     "refresh_expires_at": app.kakao_tokens.status("default").refresh_expires_at.isoformat()}
    assert answer.json["shopify"] == [{"shop": SHOP, "app": "default", "status": "active"}]
    for secret in stored_secrets(app):
        assert secret not in answer.get_data(as_text=True)


def test_healthz_is_503_when_a_kakao_login_needs_a_person(app, client, logged_in, sandbox):
    logged_in(app, "default")
    logged_in(app, "staff")
    # Kakao refuses the refresh token: the minter marks the login as needing a person.
    sandbox.revoke_refresh_tokens()
    sandbox.expire_access_tokens()
    access = app.vault.decrypt(_row(app, "staff").access_token_enc)
    with pytest.raises(Exception, match="kakao login --account staff"):
        app.kakao_tokens.renew("staff", rejected=access)
    assert app.kakao_tokens.status("staff").needs_login_reason

    answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json
    assert body["status"] == "needs_attention" and body["db"] == "ok"
    default, staff = body["kakao"]
    assert default["status"] == "ok" and "reason" not in default
    assert staff["status"] == "needs_login"
    assert "kakao login --account staff" in staff["reason"]
    for secret in stored_secrets(app):
        assert secret not in answer.get_data(as_text=True)


def test_healthz_is_503_when_the_refresh_token_ran_out_before_anyone_noticed(app, client, logged_in, sandbox, clock):
    logged_in(app, "default")
    clock.advance(seconds=sandbox.refresh_ttl + 1)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    (login,) = answer.json["kakao"]
    assert login["status"] == "needs_login" and "expired" in login["reason"]


@pytest.mark.parametrize("status, code", [("needs_reauth", 503), ("invalid", 503), ("uninstalled", 200)])
def test_healthz_and_shopify_installs(app, client, status, code):
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    with app.db.session() as session:
        session.execute(text("UPDATE shopify_installs SET status = :status, status_reason = 'revoked by the shop'"),
                        {"status": status})
    answer = client.get("/healthz")
    assert answer.status_code == code
    assert answer.json["status"] == ("needs_attention" if code == 503 else "ok")
    assert answer.json["shopify"] == [{"shop": SHOP, "app": "default", "status": status,
                                       "reason": "revoked by the shop"}]
    assert LEGACY_TOKEN not in answer.get_data(as_text=True)


def test_healthz_is_503_when_the_database_fails(app, client):
    with app.db.session() as session:
        session.execute(text("DROP TABLE kakao_logins"))
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json["status"] == "needs_attention"
    assert answer.json["db"].startswith("error: ")
    assert "kakao_logins" in answer.json["db"]


def _row(app: App, account: str) -> KakaoLogin:
    with app.db.session() as session:
        return session.get(KakaoLogin, account)


# -- /kakao/callback ------------------------------------------------------------------------------


def callback(client, **params: str):
    return client.get("/kakao/callback?" + urlencode(params))


def test_callback_with_a_good_state_exchanges_the_code_and_stores_the_login(app, client, sandbox):
    state = oauth_states.issue(app.db, "kakao:shop", "shop", clock=app.clock)
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    answer = callback(client, code=code, state=state)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/html")
    page = answer.get_data(as_text=True)
    assert "로그인 완료" in page and "shop" in page
    assert code not in page and state not in page
    status = app.kakao_tokens.status("shop")
    assert status is not None and status.scopes == ("talk_message", "friends")
    assert app.kakao_tokens.status("default") is None
    (exchange,) = token_exchanges(sandbox)
    assert exchange["code"] == code and exchange["redirect_uri"] == app.config.kakao.redirect_uri
    assert app.kakao_api("shop").token_info()["id"] == sandbox.owner_id
    for secret in stored_secrets(app):
        assert secret not in page


def test_callback_with_a_used_state_is_400_and_exchanges_nothing(app, client, sandbox):
    state = oauth_states.issue(app.db, "kakao:default", "default", clock=app.clock)
    first = callback(client, code=sandbox.issue_code(app.config.kakao.redirect_uri), state=state)
    assert first.status_code == 200
    before = _row(app, "default").access_token_enc
    again = callback(client, code=sandbox.issue_code(app.config.kakao.redirect_uri), state=state)
    assert again.status_code == 400
    assert again.json["error"] == "state_used" and "already used" in again.json["message"]
    assert len(token_exchanges(sandbox)) == 1
    assert _row(app, "default").access_token_enc == before


@pytest.mark.parametrize("state", ["0" * 64, "", "not-a-state"])
def test_callback_with_an_unknown_or_missing_state_is_400(app, client, sandbox, state):
    answer = callback(client, code=sandbox.issue_code(app.config.kakao.redirect_uri), state=state)
    assert answer.status_code == 400
    assert answer.json["error"] == ("state_missing" if not state else "state_unknown")
    assert token_exchanges(sandbox) == []
    assert app.kakao_tokens.all_status() == []


def test_callback_refuses_a_state_issued_for_another_flow(app, client, sandbox):
    state = oauth_states.issue(app.db, "shopify:default", SHOP, clock=app.clock)
    answer = callback(client, code=sandbox.issue_code(app.config.kakao.redirect_uri), state=state)
    assert answer.status_code == 400 and answer.json["error"] == "state_unknown"
    assert token_exchanges(sandbox) == []
    assert oauth_states.lookup(app.db, state).used_at is None  # still usable by its own flow


def test_callback_with_an_expired_state_is_400(app, client, sandbox, clock):
    state = oauth_states.issue(app.db, "kakao:default", "default", clock=app.clock)
    clock.advance(minutes=11)
    answer = callback(client, code=sandbox.issue_code(app.config.kakao.redirect_uri), state=state)
    assert answer.status_code == 400
    assert answer.json["error"] == "state_expired"
    assert token_exchanges(sandbox) == []


def test_callback_with_declined_consent_is_400_with_the_consent_message(app, client, sandbox):
    state = oauth_states.issue(app.db, "kakao:default", "default", clock=app.clock)
    answer = callback(client, error="access_denied", error_description="User denied access", state=state)
    assert answer.status_code == 400
    assert answer.json["error"] == "access_denied"
    message = answer.json["message"]
    assert "consent" in message and "talk_message" in message and "friends" in message
    assert "카카오톡 메시지 전송" in answer.get_data(as_text=True)  # readable, not \\u-escaped
    assert token_exchanges(sandbox) == [] and app.kakao_tokens.all_status() == []
    assert oauth_states.lookup(app.db, state).used_at is not None  # a waiting `kakao login` learns it is over


def test_callback_with_a_code_kakao_refuses_is_400_with_kakaos_reason(app, client, sandbox):
    state = oauth_states.issue(app.db, "kakao:default", "default", clock=app.clock)
    answer = callback(client, code="never-issued", state=state)
    assert answer.status_code == 400
    assert answer.json["error"] == "kakao_login_failed" and "KOE320" in answer.json["message"]
    assert app.kakao_tokens.all_status() == []


def test_callback_without_a_code_is_400(app, client):
    state = oauth_states.issue(app.db, "kakao:default", "default", clock=app.clock)
    answer = callback(client, state=state)
    assert answer.status_code == 400 and answer.json["error"] == "missing_code"


# -- one real server -------------------------------------------------------------------------------


def test_the_real_server_answers_json_errors_limits_bodies_and_keeps_queries_out_of_the_log(
        make_app, sandbox, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    app = make_app(f"""
        [server]
        listen = "127.0.0.1:{port}"
        """)
    with served(app) as base:
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert "Server" not in health.headers  # waitress does not announce itself

        missing = requests.get(f"{base}/nope", timeout=10)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"

        # Over the limit but under waitress's hard cap: the app's own JSON 413.
        big = requests.post(f"{base}/healthz", data=b"x" * (MAX_BODY_BYTES + 1000), timeout=30)
        assert big.status_code == 413 and big.json()["error"] == "body_too_large"
        # Far over it: refused by waitress before the body is buffered.
        huge = requests.post(f"{base}/healthz", data=b"x" * (5 * MAX_BODY_BYTES), timeout=30)
        assert huge.status_code == 413

        state = oauth_states.issue(app.db, "kakao:default", "default", clock=app.clock)
        code = sandbox.issue_code(app.config.kakao.redirect_uri)
        done = requests.get(f"{base}/kakao/callback", params={"code": code, "state": state}, timeout=30)
        assert done.status_code == 200 and "로그인 완료" in done.text
        replay = requests.get(f"{base}/kakao/callback", params={"code": "SECRETCODE123", "state": state}, timeout=30)
        assert replay.status_code == 400 and replay.json()["error"] == "state_used"

    access = [record.getMessage() for record in caplog.records if record.name == "bot.access"]
    assert any(line.startswith("GET /kakao/callback 200 ") for line in access)
    assert any(line.startswith("GET /kakao/callback 400 ") for line in access)
    assert any(line.startswith("POST /healthz 413 ") for line in access)
    everything = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    for secret in (code, state, "SECRETCODE123", *stored_secrets(app)):
        assert secret not in everything
    assert any(f"listening on http://127.0.0.1:{port}" in record.getMessage() for record in caplog.records)
