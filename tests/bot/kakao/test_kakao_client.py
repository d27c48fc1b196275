"""The Kakao API client against recorded answer shapes (`responses`): error mapping, paging,
request bodies, partial results, and which failures are retried (never a send that may
have gone out)."""

from __future__ import annotations

import json
import socket
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from bot.kakao.client import FORM, FriendSendResult, KakaoApi, KakaoAuth, KakaoHttp
from bot.kakao.errors import (
    KakaoAuthError,
    KakaoBadRequest,
    KakaoDailyQuotaError,
    KakaoError,
    KakaoLoginRequired,
    KakaoNoTalkAccount,
    KakaoNotFriend,
    KakaoPermissionError,
    KakaoQuotaError,
    KakaoRateLimited,
    KakaoRecipientRefused,
    KakaoScopeError,
    KakaoSendUnknown,
    KakaoUnavailable,
    KakaoUnreachable,
    api_error,
)
from bot.util.http import new_session
from bot.util.retry import RetryPolicy

from upstream_fixtures import load_fixture

BASE = "https://kapi.test.invalid"
AUTH = "https://kauth.test.invalid"
FRIENDS_URL = f"{BASE}/v1/api/talk/friends"
MEMO_URL = f"{BASE}/v2/api/talk/memo/default/send"
SEND_URL = f"{BASE}/v1/api/talk/friends/message/default/send"
INFO_URL = f"{BASE}/v1/user/access_token_info"
TEMPLATE = {"object_type": "text", "text": "오늘의 메뉴", "link": {"web_url": "https://bot.example.com"}}


class FakeTokens:
    """A TokenSource: hands out `current`, and a new token on renew."""

    def __init__(self, current: str = "access-1"):
        self.current = current
        self.renewed: list[str] = []

    def access_token(self) -> str:
        return self.current

    def renew(self, rejected: str) -> str:
        self.renewed.append(rejected)
        self.current = f"access-{len(self.renewed) + 1}"
        return self.current


class DeadLogin(FakeTokens):
    def renew(self, rejected: str) -> str:
        self.renewed.append(rejected)
        raise KakaoLoginRequired("KOE322", "invalid_grant", "expired_or_invalid_refresh_token", 400,
                                 "Run `python -m bot kakao login --account default` to log in again.")


def make_api(tokens: FakeTokens | None = None, attempts: int = 3) -> KakaoApi:
    sleeps: list[float] = []
    http = KakaoHttp(new_session(), timeout=5, retry=RetryPolicy(attempts=attempts, base_delay=0.01,
                                                                 sleep=sleeps.append))
    return KakaoApi(http, api_url=BASE, tokens=tokens or FakeTokens())


def form_of(call) -> dict[str, str]:  # noqa: ANN001
    body = call.request.body
    body = body.decode() if isinstance(body, bytes) else body
    return {key: values[0] for key, values in parse_qs(body).items()}


