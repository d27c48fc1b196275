"""The Kakao client: OAuth at kauth (authorize URL, code exchange, refresh) and the message
API at kapi (friends, send to me, send to friends, image upload for feed messages).

One HTTP wrapper serves both hosts: form-encoded bodies, timeouts, JSON error mapping to
named exceptions, and retries only where nothing can have been delivered.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol, Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from bot.kakao.errors import (
    KakaoAuthError,
    KakaoError,
    KakaoImageRejected,
    KakaoOAuthError,
    KakaoSendUnknown,
    KakaoUnavailable,
    KakaoUnreachable,
    api_error,
    oauth_error,
)
from bot.kakao.recipients import Friend
from bot.util.redaction import MASK
from bot.util.retry import RetryPolicy
from bot.util.urls import host_port

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded;charset=utf-8"
MAX_RECEIVERS = 5  # Kakao's limit per friend-message call
FRIENDS_PAGE = 100
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Kakao's limit for a message image (-602 above it)

# A message's template object, or its JSON text: a fan-out serialises it once, not once per call.
Template = dict | str


def template_json(template: Template) -> str:
    """`template_object` as Kakao takes it: the template's JSON (a str is that JSON already)."""
    return template if isinstance(template, str) else json.dumps(template, ensure_ascii=False)


class KakaoHttp:
    """Sends one logical request, retrying only when no message can have been delivered."""

    def __init__(self, session: requests.Session, *, timeout: float = 10.0, retry: RetryPolicy = RetryPolicy()):
        self.session, self.timeout, self.retry = session, timeout, retry

    def call(self, method: str, url: str, *, errors: Callable[[int, Any], KakaoError], delivers: bool = False,
             data: dict | None = None, params: dict | None = None, token: str | None = None,
             files: dict | None = None) -> dict:
        # A multipart body (files) gets its Content-Type, with the boundary, from requests. A form is
        # encoded here, to bytes: http.client sends a bytes body in the same write as the headers, a
        # str one in a write of its own (a second packet and wake-up of the server per call).
        payload: dict | bytes | None = data
        headers = {}
        if data is not None and files is None:
            payload, headers = urlencode(data).encode(), {"Content-Type": FORM}
        if token:
            headers["Authorization"] = f"Bearer {token}"

        def attempt() -> dict:
            try:
                response = self.session.request(method, url, data=payload, params=params, headers=headers,
                                                files=files, timeout=self.timeout)
            except requests.RequestException as exc:
                raise _transport_error(exc, delivers, host_port(url)) from None
            body = _json_or_none(response)
            if 200 <= response.status_code < 300 and isinstance(body, dict):
                return body
            if 200 <= response.status_code < 300:
                if delivers:
                    # Kakao accepted the request (2xx) but the answer is unreadable: the message
                    # may well have gone out, so this is not a failure to retry.
                    raise KakaoSendUnknown(None, f"Kakao's answer is not JSON (HTTP {response.status_code}); "
                                                 "the message may have been delivered", response.status_code)
                raise KakaoUnavailable(None, f"answer is not JSON (HTTP {response.status_code})", response.status_code)
            raise errors(response.status_code, body)

        path = urlsplit(url).path  # never the query: it may hold a code
        return self.retry.run(attempt, retry_if=lambda exc: getattr(exc, "retryable", False), what=f"Kakao {path}")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _transport_error(exc: requests.RequestException, delivers: bool, where: str) -> KakaoError:
    """Decide whether the request can have reached Kakao: only then is a send's outcome unknown."""
    never_sent = isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError) and _is_connect_failure(exc)
    )
    if never_sent:
        return KakaoUnreachable(None, f"cannot reach Kakao at {where}: {type(exc).__name__}")
    if delivers:
        return KakaoSendUnknown(None, f"no answer from {where} after the request was sent ({type(exc).__name__}); "
                                      "the message may have been delivered")
    return KakaoUnavailable(None, f"no answer from Kakao at {where} ({type(exc).__name__})")


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError) or "NameResolutionError" in type(reason).__name__


