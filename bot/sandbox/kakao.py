"""A local stand-in of Kakao's OAuth server (kauth) and REST API (kapi), on one Flask app.

Point the bot at it with auth_url = api_url = the sandbox URL. It mirrors the facts in
UPSTREAMS.md (Kakao section): form bodies, answer shapes, error codes, refresh-token rotation
only in the last month, issuance limits (KOE237), per-day message quotas counted in
Asia/Seoul, partial failures of friend messages. It models one Kakao user, the shop owner,
and that user's friends. Tests inject a clock, inspect what was received, and script
failures (`fail_next`, `hang_next`).

This is a test double: it keeps every token form and message in memory on purpose.
"""

from __future__ import annotations

import json
import operator
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from flask import Flask, Response, redirect, request
from werkzeug.exceptions import HTTPException

from bot.sandbox.faults import FaultPlan
from bot.sandbox.kakao_images import KakaoImages
from bot.sandbox.recording import RequestLog
from bot.sandbox.standin_app import Route, standin_app

SEOUL = ZoneInfo("Asia/Seoul")
APP_ID = 123456
CODE_TTL = 600  # authorization codes live 10 minutes
DEFAULT_SCOPE = "talk_message,friends"
TEMPLATE_TYPES = ("text", "feed", "list", "commerce", "location", "calendar")
JSON_TYPE = "application/json;charset=UTF-8"
THUMBNAILS = "https://k.kakaocdn.net/dn/sandbox"

# Ready-made bodies for fail_next(), as Kakao sends them.
MAINTENANCE = {"msg": "service is under maintenance", "code": -9798}  # with HTTP 503
TEMPORARY_ERROR = {"msg": "internal server error, please retry", "code": -1}  # with HTTP 400

# Per-receiver send failures: code -> msg.
NOT_FRIEND, REFUSES, SENDER_QUOTA, RECEIVER_QUOTA, PAIR_QUOTA = -502, -530, -532, -533, -536
SEND_ERRORS = {
    NOT_FRIEND: "the receiver is not a friend of the sender",
    REFUSES: "the receiver does not allow messages or the profile is not visible",
    SENDER_QUOTA: "daily message limit of the sender is exceeded",
    RECEIVER_QUOTA: "daily message limit of the receiver is exceeded",
    PAIR_QUOTA: "daily message limit between the sender and the receiver is exceeded",
}

_AUTO = object()  # add_friend(user_id=...) default: invent an id (None means "no id")