def refused_connection() -> requests.ConnectionError:
    """What requests raises when nothing listens on the port (connect never happened)."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, SEND_URL, reason))


# -- error codes ----------------------------------------------------------------------

ERRORS = [
    # code, HTTP status, body (fixture or inline), exception, retryable
    (-1, 400, "error_-1.json", KakaoUnavailable, True),
    (-2, 400, "error_-2.json", KakaoBadRequest, False),
    (-3, 403, {"code": -3, "msg": "disabled app"}, KakaoPermissionError, False),
    (-5, 403, {"code": -5, "msg": "no permission"}, KakaoPermissionError, False),
    (-10, 400, {"code": -10, "msg": "exceeded the limit"}, KakaoQuotaError, False),
    (-401, 401, "error_-401.json", KakaoAuthError, False),
    (-402, 403, "error_-402.json", KakaoScopeError, False),
    (-501, 400, {"code": -501, "msg": "not a KakaoTalk user"}, KakaoNoTalkAccount, False),
    (-502, 400, {"code": -502, "msg": "not a friend"}, KakaoNotFriend, False),
    (-530, 400, "error_-530.json", KakaoRecipientRefused, False),
    (-532, 400, "error_-532.json", KakaoDailyQuotaError, False),
    (-533, 400, "error_-533.json", KakaoDailyQuotaError, False),
    (-536, 400, "error_-536.json", KakaoDailyQuotaError, False),
    (-603, 400, {"code": -603, "msg": "timed out"}, KakaoUnavailable, True),
    (-9798, 503, "error_-9798.json", KakaoUnavailable, True),
]


@pytest.mark.parametrize("code,status,body,expected,retryable", ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_api_error_code_maps_to_its_exception(code, status, body, expected, retryable):
    body = load_fixture(f"kakao/{body}") if isinstance(body, str) else body
    error = api_error(status, body)
    assert type(error) is expected
    assert error.code == code
    assert error.http_status == status
    assert error.retryable is retryable


@pytest.mark.parametrize("code,status,body,expected,retryable",
                         [e for e in ERRORS if e[0] != -401], ids=[str(e[0]) for e in ERRORS if e[0] != -401])
@responses.activate
def test_error_answer_is_raised_as_its_exception(code, status, body, expected, retryable):
    body = load_fixture(f"kakao/{body}") if isinstance(body, str) else body
    responses.get(INFO_URL, json=body, status=status)
    with pytest.raises(expected) as caught:
        make_api(attempts=3).token_info()
    assert caught.value.code == code
    # Retryable errors are tried the policy's 3 times; the others exactly once.
    assert len(responses.calls) == (3 if retryable else 1)


def test_scope_error_names_the_required_scopes():
    error = api_error(403, load_fixture("kakao/error_-402.json"))
    assert error.required_scopes == ["friends"]
    assert "friends" in str(error) and "kakao login" in str(error)


def test_daily_quota_errors_say_whose_quota():
    assert "sender" in str(api_error(400, load_fixture("kakao/error_-532.json")))
    assert "recipient" in str(api_error(400, load_fixture("kakao/error_-533.json")))
    assert "pair" in str(api_error(400, load_fixture("kakao/error_-536.json")))


@responses.activate
def test_unknown_code_is_a_plain_kakao_error_and_not_retried():
    responses.get(INFO_URL, json={"code": -7777, "msg": "something new"}, status=400)
    with pytest.raises(KakaoError) as caught:
        make_api().token_info()
    assert type(caught.value) is KakaoError
    assert caught.value.code == -7777 and caught.value.msg == "something new"
    assert len(responses.calls) == 1


def test_unknown_code_with_5xx_is_temporary():
    error = api_error(502, {"code": -7777, "msg": "new"})
    assert isinstance(error, KakaoUnavailable) and error.retryable


def test_branching_is_on_the_code_never_on_msg():
    error = api_error(400, {"code": -530, "msg": "this access token is already expired"})
    assert type(error) is KakaoRecipientRefused


@responses.activate
def test_non_json_error_body_5xx_is_retried_then_raised():
    responses.get(INFO_URL, body="<html>502 Bad Gateway</html>", status=502, content_type="text/html")
    with pytest.raises(KakaoUnavailable) as caught:
        make_api().token_info()
    assert caught.value.http_status == 502
    assert len(responses.calls) == 3


@responses.activate
def test_non_json_error_body_4xx_is_a_kakao_error():
    responses.get(INFO_URL, body="Bad Request", status=400, content_type="text/plain")
    with pytest.raises(KakaoError) as caught:
        make_api().token_info()
    assert caught.value.http_status == 400
    assert len(responses.calls) == 1


@responses.activate
def test_non_json_success_on_a_read_is_retried():
    responses.get(INFO_URL, body="<html>maintenance page</html>", status=200, content_type="text/html")
    responses.get(INFO_URL, json=load_fixture("kakao/token_info.json"))
    assert make_api().token_info()["id"] == 4300000001
    assert len(responses.calls) == 2


@responses.activate
def test_non_json_success_on_a_send_is_unknown_and_not_retried():
    # Kakao said 2xx: the message may have gone out. A retry could deliver it twice.
    responses.post(MEMO_URL, body="OK", status=200, content_type="text/plain")
    responses.post(MEMO_URL, json={"result_code": 0})
    with pytest.raises(KakaoSendUnknown):
        make_api().send_to_me(TEMPLATE)
    assert len(responses.calls) == 1


@responses.activate
def test_5xx_without_body_is_retried_then_succeeds():
    responses.get(INFO_URL, status=500)
    responses.get(INFO_URL, status=503)
    responses.get(INFO_URL, json=load_fixture("kakao/token_info.json"))
    assert make_api().token_info()["app_id"] == 123456
    assert len(responses.calls) == 3


# -- friends ----------------------------------------------------------------------------


@responses.activate
def test_friends_over_several_pages_stay_on_our_host():
    page1 = load_fixture("kakao/friends_page1.json")
    # A hostile or rewritten after_url: only its offset/limit may be used, never its host.
    page1["after_url"] = "https://evil.example.net/steal?offset=2&limit=2&order=asc"
    responses.get(FRIENDS_URL, json=page1,
                  match=[matchers.query_param_matcher({"offset": "0", "limit": "100"})])
    responses.get(FRIENDS_URL, json=load_fixture("kakao/friends_page2.json"),
                  match=[matchers.query_param_matcher({"offset": "2", "limit": "2"})])
    friends = make_api(FakeTokens("secret-bearer")).friends()
    assert [f.nickname for f in friends] == ["김민지", "박서준", "이하늘"]
    assert [f.uuid for f in friends] == ["fake-uuid-a_Zx9", "fake-uuid-b-Qw3", "fake-uuid-c_Er5"]
    assert [f.allowed_msg for f in friends] == [True, False, True]
    assert friends[0].favorite is True
    assert len(responses.calls) == 2
    for call in responses.calls:
        assert urlsplit(call.request.url).netloc == urlsplit(BASE).netloc
        assert call.request.headers["Authorization"] == "Bearer secret-bearer"


@responses.activate
def test_friends_after_url_on_kakaos_own_host_is_also_followed_on_our_base():
    # The recorded page names kapi.kakao.com; our base URL (a proxy, a stand-in) is used instead.
    responses.get(FRIENDS_URL, json=load_fixture("kakao/friends_page1.json"),
                  match=[matchers.query_param_matcher({"offset": "0", "limit": "100"})])
    responses.get(FRIENDS_URL, json=load_fixture("kakao/friends_page2.json"),
                  match=[matchers.query_param_matcher({"offset": "2", "limit": "2"})])
    assert len(make_api().friends()) == 3
    assert all(call.request.url.startswith(BASE) for call in responses.calls)


@responses.activate
def test_friends_after_url_that_does_not_advance_stops():
    page = load_fixture("kakao/friends_page2.json")
    page["after_url"] = f"{FRIENDS_URL}?offset=0&limit=100"
    responses.get(FRIENDS_URL, json=page)
    friends = make_api().friends()
    assert [f.nickname for f in friends] == ["이하늘"]
    assert len(responses.calls) == 1


@responses.activate
def test_friends_after_url_limit_is_capped():
    page1 = load_fixture("kakao/friends_page1.json")
    page1["after_url"] = f"{FRIENDS_URL}?offset=2&limit=100000"
    responses.get(FRIENDS_URL, json=page1, match=[matchers.query_param_matcher({"offset": "0", "limit": "100"})])
    responses.get(FRIENDS_URL, json=load_fixture("kakao/friends_page2.json"),
                  match=[matchers.query_param_matcher({"offset": "2", "limit": "100"})])
    assert len(make_api().friends()) == 3


@responses.activate
def test_friends_without_elements_is_an_empty_list():
    responses.get(FRIENDS_URL, json=load_fixture("kakao/friends_empty.json"))
    assert make_api().friends() == []
    assert len(responses.calls) == 1


@responses.activate
def test_friends_with_missing_or_huge_id_and_without_uuid():
    body = {
        "elements": [
            {"profile_nickname": "큰아이디", "uuid": "uuid-big", "allowed_msg": True, "favorite": False,
             "id": 2**53 + 1},
            {"profile_nickname": "아이디없음", "uuid": "uuid-noid", "allowed_msg": True, "favorite": False},
            {"profile_nickname": "유유아이디없음", "allowed_msg": True, "id": 5},
            "not an object",
        ],
        "total_count": 4, "after_url": None,
    }
    # The raw text as Kakao sends it: an id that a float cannot hold.
    text = json.dumps(body)
    assert str(2**53 + 1) in text
    responses.get(FRIENDS_URL, body=text, content_type="application/json;charset=UTF-8")
    friends = make_api().friends()
    assert [(f.nickname, f.uuid) for f in friends] == [("큰아이디", "uuid-big"), ("아이디없음", "uuid-noid")]


# -- send to me -------------------------------------------------------------------------


@responses.activate
def test_send_to_me_posts_a_form_with_the_template():
    responses.post(MEMO_URL, json=load_fixture("kakao/memo_ok.json"))
    make_api(FakeTokens("tok-me")).send_to_me(TEMPLATE)
    (call,) = responses.calls
    assert call.request.headers["Content-Type"] == FORM
    assert call.request.headers["Authorization"] == "Bearer tok-me"
    form = form_of(call)
    assert set(form) == {"template_object"}
    assert json.loads(form["template_object"]) == TEMPLATE


# -- send to friends ----------------------------------------------------------------------


@responses.activate
def test_send_to_friends_sends_receiver_uuids_as_a_json_array_string():
    responses.post(SEND_URL, json=load_fixture("kakao/send_friends_ok.json"))
    result = make_api().send_to_friends(["fake-uuid-a_Zx9", "fake-uuid-c_Er5"], TEMPLATE)
    assert result == FriendSendResult(["fake-uuid-a_Zx9", "fake-uuid-c_Er5"], {})
    (call,) = responses.calls
    assert call.request.headers["Content-Type"] == FORM
    form = form_of(call)
    assert form["receiver_uuids"] == '["fake-uuid-a_Zx9", "fake-uuid-c_Er5"]'
    assert json.loads(form["receiver_uuids"]) == ["fake-uuid-a_Zx9", "fake-uuid-c_Er5"]
    assert json.loads(form["template_object"]) == TEMPLATE
    # Encoded to bytes beforehand: http.client then sends headers and body in one write, not two.
    assert isinstance(call.request.body, bytes)
    assert call.request.headers["Content-Length"] == str(len(call.request.body))


@pytest.mark.parametrize("count", [0, 6])
@responses.activate
def test_send_to_friends_takes_1_to_5_receivers(count):
    with pytest.raises(ValueError):
        make_api().send_to_friends([f"uuid-{i}" for i in range(count)], TEMPLATE)
    assert len(responses.calls) == 0


@responses.activate
def test_send_to_friends_five_receivers_is_allowed():
    uuids = [f"uuid-{i}" for i in range(5)]
    responses.post(SEND_URL, json={"successful_receiver_uuids": uuids})
    assert make_api().send_to_friends(uuids, TEMPLATE).sent == uuids


@pytest.mark.parametrize("key", ["failure_info", "failure_infos"])
@responses.activate
def test_send_to_friends_partial_failure_is_per_receiver(key):
    body = load_fixture("kakao/send_friends_partial.json")
    body[key] = body.pop("failure_info")
    responses.post(SEND_URL, json=body)
    result = make_api().send_to_friends(["fake-uuid-a_Zx9", "fake-uuid-b-Qw3"], TEMPLATE)
    assert result.sent == ["fake-uuid-a_Zx9"]
    assert set(result.failed) == {"fake-uuid-b-Qw3"}
    error = result.failed["fake-uuid-b-Qw3"]
    assert isinstance(error, KakaoRecipientRefused) and error.code == -530


@responses.activate
def test_send_to_friends_reads_failure_info_and_failure_infos_together():
    responses.post(SEND_URL, json={
        "successful_receiver_uuids": ["u1"],
        "failure_info": [{"code": -530, "msg": "refuses", "receiver_uuids": ["u2"]}],
        "failure_infos": [{"code": -536, "msg": "pair quota", "receiver_uuids": ["u3"]}],
    })
    result = make_api().send_to_friends(["u1", "u2", "u3"], TEMPLATE)
    assert result.sent == ["u1"]
    assert type(result.failed["u2"]) is KakaoRecipientRefused
    assert isinstance(result.failed["u3"], KakaoDailyQuotaError) and result.failed["u3"].code == -536


@responses.activate
def test_send_to_friends_receiver_in_neither_list_is_unknown():
    responses.post(SEND_URL, json={"successful_receiver_uuids": ["u1"],
                                   "failure_info": [{"code": -530, "msg": "x", "receiver_uuids": ["u2"]}]})
    result = make_api().send_to_friends(["u1", "u2", "u3"], TEMPLATE)
    assert result.sent == ["u1"]
    assert isinstance(result.failed["u3"], KakaoSendUnknown)
    assert isinstance(result.failed["u2"], KakaoRecipientRefused)


@responses.activate
def test_send_to_friends_ignores_uuids_it_did_not_ask_for():
    responses.post(SEND_URL, json={"successful_receiver_uuids": ["u1", "stranger"],
                                   "failure_info": [{"code": -530, "msg": "x", "receiver_uuids": ["other"]}]})
    result = make_api().send_to_friends(["u1"], TEMPLATE)
    assert result == FriendSendResult(["u1"], {})


@pytest.mark.parametrize("fixture,expected", [("error_-530.json", KakaoRecipientRefused),
                                              ("error_-536.json", KakaoDailyQuotaError),
                                              ("error_-2.json", KakaoBadRequest)])
@responses.activate
def test_single_receiver_plain_error_is_a_per_recipient_failure(fixture, expected):
    responses.post(SEND_URL, json=load_fixture(f"kakao/{fixture}"), status=400)
    result = make_api().send_to_friends(["only-one"], TEMPLATE)
    assert result.sent == []
    assert type(result.failed["only-one"]) is expected
    assert len(responses.calls) == 1


@responses.activate
def test_two_receivers_plain_error_is_raised_for_the_call():
    responses.post(SEND_URL, json=load_fixture("kakao/error_-2.json"), status=400)
    with pytest.raises(KakaoBadRequest):
        make_api().send_to_friends(["u1", "u2"], TEMPLATE)


@responses.activate
def test_single_receiver_dead_login_is_raised_not_blamed_on_the_receiver():
    responses.post(SEND_URL, json=load_fixture("kakao/error_-401_expired.json"), status=401)
    tokens = DeadLogin()
    with pytest.raises(KakaoLoginRequired):
        make_api(tokens).send_to_friends(["only-one"], TEMPLATE)
    assert tokens.renewed == ["access-1"]
    assert len(responses.calls) == 1


# -- retries ------------------------------------------------------------------------------


@responses.activate
def test_send_connection_refused_is_retried_then_succeeds():
    responses.post(SEND_URL, body=refused_connection())
    responses.post(SEND_URL, body=refused_connection())
    responses.post(SEND_URL, json={"successful_receiver_uuids": ["u1"]})
    assert make_api().send_to_friends(["u1"], TEMPLATE).sent == ["u1"]
    assert len(responses.calls) == 3


@responses.activate
def test_send_connection_refused_every_time_is_unreachable():
    responses.post(MEMO_URL, body=refused_connection())
    with pytest.raises(KakaoUnreachable):
        make_api().send_to_me(TEMPLATE)
    assert len(responses.calls) == 3


@responses.activate
def test_send_connect_timeout_is_retried_then_succeeds():
    responses.post(MEMO_URL, body=requests.ConnectTimeout("connect timed out"))
    responses.post(MEMO_URL, json={"result_code": 0})
    make_api().send_to_me(TEMPLATE)
    assert len(responses.calls) == 2


def test_a_real_refused_connection_is_classified_as_never_sent():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now.
    http = KakaoHttp(new_session(), timeout=2, retry=RetryPolicy(attempts=2, base_delay=0, sleep=lambda _s: None))
    api = KakaoApi(http, api_url=f"http://127.0.0.1:{port}", tokens=FakeTokens())
    with pytest.raises(KakaoUnreachable):
        api.send_to_me(TEMPLATE)


@pytest.mark.parametrize("status,body", [(500, {"msg": "oops"}), (503, load_fixture("kakao/error_-9798.json")),
                                         (400, load_fixture("kakao/error_-1.json"))])
@responses.activate
def test_send_temporary_errors_are_retried_then_succeed(status, body):
    responses.post(MEMO_URL, json=body, status=status)
    responses.post(MEMO_URL, json={"result_code": 0})
    make_api().send_to_me(TEMPLATE)
    assert len(responses.calls) == 2


@responses.activate
def test_send_read_timeout_is_unknown_and_not_retried():
    responses.post(SEND_URL, body=requests.ReadTimeout("read timed out"))
    responses.post(SEND_URL, json={"successful_receiver_uuids": ["u1", "u2"]})
    with pytest.raises(KakaoSendUnknown):
        make_api().send_to_friends(["u1", "u2"], TEMPLATE)
    assert len(responses.calls) == 1


@responses.activate
def test_single_receiver_read_timeout_is_unknown_not_a_recipient_failure():
    responses.post(SEND_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(KakaoSendUnknown):
        make_api().send_to_friends(["u1"], TEMPLATE)
    assert len(responses.calls) == 1


@responses.activate
def test_send_to_me_connection_reset_after_sending_is_unknown():
    responses.post(MEMO_URL, body=requests.ConnectionError("Connection aborted: RemoteDisconnected"))
    responses.post(MEMO_URL, json={"result_code": 0})
    with pytest.raises(KakaoSendUnknown):
        make_api().send_to_me(TEMPLATE)
    assert len(responses.calls) == 1


@responses.activate
def test_friends_read_timeout_is_retried():
    responses.get(FRIENDS_URL, body=requests.ReadTimeout("read timed out"))
    responses.get(FRIENDS_URL, json=load_fixture("kakao/friends_page2.json"))
    assert [f.nickname for f in make_api().friends()] == ["이하늘"]
    assert len(responses.calls) == 2


@responses.activate
def test_minus_401_renews_once_and_retries_once():
    responses.post(SEND_URL, json=load_fixture("kakao/error_-401_expired.json"), status=401)
    responses.post(SEND_URL, json={"successful_receiver_uuids": ["u1", "u2"]})
    tokens = FakeTokens("old-token")
    result = make_api(tokens).send_to_friends(["u1", "u2"], TEMPLATE)
    assert result.sent == ["u1", "u2"]
    assert tokens.renewed == ["old-token"]
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer old-token", "Bearer access-2"]


@responses.activate
def test_minus_401_twice_gives_up_after_one_renewal():
    responses.get(INFO_URL, json=load_fixture("kakao/error_-401.json"), status=401)
    tokens = FakeTokens()
    with pytest.raises(KakaoAuthError):
        make_api(tokens).token_info()
    assert tokens.renewed == ["access-1"]
    assert len(responses.calls) == 2


@responses.activate
def test_minus_401_with_a_dead_login_raises_login_required():
    responses.get(FRIENDS_URL, json=load_fixture("kakao/error_-401.json"), status=401)
    with pytest.raises(KakaoLoginRequired) as caught:
        make_api(DeadLogin()).friends()
    assert "kakao login" in str(caught.value)
    assert len(responses.calls) == 1


# -- OAuth errors ---------------------------------------------------------------------------


def make_auth() -> KakaoAuth:
    http = KakaoHttp(new_session(), timeout=5, retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None))
    return KakaoAuth(http, auth_url=AUTH, rest_api_key="rest", client_secret="shh", redirect_uri="http://x/cb")


@responses.activate
def test_refresh_with_dead_refresh_token_needs_a_login():
    responses.post(f"{AUTH}/oauth/token", json=load_fixture("kakao/error_koe322.json"), status=400)
    with pytest.raises(KakaoLoginRequired) as caught:
        make_auth().refresh("dead", account="shop")
    assert "kakao login --account shop" in str(caught.value)
    assert len(responses.calls) == 1
    assert form_of(responses.calls[0])["client_secret"] == "shh"


@responses.activate
def test_token_rate_limit_is_not_retried():
    responses.post(f"{AUTH}/oauth/token", json=load_fixture("kakao/error_koe237.json"), status=400)
    with pytest.raises(KakaoRateLimited):
        make_auth().refresh("r", account="default")
    assert len(responses.calls) == 1


# -- OAuth error mapping details ------------------------------------------------------------


def test_a_rate_limit_while_refreshing_never_marks_the_login_dead_whatever_error_says():
    from bot.kakao.errors import KakaoLoginRequired, KakaoRateLimited, oauth_error

    error = oauth_error(400, {"error": "invalid_grant", "error_description": "rate limit", "error_code": "KOE237"},
                        refreshing=True)
    assert isinstance(error, KakaoRateLimited) and not isinstance(error, KakaoLoginRequired)


def test_a_refused_code_is_not_repeated_in_the_error_text():
    from bot.kakao.errors import oauth_error

    error = oauth_error(400, {"error": "invalid_grant", "error_code": "KOE320",
                              "error_description": "authorization code not found for code=SECRETCODE123"})
    assert "SECRETCODE123" not in str(error) and "KOE320" in str(error)


def test_a_malformed_token_answer_is_an_error_that_is_not_retried():
    from bot.kakao.client import TokenAnswer

    with pytest.raises(KakaoError) as info:
        TokenAnswer.parse({"access_token": "a", "expires_in": 100, "refresh_token": 5})
    assert not info.value.retryable