# -- OAuth ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_expires_in: int | None = None
    scope: str | None = None

    @classmethod
    def parse(cls, body: dict) -> "TokenAnswer":
        access, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(access, str) or not access or not isinstance(expires_in, int) or expires_in <= 0:
            # Not retryable: asking again could spend a refresh token Kakao already rotated away.
            raise KakaoError(None, "token answer without access_token/expires_in")
        refresh, refresh_in = body.get("refresh_token"), body.get("refresh_token_expires_in")
        if refresh is not None and (not isinstance(refresh, str) or not isinstance(refresh_in, int)):
            raise KakaoError(None, "token answer with a malformed refresh_token")
        scope = body.get("scope")
        return cls(access, expires_in, refresh, refresh_in, scope if isinstance(scope, str) else None)


class KakaoAuth:
    """kauth.kakao.com: the app's side of Kakao Login."""

    SCOPES = ("talk_message", "friends")

    def __init__(self, http: KakaoHttp, *, auth_url: str, rest_api_key: str, client_secret: str | None,
                 redirect_uri: str):
        self.http, self.auth_url = http, auth_url.rstrip("/")
        self._client_id, self._client_secret = rest_api_key, client_secret
        self.redirect_uri = redirect_uri

    def authorize_url(self, state: str, scopes: Sequence[str] = SCOPES) -> str:
        query = urlencode({"client_id": self._client_id, "redirect_uri": self.redirect_uri,
                           "response_type": "code", "scope": ",".join(scopes), "state": state})
        return f"{self.auth_url}/oauth/authorize?{query}"

    def exchange_code(self, code: str) -> TokenAnswer:
        form = {"grant_type": "authorization_code", "client_id": self._client_id,
                "redirect_uri": self.redirect_uri, "code": code}
        return self._token(form, errors=oauth_error)

    def refresh(self, refresh_token: str, *, account: str) -> TokenAnswer:
        form = {"grant_type": "refresh_token", "client_id": self._client_id, "refresh_token": refresh_token}
        return self._token(form, errors=lambda status, body: oauth_error(status, body, refreshing=True, account=account))

    def _token(self, form: dict, errors: Callable[[int, Any], KakaoError]) -> TokenAnswer:
        if self._client_secret:
            form["client_secret"] = self._client_secret
        # Kakao may echo what it refused ("…refresh token XYZ…"): the error never carries what was sent.
        sent = [form[key] for key in ("code", "refresh_token", "client_secret") if form.get(key)]
        return TokenAnswer.parse(self.http.call("POST", f"{self.auth_url}/oauth/token", data=form,
                                                errors=lambda status, body: errors(status, _without(body, sent))))


def _without(body: Any, values: Sequence[str]) -> Any:
    """An error answer with `values` masked in its texts."""
    if not isinstance(body, dict):
        return body
    masked = {}
    for key, item in body.items():
        if isinstance(item, str):
            for value in values:
                item = item.replace(value, MASK)
        masked[key] = item
    return masked


# -- API ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLease:
    """An access token and the instant until which it may be used without asking its source again
    (its expiry less the source's refresh margin), judged by the source's clock."""

    token: str = field(repr=False)
    valid_until: datetime
    clock: Callable[[], datetime] = field(repr=False, compare=False)

    def fresh(self) -> bool:
        return self.clock() < self.valid_until


class TokenSource(Protocol):
    """Hands out a valid access token for one login; `renew` after Kakao said -401."""

    def access_token(self) -> str: ...

    def lease(self) -> AccessLease: ...

    def renew(self, rejected: str) -> str: ...


@dataclass
class FriendSendResult:
    sent: list[str]  # uuids
    failed: dict[str, KakaoError]  # uuid → why