class _Reply(Exception):
    """Raised anywhere in a handler to answer at once with this status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(status, body)
        self.status, self.body = status, body


def _oauth_error(error: str, description: str, code: str, status: int = 400) -> _Reply:
    return _Reply(status, {"error": error, "error_description": description, "error_code": code})


def _unknown_client(client_id: str | None) -> _Reply:
    return _oauth_error("invalid_client", f"Not exist client_id [{client_id}]", "KOE101")


def _bad_param(msg: str) -> _Reply:
    return _Reply(400, {"msg": msg, "code": -2})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type=JSON_TYPE)


@dataclass
class _Grant:
    """What an authorization code, access token or refresh token stands for."""

    scopes: tuple[str, ...]
    expires_at: float
    redirect_uri: str = ""
    user: str = ""  # whose login: "" the owner, else another user of the app (add_friend(of=…))


@dataclass
class Friend:
    nickname: str
    uuid: str
    allowed_msg: bool
    favorite: bool
    user_id: int | None
    of: str = ""  # whose friend: "" the owner's

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "profile_nickname": self.nickname,
            "profile_thumbnail_image": f"{THUMBNAILS}/{self.uuid}/img_110x110.jpg",
            "allowed_msg": self.allowed_msg,
            "uuid": self.uuid,
            "favorite": self.favorite,
        }
        if self.user_id is not None:  # Kakao omits the id for some friends
            out["id"] = self.user_id
        return out


class KakaoSandbox:
    """State of one Kakao app and its user (the owner; other users for multi-merchant benches), plus its Flask app."""

    def __init__(
        self,
        rest_api_key: str = "sandbox-rest-key",
        client_secret: str | None = "sandbox-client-secret",
        clock: Callable[[], float] = time.time,
        latency: float = 0.0,
        access_ttl: int = 21600,
        refresh_ttl: int = 5184000,
        rotate_within: int = 2592000,
        owner_nickname: str = "사장님",
    ):
        self.rest_api_key, self.client_secret = rest_api_key, client_secret
        self.clock, self.latency = clock, latency
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl
        self.rotate_within = rotate_within
        self.owner_nickname = owner_nickname
        self.owner_id = 4_300_000_001
        self.app_id = APP_ID

        # Knobs tests may change at any time.
        self.deny_consent = False
        self.sender_daily, self.recipient_daily, self.pair_daily = 100, 100, 20
        self.refresh_limit_per_hour, self.access_limit_per_10min = 30, 20

        # Introspection for tests.
        self.inbox: dict[str, list[dict[str, Any]]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.warnings: list[str] = []  # accepted-but-odd input, e.g. text Kakao would cut

        self.friends: dict[str, Friend] = {}
        self._codes: dict[str, _Grant] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._access_issued: deque[float] = deque()
        self._refresh_issued: deque[float] = deque()
        self._sent: dict[tuple[Any, ...], int] = {}  # (day, kind, uuid?) -> messages
        self._requests = RequestLog()
        self._faults = FaultPlan(matches=operator.eq)  # Kakao paths are scripted whole
        self._lock = threading.RLock()
        self.images = KakaoImages(check_token=self._bearer)  # message image upload (bot.sandbox.kakao_images)
        self.app = self._build_app()

    # ---- test helpers -------------------------------------------------------------------

    def wsgi_app(self) -> Flask:
        return self.app

    def add_friend(
        self,
        nickname: str,
        uuid: str | None = None,
        allowed_msg: bool = True,
        favorite: bool = False,
        user_id: Any = _AUTO,
        of: str = "",
    ) -> str:
        """Add a friend of the owner (or of user `of`, who logs in with issue_code(user=of));
        user_id=None makes Kakao leave out its `id`."""
        with self._lock:
            uuid = uuid or secrets.token_urlsafe(16)
            if user_id is _AUTO:
                # Real ids exceed 2**53: clients must not round them through floats.
                user_id = 2**53 + 1001 + 2 * len(self.friends)
            self.friends[uuid] = Friend(nickname, uuid, allowed_msg, favorite, user_id, of)
            return uuid

    def new_day(self) -> None:
        """The daily caps start again, as at midnight in Korea (benchmarks run many days' fan-outs)."""
        with self._lock:
            self._sent.clear()

    def received(self, key: str) -> list[dict[str, Any]]:
        """Templates received by "me" or by a friend's uuid, oldest first."""
        with self._lock:
            return list(self.inbox.get(key, []))

    @property
    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, oldest first."""
        return self._requests.calls

    def count(self, path_suffix: str) -> int:
        return self._requests.count(path_suffix)

    def issue_code(self, redirect_uri: str, scope: str = DEFAULT_SCOPE, user: str = "") -> str:
        """An authorization code as if the owner (or another user of the app, `user`) had just consented.
        Each user has their own friends, "me" (received("me") is the owner's, received(f"me:{user}") a
        user's) and sender caps; the app's caps per recipient stay shared."""
        scopes = tuple(s for s in scope.replace(" ", ",").split(",") if s)
        with self._lock:
            code = secrets.token_urlsafe(32)
            self._codes[code] = _Grant(scopes, self.clock() + CODE_TTL, redirect_uri, user)
            return code

    def expire_access_tokens(self) -> None:
        with self._lock:
            past = self.clock() - 1
            for grant in self._access.values():
                grant.expires_at = past

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    def fail_next(self, path: str, status: int, body: dict[str, Any], times: int = 1) -> None:
        """The next `times` requests to `path` answer status/body instead of the real thing."""
        self._faults.fail_next(path, status, body, times)

    def hang_next(self, path: str, seconds: float) -> None:
        """The next request to `path` sleeps `seconds` before answering (client timeouts)."""
        self._faults.hang_next(path, seconds)

    def clear_faults(self) -> None:
        """Forget scripted failures and delays not yet played: Kakao is back."""
        self._faults.clear()

    # ---- plumbing ------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        routes: list[Route] = [
            ("/oauth/authorize", "GET", self._authorize),
            ("/oauth/token", "POST", self._token),
            ("/v1/user/access_token_info", "GET", self._token_info),
            ("/v1/api/talk/friends", "GET", self._friends),
            ("/v2/api/talk/memo/default/send", "POST", self._send_me),
            ("/v1/api/talk/friends/message/default/send", "POST", self._send_friends),
            *self.images.routes(),
        ]
        app = standin_app(__name__, routes, self._requests, self._faults,
                          latency=lambda: self.latency, answer=lambda fault: _json(fault.status, fault.body))
        app.register_error_handler(_Reply, lambda e: _json(e.status, e.body))
        app.register_error_handler(HTTPException, _http_error)
        return app

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), SEOUL).date()

    # ---- kauth ---------------------------------------------------------------------------

    def _authorize(self) -> Response:
        args = request.args
        if args.get("client_id") != self.rest_api_key:
            raise _unknown_client(args.get("client_id"))
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri or args.get("response_type") != "code":
            # KOE002 is assumed; Kakao shows an error page here.
            raise _oauth_error(
                "invalid_request", "redirect_uri and response_type=code are required", "KOE002"
            )
        if self.deny_consent:
            params = {"error": "access_denied", "error_description": "User denied access"}
        else:
            params = {"code": self.issue_code(redirect_uri, args.get("scope") or DEFAULT_SCOPE)}
        if "state" in args:
            params["state"] = args["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return redirect(redirect_uri + sep + urlencode(params, quote_via=quote), 302)

    def _token(self) -> Response:
        form = request.form
        with self._lock:
            self.token_requests.append(form.to_dict())
            if form.get("client_id") != self.rest_api_key:
                raise _unknown_client(form.get("client_id"))
            if self.client_secret is not None and form.get("client_secret") != self.client_secret:
                raise _oauth_error("invalid_client", "Bad client credentials", "KOE010", 401)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                body = self._exchange_code(form.get("code", ""), form.get("redirect_uri"))
                return _json(200, body)
            if grant_type == "refresh_token":
                return _json(200, self._use_refresh(form.get("refresh_token", "")))
            raise _oauth_error("unsupported_grant_type", f"grant_type: {grant_type}", "KOE002")

    def _exchange_code(self, code: str, redirect_uri: str | None) -> dict[str, Any]:
        grant = self._codes.get(code)
        if grant is None or grant.expires_at <= self.clock():
            self._codes.pop(code, None)
            raise _oauth_error(
                "invalid_grant", f"authorization code not found for code={code}", "KOE320"
            )
        if redirect_uri != grant.redirect_uri:
            raise _oauth_error("invalid_grant", "Redirect URI mismatch.", "KOE303")
        self._check_issuance(refresh=True)
        del self._codes[code]  # single use: a second exchange gets KOE320
        return {
            "token_type": "bearer",
            "access_token": self._new_token(self._access, grant.scopes, self.access_ttl, grant.user),
            "expires_in": self.access_ttl,
            "refresh_token": self._new_token(self._refresh, grant.scopes, self.refresh_ttl, grant.user),
            "refresh_token_expires_in": self.refresh_ttl,
            "scope": " ".join(grant.scopes),
        }

    def _use_refresh(self, token: str) -> dict[str, Any]:
        grant = self._refresh.get(token)
        now = self.clock()
        if grant is None or grant.expires_at <= now:
            raise _oauth_error("invalid_grant", "expired_or_invalid_refresh_token", "KOE322")
        # Kakao rotates only in the refresh token's last month; otherwise the answer has no
        # refresh token and the old one stays valid.
        rotate = grant.expires_at - now < self.rotate_within
        self._check_issuance(refresh=rotate)
        body: dict[str, Any] = {
            "token_type": "bearer",
            "access_token": self._new_token(self._access, grant.scopes, self.access_ttl, grant.user),
            "expires_in": self.access_ttl,
        }
        if rotate:
            del self._refresh[token]  # the old one dies at once: reuse gets KOE322
            body["refresh_token"] = self._new_token(self._refresh, grant.scopes, self.refresh_ttl, grant.user)
            body["refresh_token_expires_in"] = self.refresh_ttl
        return body

    def _check_issuance(self, refresh: bool) -> None:
        """KOE237 past the per-user limits; counts the issuance when it is allowed."""
        now = self.clock()
        checks = [(self._access_issued, 600, self.access_limit_per_10min)]
        if refresh:
            checks.append((self._refresh_issued, 3600, self.refresh_limit_per_hour))
        for issued, window, limit in checks:
            while issued and issued[0] <= now - window:
                issued.popleft()
            if len(issued) >= limit:
                raise _oauth_error("invalid_request", "token request rate limit exceeded", "KOE237")
        for issued, _, _ in checks:
            issued.append(now)

    def _new_token(self, store: dict[str, _Grant], scopes: tuple[str, ...], ttl: int, user: str) -> str:
        token = secrets.token_urlsafe(40)
        store[token] = _Grant(scopes, self.clock() + ttl, user=user)
        return token

    # ---- kapi ----------------------------------------------------------------------------

    def _bearer(self, scope: str | None = None, api_type: str = "") -> _Grant:
        """The access token's grant, or a -401/-402 answer."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self._access.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            raise _Reply(401, {"msg": "this access token does not exist", "code": -401})
        if grant.expires_at <= self.clock():
            raise _Reply(401, {"msg": "this access token is already expired", "code": -401})
        if scope and scope not in grant.scopes:
            raise _Reply(403, {
                "msg": f"[{scope}] insufficient scopes.", "code": -402, "api_type": api_type,
                "required_scopes": [scope], "allowed_scopes": list(grant.scopes),
            })
        return grant

    def _token_info(self) -> Response:
        with self._lock:
            grant = self._bearer()
            left = int(grant.expires_at - self.clock())
            return _json(200, {"id": self.owner_id, "expires_in": left, "app_id": self.app_id})

    def _friends(self) -> Response:
        with self._lock:
            grant = self._bearer("friends", "TALK_FRIENDS")
            offset = _int_arg("offset", 0, 0, None)
            limit = _int_arg("limit", 10, 1, 100)
            order = request.args.get("order", "asc")
            if order not in ("asc", "desc"):
                raise _bad_param("order must be asc or desc")
            friends = [friend for friend in self.friends.values() if friend.of == grant.user]
            if order == "desc":
                friends.reverse()
            page = friends[offset: offset + limit]

            def page_url(at: int) -> str:
                query = urlencode({"offset": at, "limit": limit, "order": order})
                return f"{request.host_url.rstrip('/')}{request.path}?{query}"

            body: dict[str, Any] = {}
            if page:  # Kakao leaves `elements` out when the range is empty
                body["elements"] = [f.as_json() for f in page]
            body["total_count"] = len(friends)
            body["favorite_count"] = sum(f.favorite for f in friends)
            body["before_url"] = page_url(max(0, offset - limit)) if offset > 0 else None
            body["after_url"] = page_url(offset + limit) if offset + limit < len(friends) else None
            return _json(200, body)

    def _send_me(self) -> Response:
        with self._lock:
            grant = self._bearer("talk_message", "TALK_MEMO_DEFAULT_SEND")
            template = self._template("me")
            today = self._today()
            if self._sent.get((today, "sender", grant.user), 0) >= self.sender_daily:
                raise _Reply(400, {"code": SENDER_QUOTA, "msg": SEND_ERRORS[SENDER_QUOTA]})
            self._bump((today, "sender", grant.user))
            self.inbox.setdefault(f"me:{grant.user}" if grant.user else "me", []).append(template)
            return _json(200, {"result_code": 0})

    def _send_friends(self) -> Response:
        with self._lock:
            grant = self._bearer("talk_message", "TALK_MESSAGE_DEFAULT_SEND")
            uuids = _receiver_uuids(request.form.get("receiver_uuids"))
            template = self._template(",".join(uuids))
            ok: list[str] = []
            failures: dict[int, list[str]] = {}  # insertion order = order of first failure
            for uuid in uuids:
                code = self._deliver(uuid, template, grant.user)
                if code:
                    failures.setdefault(code, []).append(uuid)
                else:
                    ok.append(uuid)
            if len(uuids) == 1 and failures:
                # With a single receiver Kakao answers a plain error, not a partial result.
                code = next(iter(failures))
                raise _Reply(400, {"code": code, "msg": SEND_ERRORS[code]})
            body: dict[str, Any] = {"successful_receiver_uuids": ok}
            if failures:
                body["failure_info"] = [
                    {"code": code, "msg": SEND_ERRORS[code], "receiver_uuids": failed}
                    for code, failed in failures.items()
                ]
            return _json(200, body)

    def _deliver(self, uuid: str, template: dict[str, Any], user: str) -> int:
        """Deliver to one friend of `user` and count quotas; the failure code, or 0."""
        friend = self.friends.get(uuid)
        if friend is None or friend.of != user:
            return NOT_FRIEND
        if not friend.allowed_msg:
            return REFUSES
        today = self._today()
        limits = [
            ((today, "sender", user), self.sender_daily, SENDER_QUOTA),
            ((today, "recipient", uuid), self.recipient_daily, RECEIVER_QUOTA),
            ((today, "pair", user, uuid), self.pair_daily, PAIR_QUOTA),
        ]
        for key, limit, code in limits:
            if self._sent.get(key, 0) >= limit:
                return code
        for key, _, _ in limits:
            self._bump(key)
        self.inbox.setdefault(uuid, []).append(template)
        return 0

    def _bump(self, key: tuple[Any, ...]) -> None:
        self._sent[key] = self._sent.get(key, 0) + 1

    def _template(self, receiver: str) -> dict[str, Any]:
        """The parsed template_object, or a -2 answer; notes text Kakao would cut."""
        raw = request.form.get("template_object")
        if not raw:
            raise _bad_param("template_object is required")
        try:
            template = json.loads(raw)
        except ValueError:
            raise _bad_param("template_object is not valid JSON") from None
        problem = _template_problem(template)
        if problem:
            raise _bad_param(f"invalid template_object: {problem}")
        for key in ("text", "header_title"):
            if len(template.get(key) or "") > 200:
                note = f"{key} of {len(template[key])} chars to {receiver} is cut at 200"
                self.warnings.append(note)
        return template


def _http_error(e: HTTPException) -> Response:
    # Wrong paths/methods are bugs in the caller, not Kakao answers: loud, non-Kakao codes.
    status = e.code or 500
    return _json(status, {"msg": f"{e.name}: {request.path}", "code": -status})


def _int_arg(name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise _bad_param(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise _bad_param(f"{name} out of range: {value}")
    return value


def _receiver_uuids(raw: str | None) -> list[str]:
    try:
        uuids = json.loads(raw or "")
    except ValueError:
        uuids = None
    ok = (
        isinstance(uuids, list) and 1 <= len(uuids) <= 5
        and all(isinstance(u, str) and u for u in uuids) and len(set(uuids)) == len(uuids)
    )
    if not ok:
        raise _bad_param(
            "Constraints on the parameter [receiver_uuids] are unsatisfied. "
            "Expected a JSON array of 1 to 5 distinct uuids."
        )
    return uuids


def _template_problem(t: Any) -> str | None:
    """Why a template_object would be refused, or None. Checks what Kakao requires."""
    if not isinstance(t, dict):
        return "not a JSON object"
    kind = t.get("object_type")
    if kind not in TEMPLATE_TYPES:
        return f"object_type must be one of {', '.join(TEMPLATE_TYPES)}"
    buttons = t.get("buttons", [])
    if not isinstance(buttons, list) or len(buttons) > 2:
        return "at most 2 buttons"
    for b in buttons:
        if not isinstance(b, dict) or not b.get("title") or not isinstance(b.get("link"), dict):
            return "a button needs title and link"
    if kind == "text":
        if not isinstance(t.get("text"), str) or not t["text"]:
            return "text is required"
        if not isinstance(t.get("link"), dict):
            return "link is required"
    elif kind == "list":
        if not isinstance(t.get("header_title"), str) or not t["header_title"]:
            return "header_title is required"
        if not isinstance(t.get("header_link"), dict):
            return "header_link is required"
        contents = t.get("contents")
        if not isinstance(contents, list) or not 2 <= len(contents) <= 3:
            return "contents must have 2 or 3 items"
    elif kind == "feed":
        content = t.get("content")
        if not isinstance(content, dict) or not isinstance(content.get("link"), dict):
            return "content with a link is required"
        if not any(content.get(k) for k in ("title", "description", "image_url")):
            return "content needs a title, description or image_url"
        items = (t.get("item_content") or {}).get("items", [])
        if not isinstance(items, list) or len(items) > 5:
            return "item_content.items holds at most 5 items"
    elif kind in ("commerce", "location"):
        if not isinstance(t.get("content"), dict):
            return "content is required"
    return None
