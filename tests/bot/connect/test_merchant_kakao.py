"""Each merchant connects their own KakaoTalk from the embedded app: the authorize URL from the API, Kakao's
redirect to the server's /kakao/callback (the Kakao stand-in on a real port consents), the login bound to
the shop by its single-use state, the connection and the friends list read back — one shop never seeing
another's. Every API route refuses a request without a session token."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from bot.app import App
from bot.connect.merchant_kakao import EXPIRED_KO, TEAM_ONLY_KO
from bot.delivery.problems import ProblemReporter
from bot.store.merchant_settings import merchant_account
from bot.web.embedded_api import RETRY_HEADER
from bot.web.server import create_app

from shopify_install_helpers import KEY, OTHER_SHOP, SECOND_KEY, SHOP


def api(client, standin, method: str, path: str, shop: str = SHOP, key: str = KEY, app_name: str = "default"):
    headers = {"Authorization": f"Bearer {standin.session_token(shop, key)}"}
    return client.open(f"/shopify/{app_name}/api/{path}", method=method, headers=headers)


def connect_kakao(client, standin, shop: str = SHOP, app_name: str = "default", key: str = KEY):
    """The merchant clicks "카카오톡 연결": the API's URL opened, Kakao consents, its redirect reaches the server."""
    started = api(client, standin, "POST", "kakao/connect", shop, key, app_name)
    assert started.status_code == 200, started.get_data(as_text=True)
    consent = requests.get(started.json["authorize_url"], allow_redirects=False, timeout=5)
    assert consent.status_code == 302
    back = urlsplit(consent.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def test_a_merchant_without_kakaotalk_sees_not_connected_and_no_friends(merchant_client, standin):
    found = api(merchant_client, standin, "GET", "kakao")
    assert found.status_code == 200 and found.json["state"] == "not_connected" and found.json["scopes"] == []
    friends = api(merchant_client, standin, "GET", "kakao/friends")
    assert friends.status_code == 409 and friends.json["error"] == "kakao_not_connected"


def test_connecting_stores_the_login_under_the_shop_and_the_page_sees_it(merchant_client, merchant_app, standin,
                                                                        sandbox):
    started = api(merchant_client, standin, "POST", "kakao/connect")
    url = urlsplit(started.json["authorize_url"])
    query = dict(parse_qsl(url.query))
    assert url.path == "/oauth/authorize" and query["redirect_uri"].endswith("/kakao/callback") and query["state"]
    assert started.headers["Cache-Control"] == "no-store"

    page = connect_kakao(merchant_client, standin)
    assert page.status_code == 200 and "카카오톡이 연결되었습니다" in page.get_data(as_text=True)
    assert merchant_account("default", SHOP) not in page.get_data(as_text=True)
    found = api(merchant_client, standin, "GET", "kakao")
    assert found.json["state"] == "connected" and found.json["problem"] is None
    assert set(found.json["scopes"]) >= {"talk_message", "friends"}
    assert merchant_app.kakao_tokens.status(merchant_account("default", SHOP)) is not None
    assert merchant_app.kakao_tokens.status("default") is None  # the operator's login is untouched


def test_one_shops_kakaotalk_is_never_another_shops(merchant_client, merchant_app, standin):
    connect_kakao(merchant_client, standin, SHOP)
    assert api(merchant_client, standin, "GET", "kakao", shop=OTHER_SHOP).json["state"] == "not_connected"
    assert api(merchant_client, standin, "GET", "kakao/friends", shop=OTHER_SHOP).status_code == 409
    # the same shop in the other app is another merchant login too
    assert api(merchant_client, standin, "GET", "kakao", key=SECOND_KEY, app_name="second").json["state"] == \
        "not_connected"
    assert merchant_account("default", SHOP) != merchant_account("default", OTHER_SHOP) != \
        merchant_account("second", SHOP)


def test_the_state_is_single_use(merchant_client, standin):
    started = api(merchant_client, standin, "POST", "kakao/connect")
    consent = requests.get(started.json["authorize_url"], allow_redirects=False, timeout=5)
    back = urlsplit(consent.headers["Location"])
    assert merchant_client.get(f"{back.path}?{back.query}").status_code == 200
    again = merchant_client.get(f"{back.path}?{back.query}")
    assert again.status_code == 400 and again.json["error"] == "state_used"


def test_the_friends_list_is_me_and_the_friends_kakao_lists_live(merchant_client, standin, sandbox):
    connect_kakao(merchant_client, standin)
    sandbox.add_friend("홍길동", uuid="uuid-hong")
    sandbox.add_friend("김영희", uuid="uuid-kim", allowed_msg=False)
    answer = api(merchant_client, standin, "GET", "kakao/friends")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["recipients"] == [
        {"key": "me", "label": "나에게 보내기", "allowed": True},
        {"key": "uuid:uuid-kim", "label": "김영희", "allowed": False},
        {"key": "uuid:uuid-hong", "label": "홍길동", "allowed": True}]
    assert answer.json["note"] == TEAM_ONLY_KO
    sandbox.add_friend("박철수", uuid="uuid-park")
    assert len(api(merchant_client, standin, "GET", "kakao/friends").json["recipients"]) == 4  # not stored


def test_an_expired_login_asks_the_merchant_to_connect_again(merchant_client, standin, clock):
    connect_kakao(merchant_client, standin)
    clock.advance(days=61)  # past the refresh token's life
    found = api(merchant_client, standin, "GET", "kakao")
    assert found.json["state"] == "needs_login" and found.json["problem"] == EXPIRED_KO
    friends = api(merchant_client, standin, "GET", "kakao/friends")
    assert friends.status_code == 409 and friends.json["message"] == EXPIRED_KO


def test_kakao_failing_is_a_502_saying_so(merchant_client, standin, sandbox):
    connect_kakao(merchant_client, standin)
    sandbox.fail_next("/v1/api/talk/friends", 500, {"code": -1, "msg": "internal error"}, times=5)
    answer = api(merchant_client, standin, "GET", "kakao/friends")
    assert answer.status_code == 502 and answer.json["error"] == "kakao_unavailable"


# -- test message and history ----------------------------------------------------------------------------


def test_a_test_message_goes_to_me_by_default_and_shows_in_the_history(merchant_client, standin, sandbox):
    connect_kakao(merchant_client, standin)
    sent = api(merchant_client, standin, "POST", "kakao/test")
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert sent.json["results"] == [{"key": "me", "label": "me", "status": "sent", "reason": ""}]
    (template,) = sandbox.received("me")
    assert template["text"].startswith("[테스트]")
    again = api(merchant_client, standin, "POST", "kakao/test")
    assert again.json["results"][0]["status"] == "sent" and len(sandbox.received("me")) == 2  # its own slot
    history = api(merchant_client, standin, "GET", "history")
    assert [(row["job"], row["recipient"], row["status"]) for row in history.json["deliveries"]] == [
        ("test-message", "me", "sent"), ("test-message", "me", "sent")]
    assert history.json["deliveries"][0]["at"].endswith("+09:00")  # the shop owner's local time


def test_a_test_message_to_friends_reports_each_recipient(merchant_client, standin, sandbox):
    connect_kakao(merchant_client, standin)
    sandbox.add_friend("홍길동", uuid="uuid-hong")
    sandbox.add_friend("김영희", uuid="uuid-kim", allowed_msg=False)
    answer = merchant_client.post("/shopify/default/api/kakao/test",
                                  headers={"Authorization": f"Bearer {standin.session_token(SHOP, KEY)}"},
                                  json={"recipients": ["me", "uuid:uuid-hong", "uuid:uuid-kim", "uuid:uuid-gone"]})
    statuses = {row["key"]: row["status"] for row in answer.json["results"]}
    assert statuses["me"] == "sent" and statuses["uuid:uuid-hong"] == "sent"
    assert statuses["uuid:uuid-kim"] != "sent" and statuses["uuid:uuid-gone"] == "skipped"
    assert len(sandbox.received("uuid-hong")) == 1 and sandbox.received("uuid-kim") == []


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"recipients": []}', b'{"recipients": "me"}',
                                  b'{"recipients": ["friend:x"]}', b'{"recipients": [1]}',
                                  b'{"recipients": ["uuid:"]}', b'{"recipients": ' + b'["me"' + b',"me"' * 20 + b"]}"])
