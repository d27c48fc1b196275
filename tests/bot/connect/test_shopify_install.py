"""The Shopify install flow end to end: the bot's Flask routes (test client) against the Shopify
stand-in served on a real local port — install start, the stand-in's auto-consent redirect with
a real hmac, the callback, stored tokens, webhook subscriptions, and the app URL.

"Nothing changes" is checked by what the stand-in saw (`calls`), what is stored, and — where a
refusal must not burn the state — by completing the install with the genuine query afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from bot.app import App
from bot.connect.shopify_install import InstallRefused, finish_install, shop_graphql, start_install
from bot.shopify.signing import query_hmac
from bot.shopify.subscriptions import TOPICS
from bot.web.shopify_routes import _script_string
from tokens.models import OAuthState, ShopifyInstall

from shopify_install_helpers import (
    BAD_SHOPS,
    KEY,
    OLD_SECRET,
    OTHER_SHOP,
    PUBLIC,
    SECOND_KEY,
    SECOND_SECRET,
    SECRET,
    SHOP,
)


# -- helpers ------------------------------------------------------------------------------------


def start(client, shop: str = SHOP, app_name: str = "default") -> str:
    """GET our install route; the authorize URL it redirects to."""
    response = client.get(f"/shopify/{app_name}/install?{urlencode({'shop': shop})}")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def consent(authorize_url: str) -> list[tuple[str, str]]:
    """The merchant approves at the stand-in: the signed query of its redirect to our callback."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return parse_qsl(urlsplit(answer.headers["Location"]).query, keep_blank_values=True)


def callback(client, pairs: list[tuple[str, str]], app_name: str = "default"):
    return client.get(f"/shopify/{app_name}/callback?{urlencode(pairs)}")


def signed(pairs: list[tuple[str, str]], secret: str) -> list[tuple[str, str]]:
    """`pairs` without their hmac, signed again with `secret` (as Shopify would with that secret)."""
    rest = [(k, v) for k, v in pairs if k != "hmac"]
    return rest + [("hmac", query_hmac(rest, secret))]


def install(client, shop: str = SHOP, app_name: str = "default") -> Any:
    response = callback(client, consent(start(client, shop, app_name)), app_name)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def app_url_query(clock, shop: str = SHOP, secret: str = SECRET, **extra: str) -> str:
    """The signed query Shopify's admin puts on the app URL."""
    pairs = [("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZmlyc3Qtc2hvcA"), ("shop", shop),
             ("timestamp", str(int(clock.epoch()))), *extra.items()]
    return urlencode(pairs + [("hmac", query_hmac(pairs, secret))])


def error_of(response) -> str:
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert body["message"]
    return body["error"]


def stored(app: App) -> list[tuple[str, str]]:
    return [(s.app, s.shop) for s in app.shopify_tokens.all_status()]


def state_rows(app: App) -> int:
    with app.db.session() as session:
        return session.scalar(select(func.count()).select_from(OAuthState))


def secret_values(app: App) -> list[str]:
    """Every stored token value, decrypted: none may ever appear in a page."""
    with app.db.session() as session:
        rows = session.scalars(select(ShopifyInstall)).all()
        values = []
        for row in rows:
            values.append(app.vault.decrypt(row.access_token_enc))
            if row.refresh_token_enc:
                values.append(app.vault.decrypt(row.refresh_token_enc))
            values += [row.access_token_enc, row.refresh_token_enc or ""]
    return [value for value in values if value]


# -- install start ------------------------------------------------------------------------------