@dataclass(frozen=True)
class UploadedImage:
    """Kakao's `infos.original` for an uploaded image: `url` goes into a feed's `image_url`."""

    url: str
    width: int
    height: int
    length: int | None = None
    content_type: str | None = None


@dataclass
class MintedToken:
    """A TokenSource holding one access token minted beforehand; a -401 still renews through `source`."""

    held: AccessLease
    source: TokenSource
    renewed: bool = False  # a -401 replaced the token: its validity is the source's to say again

    def access_token(self) -> str:
        return self.held.token

    def lease(self) -> AccessLease:
        return self.held

    def fresh(self) -> bool:
        return not self.renewed and self.held.fresh()

    def renew(self, rejected: str) -> str:
        token = self.source.renew(rejected)
        self.held, self.renewed = AccessLease(token, self.held.valid_until, self.held.clock), True
        return token


class KakaoApi:
    """kapi.kakao.com for one login."""

    def __init__(self, http: KakaoHttp, *, api_url: str, tokens: TokenSource):
        self.http, self.api_url, self.tokens = http, api_url.rstrip("/"), tokens

    def minted(self) -> "KakaoApi":
        """This login's API with its access token minted now (a refresh, if due, happens here): a
        sender mints before it records `sending`, so nothing that can block sits between that and the POST.
        It may go on using that API for as long as `fresh()` says, without asking the token store again."""
        return KakaoApi(self.http, api_url=self.api_url, tokens=MintedToken(self.tokens.lease(), self.tokens))

    def fresh(self) -> bool:
        """Whether this API's minted token is still valid (False for one that mints on every call, and
        once a -401 renewed it: the next `minted()` asks the store for its validity)."""
        return isinstance(self.tokens, MintedToken) and self.tokens.fresh()

    def _call(self, method: str, path: str, *, delivers: bool = False, **kwargs: Any) -> dict:
        token = self.tokens.access_token()
        url = f"{self.api_url}{path}"
        try:
            return self.http.call(method, url, token=token, errors=api_error, delivers=delivers, **kwargs)
        except KakaoAuthError:
            # -401 means Kakao refused the token before doing anything: one renewal, one retry.
            token = self.tokens.renew(token)
            return self.http.call(method, url, token=token, errors=api_error, delivers=delivers, **kwargs)

    def token_info(self) -> dict:
        return self._call("GET", "/v1/user/access_token_info")

    def friends(self) -> list[Friend]:
        friends: dict[str, Friend] = {}  # by uuid: overlapping pages never list a friend twice
        params: dict[str, Any] = {"offset": 0, "limit": FRIENDS_PAGE}
        for _ in range(1000):  # a bound even if Kakao's after_url never ends
            body = self._call("GET", "/v1/api/talk/friends", params=params)
            for item in body.get("elements") or []:
                if _has_uuid(item):
                    friends.setdefault(item["uuid"], _parse_friend(item))
            next_params = _next_page(body.get("after_url"))
            if not next_params or not body.get("elements") or next_params["offset"] <= params["offset"]:
                break  # no next page, an empty page, or an after_url that does not move forward
            params = next_params
        return list(friends.values())

    def send_to_me(self, template: Template) -> None:
        form = {"template_object": template_json(template)}
        self._call("POST", "/v2/api/talk/memo/default/send", data=form, delivers=True)

    def send_to_friends(self, uuids: Sequence[str], template: Template) -> FriendSendResult:
        if not 1 <= len(uuids) <= MAX_RECEIVERS:
            raise ValueError(f"1 to {MAX_RECEIVERS} receivers per call, got {len(uuids)}")
        form = {"receiver_uuids": json.dumps(list(uuids)), "template_object": template_json(template)}
        try:
            body = self._call("POST", "/v1/api/talk/friends/message/default/send", data=form, delivers=True)
        except KakaoError as exc:
            # Only a kapi error answer (an int code) is about the receiver; a dead login
            # (KakaoLoginRequired, code "KOE322" or None) or an unknown outcome is not.
            if (len(uuids) == 1 and isinstance(exc.code, int) and not isinstance(exc.code, bool)
                    and not isinstance(exc, (KakaoAuthError, KakaoSendUnknown, KakaoOAuthError))):
                # With one receiver, Kakao reports that receiver's failure as a plain error answer.
                return FriendSendResult([], {uuids[0]: exc})
            raise
        return _parse_send_result(uuids, body)

    def upload_image(self, image: bytes, *, filename: str = "chart.png",
                     content_type: str = "image/png") -> UploadedImage:
        """Upload an image for a message (`POST /v2/api/talk/message/image/upload`, multipart `file`).
        Nothing is delivered, so an upload that fails for a reason that can pass is retried. Kakao keeps
        the image for an undocumented time: upload per delivery, never reuse an old URL."""
        if not image:
            raise ValueError("no image to upload")
        if len(image) > MAX_IMAGE_BYTES:
            raise KakaoImageRejected(-602, f"image of {len(image):,} bytes is over Kakao's {MAX_IMAGE_BYTES:,}")
        body = self._call("POST", "/v2/api/talk/message/image/upload",
                          files={"file": (filename, image, content_type)})
        return _parse_uploaded(body)


