"""Shopify app routes: the app URL, install start and OAuth callback, per configured app.

    GET /shopify/<app>/install?shop=…   302 to the shop's authorize page (single-use state);
                                        429 + Retry-After past INSTALL_BURST / INSTALL_PER_MINUTE a client
    GET /shopify/<app>/callback?…       verify, exchange, store, subscribe → "설치 완료" page
    GET /shopify/<app>?…                the app URL Shopify opens: status page or (re)authorisation

The flow itself lives in `bot.connect.shopify_install`; these views only translate. Refusals are
JSON `{"error": code, "message": …}` with a 4xx/5xx status; pages never show a token.
"""

from __future__ import annotations

import html
from datetime import datetime

from flask import Blueprint, Response, current_app, redirect, request

from bot.connect.shopify_install import (
    AppUrlState,
    Installed,
    InstallRefused,
    app_url_state,
    finish_install,
    start_install,
)
from bot.connect.shopify_embedded import embedded_shop
from bot.util.times import local_time
from bot.web.app_home import app_home
from bot.web.context import bot_app, error_response
from bot.web.rate_limit import RateLimiter, client_address, retry_after

blueprint = Blueprint("shopify", __name__)

# Each install start stores a state: unauthenticated, so bounded per client. A merchant installs
# once; ten at once and ten a minute leaves room for retries and several shops.
INSTALL_PER_MINUTE = 10
INSTALL_BURST = 10


@blueprint.errorhandler(InstallRefused)
def _refused(exc: InstallRefused) -> Response:
    return error_response(exc.status, exc.code, exc.message)


def _query() -> list[tuple[str, str]]:
    return list(request.args.items(multi=True))


def _install_limiter() -> RateLimiter:
    # One per Flask app (dict.setdefault is atomic): two bots in one process never share buckets.
    limiter = current_app.extensions.get("shopify_install_limiter")
    if limiter is None:
        limiter = current_app.extensions.setdefault(
            "shopify_install_limiter", RateLimiter(per_minute=INSTALL_PER_MINUTE, burst=INSTALL_BURST))
    return limiter


@blueprint.get("/shopify/<app_name>/install")
def install(app_name: str) -> Response:
    app = bot_app()
    wait = _install_limiter().take(client_address(request.environ), now=app.clock().timestamp())
    if wait:
        response = error_response(429, "too_many_requests",
                                  f"too many install starts from this address: try again in {retry_after(wait)} s")
        response.headers["Retry-After"] = retry_after(wait)
        return response
    url = start_install(app, app_name, request.args.get("shop"))
    response = redirect(url, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/shopify/<app_name>/callback")
def callback(app_name: str) -> Response:
    installed = finish_install(bot_app(), app_name, _query())
    return _page("설치 완료", _installed_body(installed), installed.shop)


@blueprint.get("/shopify/<app_name>")
def app_url(app_name: str) -> Response:
    app = bot_app()
    shop = embedded_shop(app, app_name, _query())
    if shop is not None:  # inside the admin: the app home, which installs by token exchange
        return app_home(app, app_name, shop, app.shopify_app(app_name).api_key)
    found = app_url_state(app, app_name, _query())
    if found.kind == "valid":
        return _page(f"{found.shop_name or found.shop} — 연결됨", _status_body(found), found.shop)
    if found.kind == "unavailable":
        return _page("Shopify 확인 불가", _unavailable_body(found), found.shop, status=503)
    # invalid (a stored token that fails) or not_found (never installed): (re)authorise.
    response = redirect(found.install_url, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- pages ------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return local_time(moment, bot_app().config.timezone)


def _page(title: str, body: str, shop: str, *, status: int = 200) -> Response:
    document = (f'<!doctype html>\n<html lang="ko"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{_e(title)}</title>"
                "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
                "dt{font-weight:600}dd{margin:0 0 .6rem 0}</style></head>"
                f"<body><h1>{_e(title)}</h1>{body}</body></html>\n")
    response = Response(document, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'none'; "
        f"frame-ancestors https://{shop} https://admin.shopify.com")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the callback's URL carries the code
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _facts(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _installed_body(installed: Installed) -> str:
    status = installed.status
    rows = [("상점", installed.shop), ("앱", installed.app), ("권한", ", ".join(status.scopes) or "-"),
            ("연결 시각", _when(status.installed_at))]
    if installed.webhook_error:
        rows.append(("웹훅", f"구독 실패: {installed.webhook_error}"))
        note = ("<p>앱은 설치되었지만 웹훅 구독에 실패했습니다. 주문 알림은 정기 점검으로 보완되며, "
                "다시 설치하면 구독을 다시 시도합니다.</p>")
    else:
        made = ", ".join(installed.webhooks_created) or "이미 구독됨"
        if installed.webhooks_deleted:
            made += f" (필요 없는 구독 해지: {', '.join(installed.webhooks_deleted)})"
        rows.append(("웹훅", f"{made} → {installed.webhook_uri}"))
        note = ""
    if installed.missing_job_scopes:
        rows.append(("부족한 권한", installed.missing_job_scopes))
        note += ("<p>설정된 작업에 필요한 권한이 부여되지 않았습니다. 앱 설정에서 권한을 추가한 뒤 "
                 "다시 설치해 주세요.</p>")
    return "<p>Shopify 앱 설치가 완료되었습니다. 이 창을 닫아도 됩니다.</p>" + _facts(rows) + note


def _status_body(found: AppUrlState) -> str:
    status = found.status
    assert status is not None
    rows = [("상점", f"{found.shop_name} ({found.shop})" if found.shop_name else found.shop), ("앱", found.app),
            ("상태", "연결됨"), ("권한", ", ".join(status.scopes) or "-"), ("연결 시각", _when(status.installed_at))]
    return _facts(rows)


def _unavailable_body(found: AppUrlState) -> str:
    return (f"<p>{_e(found.shop)}의 연결 상태를 지금은 확인할 수 없습니다 (Shopify가 응답하지 않음). "
            "잠시 후 다시 열어 주세요.</p>")