def test_install_redirects_to_the_shops_authorize_page_with_a_fresh_single_use_state(client, app, standin,
                                                                                   standin_server):
    first, second = start(client), start(client)
    parts = urlsplit(first)
    assert f"{parts.scheme}://{parts.netloc}" == standin_server.url
    assert parts.path == f"/{SHOP}/admin/oauth/authorize"
    query = dict(parse_qsl(parts.query))
    assert query["client_id"] == KEY and query["scope"] == "read_orders"
    assert query["redirect_uri"] == f"{PUBLIC}/shopify/default/callback"
    assert not any(key.startswith("grant_options") for key in query)  # offline access
    assert re.fullmatch(r"[0-9a-f]{64}", query["state"])
    assert query["state"] != dict(parse_qsl(urlsplit(second).query))["state"]
    with app.db.session() as session:  # only the hash is kept, bound to the app and the shop
        row = session.get(OAuthState, hashlib.sha256(query["state"].encode()).hexdigest())
        assert (row.purpose, row.subject, row.used_at) == ("shopify:default", SHOP, None)
        assert row.expires_at == app.clock() + timedelta(minutes=10)
    assert standin.calls == []  # starting an install asks Shopify nothing


def test_install_lower_cases_the_shop_and_each_app_uses_its_own_client_id(client):
    url = start(client, "First-Shop.myshopify.com", "second")
    assert urlsplit(url).path == f"/{SHOP}/admin/oauth/authorize"
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["client_id"] == SECOND_KEY
    assert query["redirect_uri"] == f"{PUBLIC}/shopify/second/callback"


@pytest.mark.parametrize("shop", BAD_SHOPS)
def test_install_refuses_a_shop_that_is_not_a_myshopify_host_before_anything(client, app, standin, shop):
    response = client.get(f"/shopify/default/install?{urlencode({'shop': shop})}")
    assert response.status_code == 400 and error_of(response) == "invalid_shop"
    assert standin.calls == [] and state_rows(app) == 0


def test_install_without_a_shop_is_400(client, app):
    response = client.get("/shopify/default/install")
    assert response.status_code == 400 and error_of(response) == "invalid_shop"


@pytest.mark.parametrize("path", ["/shopify/nope/install?shop=first-shop.myshopify.com", "/shopify/nope/callback",
                                  "/shopify/nope?shop=first-shop.myshopify.com"])
def test_an_unknown_app_is_404_json(client, app, standin, path):
    response = client.get(path)
    assert response.status_code == 404 and error_of(response) == "unknown_app"
    assert standin.calls == [] and state_rows(app) == 0


# -- the callback, accepted ---------------------------------------------------------------------


def test_callback_stores_an_expiring_oauth_token_and_subscribes_webhooks(client, app, standin, clock):
    response = install(client)

    page = response.get_data(as_text=True)
    assert response.content_type.startswith("text/html") and "설치 완료" in page and SHOP in page
    status = app.shopify_tokens.status(SHOP, "default")
    assert (status.mode, status.status, status.scopes) == ("oauth", "active", ("read_orders",))
    assert status.access_expires_at == clock.now + timedelta(seconds=3600)
    assert status.refresh_expires_at == clock.now + timedelta(seconds=7776000)
    (exchange,) = standin.token_requests
    assert exchange["expiring"] == "1" and exchange["client_id"] == KEY and exchange["client_secret"] == SECRET
    subs = standin.subscriptions[SHOP]
    assert sorted(sub["topic"] for sub in subs) == sorted(TOPICS)
    assert {sub["uri"] for sub in subs} == {f"{PUBLIC}/shopify/default/webhooks"}
    for value in secret_values(app):
        assert value not in page
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_second_install_replaces_the_token_and_creates_no_duplicate_subscriptions(client, app, standin):
    install(client)
    first_token = app.shopify_tokens.access_token(SHOP, "default")
    again = install(client)
    assert "이미 구독됨" in again.get_data(as_text=True)
    assert len(standin.subscriptions[SHOP]) == 3
    assert app.shopify_tokens.access_token(SHOP, "default") != first_token
    assert len(standin.token_requests) == 2


def test_the_installed_token_works_for_graphql(client, app):
    install(client)
    data = shop_graphql(app, SHOP, "default").query("{ shop { name } }")
    assert data == {"shop": {"name": "First Shop"}}


