"""Hostile and odd input to the Shopify routes of a served bot (issue 8, items 13 and 14): whatever an
outsider sends — signed or not — is answered 4xx, never 500, and nothing is stored."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from bot.app import App
from bot.sandbox.server import RunningServer
from bot.shopify.signing import query_hmac, verify_query, verify_webhook, webhook_hmac
from bot.store.models import WebhookEvent
from tokens.models import OAuthState

from webhook_helpers import API_SECRET, HOOK_PATH, SHOP

NON_ASCII = ["é" * 44, "한글서명", "\x00\xff", "AAAA\u2028"]


def webhook_headers(body: bytes, **overrides: str | bytes) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": webhook_hmac(body, API_SECRET), "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "wh-odd-1", "X-Shopify-Triggered-At": "2026-11-22T00:00:00Z"}
    headers.update({"X-Shopify-" + key.replace("_", "-"): value for key, value in overrides.items()})
    return headers


def stored_rows(app: App, model: type = WebhookEvent) -> int:
    with app.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def post(server: RunningServer, body: bytes, headers: dict) -> requests.Response:
    return requests.post(server.url + HOOK_PATH, data=body, headers=headers, timeout=30)


# -- item 13: non-ASCII signatures ------------------------------------------------------------------


@pytest.mark.parametrize("given", NON_ASCII)
def test_the_signature_checks_refuse_non_ascii_text_without_raising(given: str) -> None:
    assert verify_webhook(b"{}", given, [API_SECRET]) is False
    assert verify_query([("shop", SHOP), ("hmac", given)], [API_SECRET]) is False


@pytest.mark.parametrize("header", [value.encode("utf-8") for value in NON_ASCII] + ["é" * 44])
def test_a_webhook_with_a_non_ascii_hmac_header_is_401_and_nothing_is_stored(
        bot: App, bot_server: RunningServer, header: str | bytes) -> None:
    body = b'{"id": 1}'
    answer = post(bot_server, body, webhook_headers(body, Hmac_Sha256=header))
    assert answer.status_code == 401 and answer.json() == {"error": "invalid HMAC"}
    assert stored_rows(bot) == 0


@pytest.mark.parametrize("route", ["callback", "app URL"])
@pytest.mark.parametrize("given", NON_ASCII)
def test_a_callback_or_app_url_with_a_non_ascii_hmac_is_400(bot: App, bot_server: RunningServer,
                                                           route: str, given: str) -> None:
    pairs = [("code", "c0de"), ("shop", SHOP), ("state", "s" * 64), ("timestamp", str(int(bot.clock().timestamp())))]
    path = "/shopify/default/callback" if route == "callback" else "/shopify/default"
    answer = requests.get(f"{bot_server.url}{path}?{urlencode(pairs + [('hmac', given)])}", timeout=30)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_hmac"
    assert stored_rows(bot, OAuthState) == 0


# -- item 14: signed but odd input ------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("body, overrides", [
    (nested(100_000), {}),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}),
    (b'{"id": 1}', {"Triggered_At": "0001-01-01T00:00:00+23:59"}),
    (b'{"id": 1}', {"Triggered_At": "9999-12-31T23:59:59-23:59"}),
    (b'{"id": 1}', {"Triggered_At": "yesterday"}),
], ids=["object nested 100,000 deep", "array nested 100,000 deep", "Triggered-At before year 1 in UTC",
        "Triggered-At after year 9999 in UTC", "Triggered-At unreadable"])
def test_a_signed_webhook_with_odd_content_is_400_and_nothing_is_stored(
        bot: App, bot_server: RunningServer, body: bytes, overrides: dict[str, str]) -> None:
    answer = post(bot_server, body, webhook_headers(body, **overrides))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]
    assert stored_rows(bot) == 0
    fine = b'{"id": 2}'
    assert post(bot_server, fine, webhook_headers(fine, Webhook_Id="wh-odd-2")).status_code == 200


@pytest.mark.parametrize("route", ["callback", "app URL"])
@pytest.mark.parametrize("timestamp", ["9" * 400, "1" * 4000, "1" * 13, "-" + "9" * 400])
def test_a_signed_callback_or_app_url_with_a_huge_timestamp_is_400(bot: App, bot_server: RunningServer,
                                                                  route: str, timestamp: str) -> None:
    pairs = [("code", "c0de"), ("shop", SHOP), ("state", "s" * 64), ("timestamp", timestamp)]
    pairs.append(("hmac", query_hmac(pairs, API_SECRET)))
    path = "/shopify/default/callback" if route == "callback" else "/shopify/default"
    answer = requests.get(f"{bot_server.url}{path}?{urlencode(pairs)}", timeout=30)
    assert answer.status_code == 400 and answer.json()["error"] == "stale_timestamp"
    assert stored_rows(bot, OAuthState) == 0
