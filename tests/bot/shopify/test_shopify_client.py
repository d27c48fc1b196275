"""The Shopify token client: request forms, answers parsed, OAuth errors named for a person."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from bot.shopify.client import ShopifyApp, ShopifyHttp, ShopifyOAuth, ShopifyTokenAnswer, required_scopes_missing
from bot.shopify.errors import (
    ShopifyBadCredentials,
    ShopifyError,
    ShopifyOAuthError,
    ShopifyReauthRequired,
    ShopifySessionTokenRefused,
    ShopifyUnavailable,
)
from bot.util.retry import RetryPolicy

from upstream_fixtures import load_fixture

SHOP = "some-shop.myshopify.com"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
APP = ShopifyApp(name="default", api_key="key-1", api_secret="secret-1", scopes=("read_orders", "read_products"))


@pytest.fixture
def oauth() -> ShopifyOAuth:
    http = ShopifyHttp(retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None))
    return ShopifyOAuth(http, origin="https://{shop}", app=APP)


def form_of(call) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(call.request.body).items()}


def test_authorize_url_asks_offline_access_for_the_apps_scopes(oauth):
    url = oauth.authorize_url(SHOP, state="ab" * 32, redirect_uri="https://bot.example.com/shopify/default/callback")
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc, parts.path) == ("https", SHOP, "/admin/oauth/authorize")
    assert query == {"client_id": "key-1", "scope": "read_orders,read_products", "state": "ab" * 32,
                     "redirect_uri": "https://bot.example.com/shopify/default/callback"}
    assert "grant_options" not in parts.query


@responses.activate
def test_code_exchange_asks_for_expiring_tokens_and_parses_the_pair(oauth):
    responses.post(TOKEN_URL, json=load_fixture("shopify/token_expiring.json"))
    answer = oauth.exchange_code(SHOP, "the-code")
    assert form_of(responses.calls[0]) == {"client_id": "key-1", "client_secret": "secret-1", "code": "the-code",
                                           "expiring": "1"}
    body = load_fixture("shopify/token_expiring.json")
    assert (answer.access_token, answer.expires_in, answer.refresh_token, answer.refresh_token_expires_in) == (
        body["access_token"], body["expires_in"], body["refresh_token"], body["refresh_token_expires_in"])


@responses.activate
def test_refresh_and_client_credentials_send_their_grants(oauth):
    responses.post(TOKEN_URL, json=load_fixture("shopify/token_expiring.json"))
    responses.post(TOKEN_URL, json=load_fixture("shopify/token_client_credentials.json"))
    oauth.refresh(SHOP, "old-refresh")
    answer = oauth.client_credentials(SHOP)
    assert form_of(responses.calls[0])["grant_type"] == "refresh_token"
    assert form_of(responses.calls[0])["refresh_token"] == "old-refresh"
    assert form_of(responses.calls[1])["grant_type"] == "client_credentials"
    assert answer.refresh_token is None and answer.expires_in == 86399


@responses.activate
def test_token_exchange_sends_the_session_token_for_an_expiring_offline_token(oauth):
    responses.post(TOKEN_URL, json=load_fixture("shopify/token_expiring.json"))
    answer = oauth.exchange_session_token(SHOP, "the.session.token")
    assert form_of(responses.calls[0]) == {
        "client_id": "key-1", "client_secret": "secret-1", "expiring": "1",
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "the.session.token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token"}
    assert answer.refresh_token == load_fixture("shopify/token_expiring.json")["refresh_token"]


@responses.activate
def test_a_refused_session_token_is_its_own_error_and_not_retried(oauth):
    responses.post(TOKEN_URL, status=400, json=load_fixture("shopify/error_invalid_subject_token.json"))
    with pytest.raises(ShopifySessionTokenRefused) as info:
        oauth.exchange_session_token(SHOP, "the.session.token")
    assert "reload the app" in str(info.value) and "the.session.token" not in str(info.value)
    assert len(responses.calls) == 1


@pytest.mark.parametrize("fixture_name, error_class, words", [
    ("shopify/error_invalid_grant.json", ShopifyReauthRequired, "shopify install"),
    ("shopify/error_invalid_client.json", ShopifyBadCredentials, "client id/secret"),
    ("shopify/error_shop_not_permitted.json", ShopifyBadCredentials, "own organisation"),
    ("shopify/error_app_not_installed.json", ShopifyBadCredentials, "not installed"),
])
@responses.activate
def test_oauth_errors_are_named_and_say_what_to_do(oauth, fixture_name, error_class, words):
    responses.post(TOKEN_URL, status=400, json=load_fixture(fixture_name))
    with pytest.raises(error_class) as info:
        oauth.refresh(SHOP, "refresh")
    assert words in str(info.value) and SHOP in str(info.value)
    assert "secret-1" not in str(info.value)
    assert len(responses.calls) == 1  # refused grants are not retried


@responses.activate
def test_5xx_is_retried_and_an_unknown_4xx_is_a_plain_oauth_error(oauth):
    responses.post(TOKEN_URL, status=502)
    responses.post(TOKEN_URL, json=load_fixture("shopify/token_client_credentials.json"))
    assert oauth.client_credentials(SHOP).access_token
    responses.post(TOKEN_URL, status=422, json={"error": "something_new"})
    with pytest.raises(ShopifyOAuthError) as info:
        oauth.client_credentials(SHOP)
    assert type(info.value) is ShopifyOAuthError and "something_new" in str(info.value)


@responses.activate
def test_persistent_5xx_surfaces_as_unavailable(oauth):
    responses.post(TOKEN_URL, status=503)
    with pytest.raises(ShopifyUnavailable):
        oauth.client_credentials(SHOP)
    assert len(responses.calls) == 3


@pytest.mark.parametrize("body", [{}, {"access_token": ""}, {"access_token": "a", "expires_in": "3600"},
                                  {"access_token": "a", "refresh_token": "r"}, []])
def test_malformed_token_answers_are_errors(body):
    with pytest.raises(ShopifyError):
        ShopifyTokenAnswer.parse(body)


def test_missing_scopes_count_write_as_read():
    answer = ShopifyTokenAnswer("t", scope="write_orders")
    assert list(required_scopes_missing(APP, answer)) == ["read_products"]
    assert not required_scopes_missing(APP, ShopifyTokenAnswer("t", scope="read_orders,read_products"))


def test_two_apps_keep_their_own_credentials_in_the_same_process():
    other = ShopifyApp(name="second", api_key="key-2", api_secret="secret-2")
    http = ShopifyHttp()
    first, second = ShopifyOAuth(http, origin="https://{shop}", app=APP), ShopifyOAuth(http, origin="https://{shop}", app=other)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, json=load_fixture("shopify/token_client_credentials.json"))
        mock.post(TOKEN_URL, json=load_fixture("shopify/token_client_credentials.json"))
        mock.post(TOKEN_URL, json=load_fixture("shopify/token_client_credentials.json"))
        first.client_credentials(SHOP)
        second.client_credentials(SHOP)
        first.client_credentials(SHOP)
        sent = [(form_of(call)["client_id"], form_of(call)["client_secret"]) for call in mock.calls]
    assert sent == [("key-1", "secret-1"), ("key-2", "secret-2"), ("key-1", "secret-1")]
    assert "secret" not in repr(APP)