def test_old_secret_is_accepted_during_rotation(client, app, standin):
    pairs = signed(consent(start(client)), OLD_SECRET)
    response = callback(client, pairs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert app.shopify_tokens.status(SHOP, "default").active
    # The exchange itself always uses the current secret.
    assert standin.token_requests[0]["client_secret"] == SECRET


def test_a_webhook_subscription_failure_is_shown_and_the_install_stands(client, app, standin):
    standin.fail_next("/graphql.json", 500, {"errors": "Internal Server Error"}, times=3)
    response = callback(client, consent(start(client)))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "설치 완료" in page and "구독 실패" in page
    assert app.shopify_tokens.status(SHOP, "default").active
    assert standin.subscriptions[SHOP] == []
    install(client)  # installing again retries the subscriptions
    assert len(standin.subscriptions[SHOP]) == 3


# -- the callback, refused: nothing changes -----------------------------------------------------


def tamper(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for key, value in pairs:
        if key == "hmac":
            value = ("0" if value[0] != "0" else "1") + value[1:]
        out.append((key, value))
    return out


BAD_HMACS: dict[str, Callable[[list[tuple[str, str]]], list[tuple[str, str]]]] = {
    "tampered": tamper,
    "missing": lambda pairs: [(k, v) for k, v in pairs if k != "hmac"],
    "empty": lambda pairs: [(k, v if k != "hmac" else "") for k, v in pairs],
    "extra parameter after signing": lambda pairs: pairs + [("scope", "write_orders")],
    "changed code": lambda pairs: [(k, v if k != "code" else "0" * 32) for k, v in pairs],
    "another app's secret": lambda pairs: signed(pairs, SECOND_SECRET),
    "upper-case hex of another secret": lambda pairs: [(k, v.upper()) if k == "hmac" else (k, v)
                                                       for k, v in signed(pairs, "guess")],
    "hmac given twice": lambda pairs: pairs + [p for p in pairs if p[0] == "hmac"],
}


@pytest.mark.parametrize("how", list(BAD_HMACS))
def test_a_bad_hmac_is_400_with_no_outbound_request_and_the_state_kept(client, app, standin, how):
    pairs = consent(start(client))
    calls = len(standin.calls)
    response = callback(client, BAD_HMACS[how](pairs))
    assert response.status_code == 400 and error_of(response) == "invalid_hmac"
    assert len(standin.calls) == calls and standin.token_requests == []
    assert stored(app) == []
    assert callback(client, pairs).status_code == 200  # the state was not used up


def test_a_query_signed_for_one_app_is_refused_by_the_other(client, app, standin):
    pairs = consent(start(client, app_name="second"))
    response = callback(client, pairs, app_name="default")
    assert response.status_code == 400 and error_of(response) == "invalid_hmac"
    assert stored(app) == [] and standin.token_requests == []


@pytest.mark.parametrize("shop", BAD_SHOPS)
def test_a_signed_callback_for_a_bad_shop_is_400_before_any_outbound_request(client, app, standin, shop):
    pairs = consent(start(client))
    pairs = signed([(k, v if k != "shop" else shop) for k, v in pairs], SECRET)
    calls = len(standin.calls)
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "invalid_shop"
    assert len(standin.calls) == calls and stored(app) == []


def test_a_reused_state_is_400_and_the_code_is_not_exchanged_again(client, app, standin):
    pairs = consent(start(client))
    assert callback(client, pairs).status_code == 200
    again = callback(client, pairs)
    assert again.status_code == 400 and error_of(again) == "state_used"
    assert len(standin.token_requests) == 1


def test_an_unknown_state_is_400(client, app, standin):
    pairs = consent(start(client))
    forged = signed([(k, v if k != "state" else "ab" * 32) for k, v in pairs], SECRET)
    response = callback(client, forged)
    assert response.status_code == 400 and error_of(response) == "state_unknown"
    assert standin.token_requests == [] and stored(app) == []


def test_a_missing_state_is_400(client, app, standin):
    pairs = signed([(k, v) for k, v in consent(start(client)) if k != "state"], SECRET)
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "state_missing"
    assert standin.token_requests == []


def test_an_expired_state_is_400(client, app, standin, clock):
    authorize = start(client)
    clock.advance(minutes=10, seconds=1)
    pairs = consent(authorize)  # signed now: the timestamp is fresh, the state is not
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "state_expired"
    assert standin.token_requests == [] and stored(app) == []


def test_a_state_issued_for_another_shop_is_400(client, app, standin):
    authorize = start(client, SHOP)
    # The stand-in signs a callback for OTHER_SHOP that carries the state issued for SHOP.
    pairs = consent(authorize.replace(f"/{SHOP}/", f"/{OTHER_SHOP}/"))
    assert dict(pairs)["shop"] == OTHER_SHOP
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "state_other_shop"
    assert standin.token_requests == [] and stored(app) == []


def test_a_state_issued_for_another_app_is_400(client, app, standin):
    pairs = consent(start(client, app_name="second"))
    response = callback(client, signed(pairs, SECRET), app_name="default")
    assert response.status_code == 400 and error_of(response) == "state_unknown"
    assert standin.token_requests == [] and stored(app) == []


@pytest.mark.parametrize("skew", [timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)])
def test_a_stale_or_future_timestamp_is_400_and_changes_nothing(client, app, standin, clock, skew):
    pairs = consent(start(client))
    calls = len(standin.calls)
    clock.now += skew
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "stale_timestamp"
    assert len(standin.calls) == calls and stored(app) == []
    clock.now -= skew
    assert callback(client, pairs).status_code == 200  # nothing was used up


def test_a_timestamp_within_five_minutes_is_accepted(client, app, clock):
    pairs = consent(start(client))
    clock.advance(minutes=5)
    assert callback(client, pairs).status_code == 200


def test_a_missing_timestamp_is_400(client, app):
    pairs = signed([(k, v) for k, v in consent(start(client)) if k != "timestamp"], SECRET)
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "stale_timestamp"


def test_missing_scopes_are_403_naming_them_and_nothing_is_stored(client, app, standin):
    standin.register_app(SECOND_KEY, SECOND_SECRET, scopes_granted="read_products")
    response = callback(client, consent(start(client, app_name="second")), app_name="second")
    assert response.status_code == 403 and error_of(response) == "missing_scopes"
    assert "read_orders" in response.get_json()["message"]
    assert stored(app) == [] and standin.subscriptions[SHOP] == []


def test_write_scope_implies_the_read_scope(client, app, standin):
    standin.register_app(SECOND_KEY, SECOND_SECRET, scopes_granted="write_orders")
    install(client, app_name="second")
    assert app.shopify_tokens.status(SHOP, "second").scopes == ("write_orders",)


def test_a_refused_code_is_400_and_nothing_is_stored(client, app, standin):
    pairs = consent(start(client))
    standin.fail_next("/admin/oauth/access_token", 400, {"error": "invalid_grant", "error_description": "used"})
    response = callback(client, pairs)
    assert response.status_code == 400 and error_of(response) == "code_refused"
    assert stored(app) == []


def test_a_callback_without_a_code_is_400_and_keeps_the_state(client, app, standin):
    pairs = consent(start(client))
    response = callback(client, signed([(k, v) for k, v in pairs if k != "code"], SECRET))
    assert response.status_code == 400 and error_of(response) == "missing_code"
    assert standin.token_requests == []
    assert callback(client, pairs).status_code == 200


def test_credentials_refused_at_the_exchange_are_a_server_problem_502(client, app, standin):
    pairs = consent(start(client))
    standin.register_app(KEY, "a-secret-this-server-does-not-have")
    response = callback(client, pairs)
    assert response.status_code == 502 and error_of(response) == "app_credentials_refused"
    assert SECRET not in response.get_data(as_text=True) and stored(app) == []


def test_the_flow_logic_raises_install_refused_directly(app, standin):
    with pytest.raises(InstallRefused) as refused:
        finish_install(app, "default", [("shop", SHOP), ("code", "x"), ("hmac", "00")])
    assert (refused.value.status, refused.value.code) == (400, "invalid_hmac")
    with pytest.raises(InstallRefused) as refused:
        start_install(app, "default", "evil.com")
    assert (refused.value.status, refused.value.code) == (400, "invalid_shop")
    assert standin.calls == []


# -- several apps -------------------------------------------------------------------------------


def test_two_apps_installed_alternately_on_two_shops_keep_their_own_tokens(client, app, standin):
    # Interleaved: both flows are open at once, and each callback is checked with its own app's secret.
    default_a = start(client, SHOP, "default")
    second_b = start(client, OTHER_SHOP, "second")
    second_pairs = consent(second_b)
    default_pairs = consent(default_a)
    assert callback(client, second_pairs, "second").status_code == 200
    assert callback(client, default_pairs, "default").status_code == 200
    install(client, OTHER_SHOP, "default")
    install(client, SHOP, "second")

    pairs = [(app_name, shop) for app_name in ("default", "second") for shop in (SHOP, OTHER_SHOP)]
    assert sorted(stored(app)) == sorted(pairs)
    tokens = {pair: app.shopify_tokens.access_token(pair[1], pair[0]) for pair in pairs}
    assert len(set(tokens.values())) == 4
    for app_name, shop in pairs:
        data = shop_graphql(app, shop, app_name).query("{ shop { name } }")
        assert data["shop"]["name"] == ("First Shop" if shop == SHOP else "Second Shop")
    seen = {(r["shop"], r["app"]) for r in standin.graphql_requests if "shop { name }" in r["query"]}
    assert seen == {(SHOP, KEY), (SHOP, SECOND_KEY), (OTHER_SHOP, KEY), (OTHER_SHOP, SECOND_KEY)}
    for shop, topics in ((SHOP, 3), (OTHER_SHOP, 1)):  # each app subscribed to its own webhook route
        uris = sorted(sub["uri"] for sub in standin.subscriptions[shop])  # (OTHER_SHOP has no jobs: app/uninstalled)
        assert uris == [f"{PUBLIC}/shopify/default/webhooks"] * topics + [f"{PUBLIC}/shopify/second/webhooks"] * topics


# -- the app URL --------------------------------------------------------------------------------


def test_app_url_with_a_working_token_shows_a_status_page_without_tokens(client, app, clock, standin):
    install(client)
    response = client.get(f"/shopify/default?{app_url_query(clock)}")
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "First Shop" in page and SHOP in page and "default" in page and "read_orders" in page
    assert "2026-11-22 09:00 KST" in page  # connected since, in the configured time zone
    for value in secret_values(app):
        assert value not in page
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]
    assert standin.graphql_requests[-1]["query"] == "{ shop { name } }"