def _parse_uploaded(body: dict) -> UploadedImage:
    """`{"infos": {"original": {url, length, content_type, width, height}}}`, checked."""
    infos = body.get("infos")
    original = infos.get("original") if isinstance(infos, dict) else None
    if not isinstance(original, dict):
        raise KakaoError(None, "image upload answer without infos.original")
    url, width, height = original.get("url"), original.get("width"), original.get("height")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise KakaoError(None, "image upload answer without an http(s) infos.original.url")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (width, height)):
        raise KakaoError(None, "image upload answer without infos.original.width/height")
    length, kind = original.get("length"), original.get("content_type")
    return UploadedImage(url, width, height, length if isinstance(length, int) and not isinstance(length, bool) else None,
                         kind if isinstance(kind, str) else None)


def _has_uuid(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("uuid"), str) and bool(item["uuid"])


def _parse_friend(item: dict) -> Friend:
    return Friend(uuid=item["uuid"], nickname=str(item.get("profile_nickname") or ""),
                  allowed_msg=item.get("allowed_msg") is True, favorite=item.get("favorite") is True)


def _next_page(after_url: Any) -> dict | None:
    """Take only offset/limit from after_url: the bearer token is never sent to a host it names."""
    if not isinstance(after_url, str) or not after_url:
        return None
    query = parse_qs(urlsplit(after_url).query)
    try:
        offset, limit = int(query["offset"][0]), int(query.get("limit", [FRIENDS_PAGE])[0])
    except (KeyError, ValueError, IndexError):
        return None
    if offset < 0:
        return None
    return {"offset": offset, "limit": min(max(limit, 1), FRIENDS_PAGE)}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _parse_send_result(uuids: Sequence[str], body: dict) -> FriendSendResult:
    asked = set(uuids)
    sent = [uuid for uuid in _as_list(body.get("successful_receiver_uuids"))
            if isinstance(uuid, str) and uuid in asked]
    failed: dict[str, KakaoError] = {}
    infos = [*_as_list(body.get("failure_info")), *_as_list(body.get("failure_infos"))]
    for info in infos:
        if not isinstance(info, dict):
            continue
        error = api_error(400, {"code": info.get("code"), "msg": info.get("msg")})
        for uuid in _as_list(info.get("receiver_uuids")):
            if isinstance(uuid, str) and uuid in asked and uuid not in sent:
                failed[uuid] = error
    for uuid in asked - set(sent) - set(failed):
        # Neither listed as sent nor as failed: we cannot know, so say so rather than guess.
        failed[uuid] = KakaoSendUnknown(None, "not listed in Kakao's answer")
    return FriendSendResult(sent, failed)
