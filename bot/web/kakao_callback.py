"""`GET /kakao/callback`: Kakao's redirect after `python -m bot kakao login` — the single-use state
checked, the code exchanged, the login stored; a page in Korean says what happened."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from markupsafe import escape

from bot.connect.kakao_login import KAKAO_STATE_PREFIX
from bot.connect.merchant_kakao import MERCHANT_PREFIX
from bot.connect.oauth_states import StateInvalid, consume_prefixed
from bot.kakao.errors import KakaoError, KakaoOAuthError
from bot.web.context import bot_app, error_response, printable

log = logging.getLogger("bot.server")

blueprint = Blueprint("kakao_callback", __name__)


# -- GET /kakao/callback ----------------------------------------------------------------------------

CONSENT_MESSAGE = ("consent was declined at Kakao (access_denied). Log in again and agree to "
                   "'카카오톡 메시지 전송' (talk_message) and '친구 목록' (friends)")


@blueprint.get("/kakao/callback")
def kakao_callback() -> Response:
    """Kakao's redirect after a login started with a state from `issue(db, "kakao:<account>", …)`."""
    app = bot_app()
    args = request.args
    error = args.get("error")
    if error:
        if args.get("state"):
            # The state is spent either way, so that a waiting `kakao login` learns the attempt is over.
            try:
                consume_prefixed(app.db, KAKAO_STATE_PREFIX, args.get("state"), clock=app.clock)
            except StateInvalid:
                pass
        if error == "access_denied":
            return error_response(400, "access_denied", CONSENT_MESSAGE)
        description = printable(args.get("error_description") or "", 200)
        return error_response(400, "kakao_error", f"Kakao answered {printable(error, 64)}: {description}".strip())
    try:
        consumed = consume_prefixed(app.db, KAKAO_STATE_PREFIX, args.get("state"), clock=app.clock)
    except StateInvalid as exc:
        return error_response(400, f"state_{exc.reason}", f"{exc}: run `python -m bot kakao login` again")
    account = consumed.purpose[len(KAKAO_STATE_PREFIX):]
    code = args.get("code")
    if not code:
        return error_response(400, "missing_code", "Kakao's redirect carried no code")
    try:
        answer = app.kakao_auth.exchange_code(code)
    except KakaoOAuthError as exc:
        log.warning("Kakao login %r: code exchange refused: %s", account, exc)
        return error_response(400, "kakao_login_failed", str(exc))
    except KakaoError as exc:
        log.error("Kakao login %r: code exchange failed: %s", account, exc)
        return error_response(502, "kakao_unavailable", f"Kakao could not be reached: {exc}")
    status = app.kakao_tokens.store_login(account, answer)
    log.info("Kakao login %r stored (scopes: %s)", account, " ".join(status.scopes) or "?")
    missing = sorted({"talk_message", "friends"} - set(status.scopes)) if answer.scope else []
    warning = (f"<p>카카오가 다음 권한을 허용하지 않았습니다: {escape(', '.join(missing))}. "
               "동의항목을 켜고 다시 로그인하세요.</p>" if missing else "")
    if account.startswith(MERCHANT_PREFIX):  # a merchant of the embedded app: the account name means nothing to them
        saved = "카카오톡이 연결되었습니다. 이 창을 닫고 Shopify 관리자의 앱 화면으로 돌아가세요."
    else:
        saved = f"카카오 계정이 {escape(account)!s} 이름으로 저장되었습니다. 이 창을 닫아도 됩니다."
    page = ("<!doctype html><meta charset=\"utf-8\"><title>로그인 완료</title>"
            f"<h1>로그인 완료</h1><p>{saved}</p>{warning}")
    response = Response(page, status=200, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response