def stale(query: str, clock) -> str:
    """`query` as it arrives six minutes after Shopify signed it."""
    clock.advance(minutes=6)
    return query


@pytest.mark.parametrize("breakage", ["wrong hmac", "no hmac", "other app's secret", "bad shop", "stale"])
def test_app_url_refuses_bad_requests_with_400_and_asks_nothing(client, app, clock, standin, breakage):
    install(client)
    calls = len(standin.calls)
    query = {
        "wrong hmac": lambda: app_url_query(clock).replace("hmac=", "hmac=0"),
        "no hmac": lambda: re.sub(r"&hmac=[0-9a-f]+", "", app_url_query(clock)),
        "other app's secret": lambda: app_url_query(clock, secret=SECOND_SECRET),
        "bad shop": lambda: app_url_query(clock, shop="x.myshopify.com.evil.com"),
        "stale": lambda: stale(app_url_query(clock), clock),
    }[breakage]()
    response = client.get(f"/shopify/default?{query}")
    assert response.status_code == 400
    assert error_of(response) == {"bad shop": "invalid_shop", "stale": "stale_timestamp"}.get(breakage, "invalid_hmac")
    assert len(standin.calls) == calls


def test_app_url_with_a_failing_token_redirects_to_reauthorisation(client, app, clock, standin):
    install(client)
    standin.uninstall(SHOP, KEY)
    response = client.get(f"/shopify/default?{app_url_query(clock)}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{PUBLIC}/shopify/default/install?shop={SHOP}"
    assert app.shopify_tokens.status(SHOP, "default").status == "invalid"
    calls = len(standin.calls)  # now known to be dead: no need to ask Shopify again
    assert client.get(f"/shopify/default?{app_url_query(clock)}").status_code == 302
    assert len(standin.calls) == calls


def test_app_url_embedded_with_a_failing_token_breaks_out_of_the_iframe(client, app, clock, standin):
    install(client)
    standin.uninstall(SHOP, KEY)
    response = client.get(f"/shopify/default?{app_url_query(clock, embedded='1')}")
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    page = response.get_data(as_text=True)
    url = f"{PUBLIC}/shopify/default/install?shop={SHOP}"
    assert f"window.top.location.href = {json.dumps(url)};" in page
    nonce = re.search(r'<script nonce="([^"]+)">', page).group(1)
    assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]
    assert f'href="{url}" target="_top"' in page


