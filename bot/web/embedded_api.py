"""The embedded app's JSON API: what the app's page inside the Shopify admin calls.

    GET  /shopify/<app>/api/shop            the shop's connection to this app; installs it by token
                                            exchange when it has no usable offline token
    GET  /shopify/<app>/api/kakao           the merchant's KakaoTalk connection (never a token)
    POST /shopify/<app>/api/kakao/connect   Kakao's authorize URL, for a new top-level window
    GET  /shopify/<app>/api/kakao/friends   who can receive: "me" and the friends Kakao lists, live
    POST /shopify/<app>/api/kakao/test      a test message now, to {"recipients": ["me", "uuid:…"]}
    GET  /shopify/<app>/api/history         the latest deliveries this shop's KakaoTalk sent (?limit=1-100)

Every route authenticates with App Bridge's session token (`Authorization: Bearer …`, verified in
bot.connect.shopify_embedded) and serves only the shop that token names: no route takes a shop from
the path, the query or the body, so a merchant can never reach another shop's data. A missing,
expired or forged token is a 401 carrying `X-Shopify-Retry-Invalid-Session-Request: 1`, the header
on which App Bridge fetches a fresh token and sends the request again. Answers are never cached.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bot.connect import merchant_kakao
from bot.connect.shopify_embedded import SessionRefused, authenticate, ensure_installed
from bot.connect.shopify_install import InstallRefused
from bot.delivery.trial_message import send_test_message
from bot.kakao.errors import KakaoError, KakaoLoginRequired
from bot.kakao.recipients import Recipient, parse_recipient
from bot.web.context import bot_app, error_response

blueprint = Blueprint("embedded_api", __name__)

RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"
MAX_TEST_RECIPIENTS = 20
MAX_HISTORY = 100


@blueprint.errorhandler(InstallRefused)
def _refused(exc: InstallRefused) -> Response:
    response = error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, SessionRefused):
        response.headers[RETRY_HEADER] = "1"
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@blueprint.get("/shopify/<app_name>/api/shop")
def shop(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    connection = ensure_installed(app, session)
    status, installed = connection.status, connection.installed_now
    body: dict[str, Any] = {
        "shop": session.shop,
        "app": app_name,
        "install": {"status": status.status, "mode": status.mode, "scopes": list(status.scopes),
                    "installed_at": _iso(status.installed_at), "access_expires_at": _iso(status.access_expires_at)},
        "installed_now": installed is not None,
    }
    if installed is not None:
        body["webhooks"] = {"uri": installed.webhook_uri, "created": list(installed.webhooks_created),
                            "error": installed.webhook_error}
        body["missing_job_scopes"] = installed.missing_job_scopes
    return _json(body)


@blueprint.get("/shopify/<app_name>/api/kakao")
def kakao(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    found = merchant_kakao.connection(app, app_name, session.shop)
    status = found.status
    return _json({"state": found.state, "problem": found.problem_ko,
                  "scopes": list(status.scopes) if status else [],
                  "access_expires_at": _iso(status.access_expires_at) if status else None,
                  "refresh_expires_at": _iso(status.refresh_expires_at) if status else None})


@blueprint.post("/shopify/<app_name>/api/kakao/connect")
def kakao_connect(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    return _json({"authorize_url": merchant_kakao.start_connect(app, app_name, session.shop)})


@blueprint.get("/shopify/<app_name>/api/kakao/friends")
def kakao_friends(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    found = merchant_kakao.connection(app, app_name, session.shop)
    if found.state != "connected":
        return error_response(409, "kakao_not_connected", found.problem_ko or "카카오톡을 먼저 연결하세요.")
    try:
        friends = merchant_kakao.friends(app, app_name, session.shop)
    except KakaoLoginRequired:
        return error_response(409, "kakao_not_connected", merchant_kakao.EXPIRED_KO)
    except KakaoError as exc:
        return error_response(502, "kakao_unavailable", f"카카오에서 친구 목록을 받지 못했습니다: {exc}")
    recipients = [{"key": "me", "label": "나에게 보내기", "allowed": True}]
    recipients += [{"key": f"uuid:{friend.uuid}", "label": friend.nickname, "allowed": friend.allowed_msg}
                   for friend in sorted(friends, key=lambda friend: friend.nickname)]
    return _json({"recipients": recipients, "note": merchant_kakao.TEAM_ONLY_KO})


@blueprint.post("/shopify/<app_name>/api/kakao/test")
def kakao_test(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    body = request.get_json(silent=True, force=True) if request.get_data() else {}  # no body: to "me"
    recipients = _test_recipients(body)
    if recipients is None:
        return error_response(400, "bad_recipients", 'recipients: a list of 1-20 of "me" or "uuid:…"')
    found = merchant_kakao.connection(app, app_name, session.shop)
    if found.state != "connected":
        return error_response(409, "kakao_not_connected", found.problem_ko or "카카오톡을 먼저 연결하세요.")
    try:
        report = send_test_message(app, merchant_kakao.merchant_account(app_name, session.shop), recipients)
    except KakaoError as exc:  # the friends list, before anything was sent
        return error_response(502, "kakao_unavailable", f"카카오에서 친구 목록을 받지 못했습니다: {exc}")
    return _json({"results": [{"key": r.key, "label": r.label, "status": r.status, "reason": r.reason}
                              for r in report.results], "token_error": report.token_error})


@blueprint.get("/shopify/<app_name>/api/history")
def history(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_HISTORY:
        return error_response(400, "bad_limit", f"limit: a whole number from 1 to {MAX_HISTORY}")
    rows = app.deliveries.history(sender=merchant_kakao.merchant_account(app_name, session.shop), limit=int(limit))
    zone = app.config.timezone
    return _json({"deliveries": [
        {"job": row.job, "recipient": row.label or row.recipient, "status": row.status, "reason": row.reason,
         "at": row.created_at.astimezone(zone).isoformat()} for row in rows]})


def _test_recipients(body: Any) -> list[Recipient] | None:
    """The recipients a test message asks for ("me" if none), or None if the body is not such a request."""
    wanted = body.get("recipients", ["me"]) if isinstance(body, dict) else None
    if not isinstance(wanted, list) or not 1 <= len(wanted) <= MAX_TEST_RECIPIENTS:
        return None
    if not all(isinstance(item, str) and (item == "me" or item.startswith("uuid:")) for item in wanted):
        return None
    try:
        return [parse_recipient(item) for item in dict.fromkeys(wanted)]
    except ValueError:
        return None


def _json(body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