def test_a_malformed_test_request_is_400_and_sends_nothing(merchant_client, standin, sandbox, body):
    connect_kakao(merchant_client, standin)
    answer = merchant_client.post("/shopify/default/api/kakao/test", data=body, content_type="application/json",
                                  headers={"Authorization": f"Bearer {standin.session_token(SHOP, KEY)}"})
    assert answer.status_code == 400 and answer.json["error"] == "bad_recipients"
    assert sandbox.received("me") == []


def test_no_test_message_without_kakaotalk(merchant_client, standin, sandbox):
    answer = api(merchant_client, standin, "POST", "kakao/test")
    assert answer.status_code == 409 and sandbox.received("me") == []


def test_a_test_message_goes_out_only_through_the_token_shops_own_login(merchant_client, standin, sandbox):
    connect_kakao(merchant_client, standin, SHOP)  # the other shop has no KakaoTalk of its own
    answer = api(merchant_client, standin, "POST", "kakao/test", shop=OTHER_SHOP)
    assert answer.status_code == 409 and sandbox.received("me") == []


def test_the_history_holds_only_this_shops_deliveries(merchant_client, standin):
    connect_kakao(merchant_client, standin, SHOP)
    connect_kakao(merchant_client, standin, OTHER_SHOP)
    api(merchant_client, standin, "POST", "kakao/test", shop=SHOP)
    assert len(api(merchant_client, standin, "GET", "history", shop=SHOP).json["deliveries"]) == 1
    assert api(merchant_client, standin, "GET", "history", shop=OTHER_SHOP).json["deliveries"] == []


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1e3", ""])
def test_a_bad_history_limit_is_400(merchant_client, standin, limit):
    headers = {"Authorization": f"Bearer {standin.session_token(SHOP, KEY)}"}
    answer = merchant_client.get(f"/shopify/default/api/history?limit={limit}", headers=headers)
    assert answer.status_code == 400 and answer.json["error"] == "bad_limit"