def test_the_breakout_script_string_cannot_close_the_script_element():
    nasty = 'https://x/?a=</script><script>alert(1)</script>&b="\u2028'
    literal = _script_string(nasty)
    assert "<" not in literal and ">" not in literal and "&" not in literal and "\u2028" not in literal
    assert json.loads(literal) == nasty


def test_app_url_of_a_shop_never_installed_starts_the_install(client, app, clock, standin):
    response = client.get(f"/shopify/default?{app_url_query(clock)}")
    assert response.status_code == 302
    install_start = response.headers["Location"]
    assert install_start == f"{PUBLIC}/shopify/default/install?shop={SHOP}"
    assert standin.calls == []
    # Following it through completes the install, and the app URL then shows the status page.
    authorize = start(client, dict(parse_qsl(urlsplit(install_start).query))["shop"])
    assert callback(client, consent(authorize)).status_code == 200
    assert client.get(f"/shopify/default?{app_url_query(clock)}").status_code == 200


def test_app_url_embedded_of_a_shop_never_installed_breaks_out_to_the_install(client, app, clock):
    response = client.get(f"/shopify/default?{app_url_query(clock, embedded='1')}")
    assert response.status_code == 200
    url = f"{PUBLIC}/shopify/default/install?shop={SHOP}"
    assert f"window.top.location.href = {json.dumps(url)};" in response.get_data(as_text=True)


