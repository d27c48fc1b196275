"""The embedded app's API and Shopify-managed installation: the bot's Flask routes (test client) with
session tokens minted by the Shopify stand-in (served on a real local port), which also answers the
token exchange. Refusals are checked by what the stand-in saw and by what is stored: nothing."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from bot.app import App
from bot.shopify.subscriptions import TOPICS
from bot.web.embedded_api import RETRY_HEADER

from shopify_install_helpers import KEY, OTHER_SHOP, PUBLIC, SECOND_KEY, SECRET, SHOP

TOKEN_PATH = "/admin/oauth/access_token"


def call(client, session_token: str | None, app_name: str = "default", query: str = ""):
    headers = {"Authorization": f"Bearer {session_token}"} if session_token is not None else {}
    return client.get(f"/shopify/{app_name}/api/shop{query}", headers=headers)


def installs(app: App) -> list[tuple[str, str, str]]:
    return [(s.app, s.shop, s.status) for s in app.shopify_tokens.all_status()]


def assert_session_refused(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers[RETRY_HEADER] == "1"
    assert response.json["error"] == "invalid_session_token"
    assert response.headers["Cache-Control"] == "no-store"


# -- installing by token exchange ---------------------------------------------------------------


def test_the_first_call_installs_the_shop_by_token_exchange(client, app, standin, clock):
    session_token = standin.session_token(SHOP, KEY)
    response = call(client, session_token)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert (body["shop"], body["app"], body["installed_now"]) == (SHOP, "default", True)
    assert body["install"]["status"] == "active" and body["install"]["scopes"] == ["read_orders"]
    (exchange,) = standin.token_requests
    assert exchange == {"client_id": KEY, "client_secret": SECRET,
                        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                        "subject_token": session_token,
                        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
                        "expiring": "1"}
    status = app.shopify_tokens.status(SHOP, "default")
    assert (status.mode, status.status) == ("oauth", "active")
    assert status.access_expires_at == clock.now + timedelta(seconds=3600)
    assert status.refresh_expires_at is not None
    assert sorted(sub["topic"] for sub in standin.subscriptions[SHOP]) == sorted(TOPICS)
    assert body["webhooks"]["uri"] == f"{PUBLIC}/shopify/default/webhooks"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_installed_token_reads_the_shop(client, app, standin):
    call(client, standin.session_token(SHOP, KEY))
    assert app.shopify_graphql(SHOP).query("{ shop { name } }")["shop"]["name"] == "First Shop"


def test_later_calls_use_the_stored_token_and_exchange_nothing(client, app, standin):
    call(client, standin.session_token(SHOP, KEY))
    again = call(client, standin.session_token(SHOP, KEY, user_id="7"))
    assert again.status_code == 200 and again.json["installed_now"] is False
    assert "webhooks" not in again.json
    assert len(standin.token_requests) == 1


def test_a_shop_whose_install_was_lost_is_installed_again(client, app, standin):
    call(client, standin.session_token(SHOP, KEY))
    app.shopify_tokens.uninstalled(SHOP, "default")
    response = call(client, standin.session_token(SHOP, KEY))
    assert response.status_code == 200 and response.json["installed_now"] is True
    assert app.shopify_tokens.status(SHOP, "default").active
    assert len(standin.token_requests) == 2


# -- refusals: 401 with App Bridge's retry header, nothing asked of Shopify, nothing stored --------


def test_no_session_token_is_401(client, app, standin):
    assert_session_refused(call(client, None))
    assert_session_refused(client.get("/shopify/default/api/shop", headers={"Authorization": "Basic eDp5"}))
    assert standin.calls == [] and installs(app) == []


def test_an_expired_session_token_is_401(client, app, standin, clock):
    session_token = standin.session_token(SHOP, KEY)
    clock.advance(minutes=5)
    response = call(client, session_token)
    assert_session_refused(response)
    assert "expired" in response.json["message"]
    assert standin.calls == [] and installs(app) == []


def test_a_session_token_of_another_app_is_401(client, app, standin):
    assert_session_refused(call(client, standin.session_token(SHOP, SECOND_KEY), app_name="default"))
    assert standin.calls == [] and installs(app) == []


@pytest.mark.parametrize("raw", ["", "garbage", "a.b.c", "x" * 10_000, "Bearer", "\u00ff\u00fe"])
def test_a_malformed_session_token_is_401_never_a_500(client, app, standin, raw):
    assert_session_refused(call(client, raw))
    assert standin.calls == [] and installs(app) == []


def test_shopify_refusing_the_session_token_is_401_and_nothing_is_stored(client, app, standin):
    standin.fail_next(TOKEN_PATH, 400, {"error": "invalid_subject_token",
                                        "error_description": "The subject token is invalid."})
    assert_session_refused(call(client, standin.session_token(SHOP, KEY)))
    assert installs(app) == [] and standin.subscriptions.get(SHOP, []) == []


def test_shopify_refusing_our_credentials_is_502_and_names_the_operators_fix(client, app, standin):
    standin.fail_next(TOKEN_PATH, 400, {"error": "invalid_client", "error_description": "bad client"})
    response = call(client, standin.session_token(SHOP, KEY))
    assert response.status_code == 502 and response.json["error"] == "app_credentials_refused"
    assert RETRY_HEADER not in response.headers
    assert installs(app) == []


def test_an_unknown_app_is_404(client, app, standin):
    response = call(client, standin.session_token(SHOP, KEY), app_name="nope")
    assert response.status_code == 404 and response.json["error"] == "unknown_app"


# -- one shop per token ---------------------------------------------------------------------------


def test_a_token_serves_only_its_own_shop_whatever_the_request_names(client, app, standin):
    call(client, standin.session_token(SHOP, KEY))
    call(client, standin.session_token(OTHER_SHOP, KEY))
    for query in (f"?shop={OTHER_SHOP}", f"?shop={OTHER_SHOP}&shop={OTHER_SHOP}", ""):
        response = call(client, standin.session_token(SHOP, KEY), query=query)
        assert response.status_code == 200 and response.json["shop"] == SHOP
        assert OTHER_SHOP not in response.get_data(as_text=True)


def test_the_session_token_and_the_stored_tokens_are_never_logged_or_answered(client, app, standin, caplog):
    caplog.set_level(logging.DEBUG)
    session_token = standin.session_token(SHOP, KEY)
    response = call(client, session_token)
    stored = [app.shopify_tokens.access_token(SHOP, "default")]
    text = response.get_data(as_text=True)
    for secret in [session_token, *stored]:
        assert secret not in text and secret not in caplog.text
