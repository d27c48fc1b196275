"""The Kakao sandbox over real HTTP: OAuth, rotation, errors, friends, sends, quotas, scripting.

Answers are compared with the fixtures in tests/fixtures/kakao (exactly, or by shape where
values are random), so the fixtures and the sandbox cannot drift apart.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from bot.sandbox.kakao import MAINTENANCE, TEMPORARY_ERROR, KakaoSandbox
from bot.sandbox.server import serve

from epoch_clock import EpochClock
from upstream_fixtures import load_fixture, shape

REDIRECT = "http://localhost:8080/kakao/callback"
MEMO = "/v2/api/talk/memo/default/send"
SEND = "/v1/api/talk/friends/message/default/send"
FRIENDS = "/v1/api/talk/friends"
TEXT = {"object_type": "text", "text": "새 주문 1건", "link": {"web_url": "https://bot.example.com"}}
# 2026-11-22 12:00 in Seoul.
NOON = datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


def fixture(name: str) -> Any:
    return load_fixture(f"kakao/{name}")


@dataclass
class Env:
    sb: KakaoSandbox
    url: str
    clock: EpochClock

    def token(self, **form: str) -> requests.Response:
        data = {"client_id": self.sb.rest_api_key, "client_secret": self.sb.client_secret or "", **form}
        data = {k: v for k, v in data.items() if v}  # an empty value means "leave it out"
        return requests.post(self.url + "/oauth/token", data=data, timeout=5)

    def exchange(self, code: str, redirect_uri: str = REDIRECT, **form: str) -> requests.Response:
        return self.token(grant_type="authorization_code", code=code, redirect_uri=redirect_uri, **form)

    def login(self, scope: str = "talk_message,friends") -> dict[str, Any]:
        answer = self.exchange(self.sb.issue_code(REDIRECT, scope))
        assert answer.status_code == 200, answer.text
        return answer.json()

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token)

    def api(self, method: str, path: str, access: str | None, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {access}"} if access else {}
        return requests.request(method, self.url + path, headers=headers, timeout=5, **kw)

    def memo(self, access: str, template: Any = TEXT) -> requests.Response:
        raw = template if isinstance(template, str) else json.dumps(template)
        return self.api("POST", MEMO, access, data={"template_object": raw})

    def send(self, access: str, uuids: Any, template: Any = TEXT) -> requests.Response:
        form = {
            "receiver_uuids": uuids if isinstance(uuids, str) else json.dumps(uuids),
            "template_object": json.dumps(template),
        }
        return self.api("POST", SEND, access, data=form)


def start(request: pytest.FixtureRequest, **kwargs: Any) -> Env:
    clock = kwargs.pop("clock", None) or EpochClock(NOON)
    sb = KakaoSandbox(clock=clock, **kwargs)
    server = serve(sb.app)
    request.addfinalizer(server.close)
    return Env(sb, server.url, clock)


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Env:
    return start(request)


# ---- kauth ----------------------------------------------------------------------------


def test_authorize_redirects_with_code_and_state(env: Env) -> None:
    params = {"client_id": env.sb.rest_api_key, "redirect_uri": REDIRECT, "response_type": "code",
              "scope": "talk_message,friends", "state": "ab12cd"}
    answer = requests.get(env.url + "/oauth/authorize", params=params, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["ab12cd"]

    tokens = env.exchange(query["code"][0])
    assert tokens.status_code == 200
    assert tokens.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert shape(tokens.json()) == shape(fixture("token_code.json"))
    assert tokens.json()["scope"] == "talk_message friends"
    assert tokens.json()["expires_in"] == env.sb.access_ttl


def test_authorize_without_state_denied_and_unknown_client(env: Env) -> None:
    params = {"client_id": env.sb.rest_api_key, "redirect_uri": REDIRECT, "response_type": "code"}
    answer = requests.get(env.url + "/oauth/authorize", params=params, allow_redirects=False, timeout=5)
    assert "state" not in parse_qs(urlsplit(answer.headers["Location"]).query)

    env.sb.deny_consent = True
    answer = requests.get(env.url + "/oauth/authorize", params={**params, "state": "s1"},
                          allow_redirects=False, timeout=5)
    assert answer.headers["Location"] == (
        REDIRECT + "?error=access_denied&error_description=User%20denied%20access&state=s1"
    )

    answer = requests.get(env.url + "/oauth/authorize", params={**params, "client_id": "nope"},
                          allow_redirects=False, timeout=5)
    assert answer.status_code == 400 and answer.json()["error_code"] == "KOE101"


def test_code_exchange_needs_the_client_secret(env: Env, request: pytest.FixtureRequest) -> None:
    code = env.sb.issue_code(REDIRECT)
    missing = env.exchange(code, client_secret="")
    assert missing.status_code == 401 and missing.json() == fixture("error_koe010.json")
    wrong = env.exchange(code, client_secret="guess")
    assert wrong.status_code == 401 and wrong.json() == fixture("error_koe010.json")
    assert env.exchange(code).status_code == 200  # the code survived the refused attempts
    assert env.sb.token_requests[0].get("client_secret") is None
    assert env.sb.token_requests[-1]["client_secret"] == env.sb.client_secret

    no_secret = start(request, client_secret=None)
    assert no_secret.exchange(no_secret.sb.issue_code(REDIRECT)).status_code == 200
    assert "client_secret" not in no_secret.sb.token_requests[0]


def test_code_is_single_use_and_expires(env: Env) -> None:
    code = env.sb.issue_code(REDIRECT)
    assert env.exchange(code).status_code == 200
    reused = env.exchange(code)
    assert reused.status_code == 400
    assert reused.json() == {**fixture("error_koe320.json"),
                             "error_description": f"authorization code not found for code={code}"}

    late = env.sb.issue_code(REDIRECT)
    env.clock.advance(601)
    assert env.exchange(late).json()["error_code"] == "KOE320"


def test_redirect_uri_mismatch(env: Env) -> None:
    answer = env.exchange(env.sb.issue_code(REDIRECT), redirect_uri="http://localhost:9999/cb")
    assert answer.status_code == 400 and answer.json() == fixture("error_koe303.json")


def test_refresh_without_rotation_keeps_the_old_refresh_token(env: Env) -> None:
    tokens = env.login()
    first = env.refresh(tokens["refresh_token"])
    assert first.status_code == 200
    assert shape(first.json()) == shape(fixture("token_refresh_plain.json"))
    assert env.sb.token_requests[-1]["refresh_token"] == tokens["refresh_token"]
    again = env.refresh(tokens["refresh_token"])
    assert again.status_code == 200 and "refresh_token" not in again.json()
    # Earlier access tokens stay valid until they expire.
    for access in (tokens["access_token"], first.json()["access_token"], again.json()["access_token"]):
        assert env.memo(access).status_code == 200


def test_refresh_in_the_last_month_rotates_and_the_old_one_dies(env: Env) -> None:
    tokens = env.login()
    env.clock.advance(env.sb.refresh_ttl - env.sb.rotate_within + 1)
    rotated = env.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    assert shape(rotated.json()) == shape(fixture("token_refresh_rotated.json"))
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]

    old = env.refresh(tokens["refresh_token"])
    assert old.status_code == 400 and old.json() == fixture("error_koe322.json")
    fresh = env.refresh(rotated.json()["refresh_token"])
    assert fresh.status_code == 200 and "refresh_token" not in fresh.json()


def test_expired_and_revoked_refresh_tokens(env: Env) -> None:
    tokens = env.login()
    env.clock.advance(env.sb.refresh_ttl)
    assert env.refresh(tokens["refresh_token"]).json() == fixture("error_koe322.json")
    tokens = env.login()
    env.sb.revoke_refresh_tokens()
    assert env.refresh(tokens["refresh_token"]).json() == fixture("error_koe322.json")
    assert env.refresh("never-issued").json() == fixture("error_koe322.json")


def test_issuance_limits_give_koe237(request: pytest.FixtureRequest) -> None:
    env = start(request)
    env.sb.access_limit_per_10min = 3
    tokens = env.login()
    assert env.refresh(tokens["refresh_token"]).status_code == 200
    assert env.refresh(tokens["refresh_token"]).status_code == 200
    limited = env.refresh(tokens["refresh_token"])
    assert limited.status_code == 400 and limited.json() == fixture("error_koe237.json")
    env.clock.advance(601)
    assert env.refresh(tokens["refresh_token"]).status_code == 200

    env = start(request)
    env.sb.refresh_limit_per_hour = 2
    env.login()
    env.login()
    assert env.exchange(env.sb.issue_code(REDIRECT)).json()["error_code"] == "KOE237"
    env.clock.advance(3601)
    env.login()


# ---- kapi: tokens and scopes ------------------------------------------------------------


def test_token_info_and_access_token_errors(env: Env) -> None:
    access = env.login()["access_token"]
    info = env.api("GET", "/v1/user/access_token_info", access)
    assert shape(info.json()) == shape(fixture("token_info.json"))
    assert info.json()["id"] == env.sb.owner_id and info.json()["expires_in"] == env.sb.access_ttl

    unknown = env.api("GET", "/v1/user/access_token_info", "not-a-token")
    assert unknown.status_code == 401 and unknown.json() == fixture("error_-401.json")
    assert env.api("GET", "/v1/user/access_token_info", None).json() == fixture("error_-401.json")

    env.clock.advance(env.sb.access_ttl)
    expired = env.memo(access)
    assert expired.status_code == 401 and expired.json() == fixture("error_-401_expired.json")


def test_expire_access_tokens(env: Env) -> None:
    access = env.login()["access_token"]
    env.sb.expire_access_tokens()
    assert env.api("GET", FRIENDS, access).status_code == 401


def test_missing_scope_gives_402(env: Env) -> None:
    access = env.login(scope="talk_message")["access_token"]
    answer = env.api("GET", FRIENDS, access)
    assert answer.status_code == 403 and answer.json() == fixture("error_-402.json")
    assert env.memo(access).status_code == 200
    no_talk = env.login(scope="friends")["access_token"]
    assert env.memo(no_talk).json()["required_scopes"] == ["talk_message"]


# ---- kapi: friends ----------------------------------------------------------------------


def test_friends_pages_with_after_url_and_absent_elements(env: Env) -> None:
    access = env.login()["access_token"]
    env.sb.add_friend("김민지", favorite=True)
    env.sb.add_friend("박서준", allowed_msg=False, user_id=None)
    env.sb.add_friend("이하늘")

    page1 = env.api("GET", FRIENDS, access, params={"offset": 0, "limit": 2}).json()
    assert shape(page1) == shape(fixture("friends_page1.json"))
    assert page1["elements"][0]["id"] > 2**53 and "id" not in page1["elements"][1]
    assert page1["after_url"] == f"{env.url}{FRIENDS}?offset=2&limit=2&order=asc"

    auth = {"Authorization": f"Bearer {access}"}
    page2 = requests.get(page1["after_url"], headers=auth, timeout=5).json()
    assert shape(page2) == shape(fixture("friends_page2.json"))
    assert [e["profile_nickname"] for e in page2["elements"]] == ["이하늘"]

    beyond = env.api("GET", FRIENDS, access, params={"offset": 3}).json()
    empty = shape(fixture("friends_empty.json"))
    assert shape(beyond) == {**empty, "before_url": "str"}
    assert "elements" not in beyond

    desc = env.api("GET", FRIENDS, access, params={"order": "desc"}).json()
    assert [e["profile_nickname"] for e in desc["elements"]] == ["이하늘", "박서준", "김민지"]
    assert env.api("GET", FRIENDS, access, params={"limit": 101}).json()["code"] == -2
    assert env.api("GET", FRIENDS, access, params={"limit": "ten"}).status_code == 400


def test_no_friends(env: Env) -> None:
    answer = env.api("GET", FRIENDS, env.login()["access_token"])
    assert answer.json() == fixture("friends_empty.json")


# ---- kapi: sending ----------------------------------------------------------------------


def test_memo_to_me_and_template_checks(env: Env) -> None:
    access = env.login()["access_token"]
    ok = env.memo(access)
    assert ok.status_code == 200 and ok.json() == fixture("memo_ok.json")
    assert env.sb.received("me") == [TEXT]

    bad_templates = [
        "not json", "", {"object_type": "text", "text": "링크 없음"}, {"object_type": "banner"},
        {**TEXT, "buttons": [{"title": "b", "link": {}}] * 3},
        {"object_type": "list", "header_title": "오늘", "header_link": {}, "contents": [{}]},
        {"object_type": "feed", "content": {"title": "t"}},
    ]
    for template in bad_templates:
        answer = env.memo(access, template)
        assert answer.status_code == 400 and answer.json()["code"] == -2, template
    assert len(env.sb.received("me")) == 1

    good_list = {"object_type": "list", "header_title": "오늘", "header_link": {}, "contents": [{}, {}]}
    good_feed = {"object_type": "feed", "content": {"title": "t", "link": {}}}
    assert env.memo(access, good_list).status_code == 200
    assert env.memo(access, good_feed).status_code == 200

    long_text = {**TEXT, "text": "가" * 250}
    assert env.memo(access, long_text).status_code == 200  # Kakao only cuts the display
    assert env.sb.warnings and "250" in env.sb.warnings[-1]


def test_receiver_uuids_must_be_1_to_5(env: Env) -> None:
    access = env.login()["access_token"]
    uuids = [env.sb.add_friend(f"친구{i}") for i in range(6)]
    six = env.send(access, uuids)
    assert six.status_code == 400 and six.json() == fixture("error_-2.json")
    for bad in ([], "u1,u2", [uuids[0], uuids[0]], [1, 2]):
        assert env.send(access, bad).json()["code"] == -2, bad
    assert env.send(access, uuids[:5]).json() == {"successful_receiver_uuids": uuids[:5]}
    assert all(env.sb.received(u) == [TEXT] for u in uuids[:5]) and env.sb.received(uuids[5]) == []


def test_partial_failure_shape(env: Env) -> None:
    access = env.login()["access_token"]
    a = env.sb.add_friend("김민지")
    b = env.sb.add_friend("박서준", allowed_msg=False)
    partial = env.send(access, [a, b])
    assert partial.status_code == 200
    assert shape(partial.json()) == shape(fixture("send_friends_partial.json"))
    assert partial.json() == {**fixture("send_friends_partial.json"), "successful_receiver_uuids": [a],
                              "failure_info": [{**fixture("send_friends_partial.json")["failure_info"][0],
                                                "receiver_uuids": [b]}]}
    assert env.sb.received(a) == [TEXT] and env.sb.received(b) == []

    mixed = env.send(access, [b, "stranger", a]).json()
    assert mixed["successful_receiver_uuids"] == [a]
    failures = [(f["code"], f["receiver_uuids"]) for f in mixed["failure_info"]]
    assert failures == [(-530, [b]), (-502, ["stranger"])]


def test_single_receiver_failure_is_a_plain_error(env: Env) -> None:
    access = env.login()["access_token"]
    b = env.sb.add_friend("박서준", allowed_msg=False)
    answer = env.send(access, [b])
    assert answer.status_code == 400 and answer.json() == fixture("error_-530.json")
    assert env.send(access, ["stranger"]).json()["code"] == -502


def test_pair_quota_is_20_per_seoul_day(request: pytest.FixtureRequest) -> None:
    # 23:59:30 in Seoul is 14:59:30 UTC: a UTC day would not roll over a minute later.
    late = datetime(2026, 11, 22, 23, 59, 30, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()
    env = start(request, clock=EpochClock(late))
    access = env.login()["access_token"]
    a = env.sb.add_friend("김민지")
    for _ in range(20):
        assert env.send(access, [a]).status_code == 200
    over = env.send(access, [a])
    assert over.status_code == 400 and over.json() == fixture("error_-536.json")
    env.clock.advance(60)
    assert env.send(access, [a]).status_code == 200


def test_recipient_and_sender_quotas(env: Env) -> None:
    access = env.login()["access_token"]
    a, c = env.sb.add_friend("김민지"), env.sb.add_friend("이하늘")
    env.sb.recipient_daily = 1
    assert env.send(access, [a]).status_code == 200
    assert env.send(access, [a]).json() == fixture("error_-533.json")

    env.sb.sender_daily = 3  # so far: 1 friend message; memos count for the sender too
    assert env.memo(access).status_code == 200
    assert env.send(access, [c]).status_code == 200
    memo = env.memo(access)
    assert memo.status_code == 400 and memo.json() == fixture("error_-532.json")
    assert env.send(access, [c]).json() == fixture("error_-532.json")
    assert len(env.sb.received("me")) == 1 and len(env.sb.received(c)) == 1


# ---- scripting, latency, plumbing -------------------------------------------------------


def test_fail_next(env: Env) -> None:
    access = env.login()["access_token"]
    env.sb.fail_next(MEMO, 503, MAINTENANCE)
    down = env.memo(access)
    assert down.status_code == 503 and down.json() == fixture("error_-9798.json")
    env.sb.fail_next(MEMO, 400, TEMPORARY_ERROR, times=2)
    answers = [env.memo(access).json() for _ in range(3)]
    assert answers == [fixture("error_-1.json")] * 2 + [fixture("memo_ok.json")]
    assert env.sb.count("/memo/default/send") == 4 and len(env.sb.received("me")) == 1

    env.sb.fail_next("/oauth/token", 500, {"error": "server_error"})
    assert env.refresh("anything").status_code == 500
    assert ("POST", "/oauth/token") in env.sb.calls


def test_hang_next_lets_clients_time_out(env: Env) -> None:
    access = env.login()["access_token"]
    env.sb.hang_next(MEMO, 1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(env.url + MEMO, headers={"Authorization": f"Bearer {access}"},
                      data={"template_object": json.dumps(TEXT)}, timeout=0.2)
    assert env.memo(access).status_code == 200  # only the next one hangs


def test_works_with_latency_and_concurrent_clients(request: pytest.FixtureRequest) -> None:
    env = start(request, latency=0.01)
    access = env.login()["access_token"]
    answers: list[int] = []
    def send() -> None:
        answers.append(env.memo(access).status_code)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 5 and len(env.sb.received("me")) == 5


def test_unknown_path_is_json_404(env: Env) -> None:
    answer = requests.get(env.url + "/v9/nothing", timeout=5)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert answer.json()["code"] == -404
    assert requests.get(env.url + "/oauth/token", timeout=5).status_code == 405


# ---- other users of the app (multi-merchant benchmarks) ----------------------------------------------


def test_each_user_has_their_own_friends_me_and_sender_cap(env: Env) -> None:
    owner = env.login()["access_token"]
    answer = env.exchange(env.sb.issue_code(REDIRECT, "talk_message,friends", user="shop-7"))
    other = answer.json()["access_token"]
    mine = env.sb.add_friend("홍길동", uuid="uuid-owners")
    theirs = env.sb.add_friend("김영희", uuid="uuid-shop7s", of="shop-7")
    assert [f["uuid"] for f in env.api("GET", FRIENDS, owner).json()["elements"]] == [mine]
    assert [f["uuid"] for f in env.api("GET", FRIENDS, other).json()["elements"]] == [theirs]
    refused = env.send(other, [mine])  # not shop-7's friend
    assert refused.status_code == 400 and refused.json()["code"] == -502
    assert env.send(other, [theirs]).status_code == 200
    assert env.memo(other).status_code == 200
    assert (len(env.sb.received("me")), len(env.sb.received("me:shop-7")), len(env.sb.received(theirs))) == (0, 1, 1)
    env.sb.sender_daily = 2
    assert env.memo(other).status_code == 400  # shop-7's two sends today: its cap
    assert env.memo(owner).status_code == 200  # the owner's cap is the owner's