def test_app_url_is_per_app(client, app, clock):
    install(client, SHOP, "second")
    # Installed with "second" only: the default app's URL still starts the default app's install.
    response = client.get(f"/shopify/default?{app_url_query(clock)}")
    assert response.status_code == 302 and "/shopify/default/install" in response.headers["Location"]
    assert client.get(f"/shopify/second?{app_url_query(clock, secret=SECOND_SECRET)}").status_code == 200


def test_app_url_refreshes_an_expired_access_token_and_shows_the_status_page(client, app, clock, standin):
    install(client)
    clock.advance(hours=2)  # the 1 h access token has expired; the refresh token renews it
    response = client.get(f"/shopify/default?{app_url_query(clock)}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [r.get("grant_type") for r in standin.token_requests] == [None, "refresh_token"]
    assert app.shopify_tokens.status(SHOP, "default").access_expires_at == clock.now + timedelta(hours=1)


def test_app_url_when_shopify_does_not_answer_is_503_and_keeps_the_install(client, app, clock, standin):
    install(client)
    standin.fail_next("/graphql.json", 503, {"errors": "Service Unavailable"}, times=3)
    response = client.get(f"/shopify/default?{app_url_query(clock)}")
    assert response.status_code == 503 and response.content_type.startswith("text/html")
    assert app.shopify_tokens.status(SHOP, "default").active