# -- every API route needs a session token -------------------------------------------------------------


def api_routes(app: App) -> list[tuple[str, str]]:
    rules = create_app(app).url_map.iter_rules()
    return sorted((method, rule.rule.replace("<app_name>", "default")) for rule in rules
                  if "/api/" in rule.rule for method in rule.methods - {"HEAD", "OPTIONS"})


def test_the_api_routes_are_the_ones_these_tests_cover(merchant_app):
    assert api_routes(merchant_app) == [("GET", "/shopify/default/api/history"),
                                        ("GET", "/shopify/default/api/kakao"),
                                        ("GET", "/shopify/default/api/kakao/friends"),
                                        ("GET", "/shopify/default/api/settings"),
                                        ("GET", "/shopify/default/api/shop"),
                                        ("POST", "/shopify/default/api/kakao/connect"),
                                        ("POST", "/shopify/default/api/kakao/test"),
                                        ("PUT", "/shopify/default/api/settings")]


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer forged.token.here", "Basic eDp5"])
def test_every_api_route_refuses_a_request_without_a_valid_session_token(merchant_app, merchant_client, standin,
                                                                       authorization):
    for method, path in api_routes(merchant_app):
        headers = {"Authorization": authorization} if authorization is not None else {}
        answer = merchant_client.open(path, method=method, headers=headers)
        assert answer.status_code == 401 and answer.headers[RETRY_HEADER] == "1", (method, path)
    assert standin.calls == [] and merchant_app.kakao_tokens.all_status() == []


# -- the operator's view -------------------------------------------------------------------------------


def test_a_merchants_expired_login_is_shown_per_shop_never_as_the_operators_problem(merchant_client, merchant_app,
                                                                                  standin, clock):
    assert api(merchant_client, standin, "GET", "shop").status_code == 200  # installed (token exchange)
    connect_kakao(merchant_client, standin)
    healthy = merchant_client.get("/healthz").json
    assert healthy["merchants"] == [{"app": "default", "shop": SHOP, "kakao": "connected", "settings_version": 0,
                                     "jobs": 0}]
    clock.advance(days=61)
    answer = merchant_client.get("/healthz")
    assert answer.json["merchants"][0]["kakao"] == "needs_login"
    assert answer.json["kakao"] == []  # the operator's logins only
    account = merchant_account("default", SHOP)
    problems = ProblemReporter(merchant_app).check_all()
    assert not [problem for problem in problems if account in problem.key]
