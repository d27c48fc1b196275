"""The Shopify admin as an embedded app meets it, for browser tests: offline, without Shopify's CDN.

Routes added to the Shopify stand-in (not recorded as API calls):

    GET /admin/store/<shop>/apps/<client_id>?app_url=URL   a page that frames the app URL exactly as the
                                   admin does: embedded=1, host, shop, timestamp, id_token (a session
                                   token signed with the app's secret), hmac over them all
    GET /admin/session-token?shop&client_id   a fresh session token (what App Bridge's
                                   `shopify.idToken()` gets from the admin), CORS-open
    GET /cdn/app-bridge.js, /cdn/polaris.js   local stand-ins of Shopify's: `shopify.idToken()` from the
                                   route above; the Polaris tags the app's page uses, drawn plainly

Production pages load Shopify's own files (`[shopify].cdn`); tests point `cdn` here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from flask import Flask, Response, abort, jsonify, request
from markupsafe import escape

from bot.sandbox.shopify_oauth import TokenAuthority
from bot.shopify.signing import is_valid_shop

CDN = Path(__file__).resolve().parent / "cdn"
SCRIPTS = ("app-bridge", "polaris")


def add_admin_routes(app: Flask, oauth: TokenAuthority, locked: Callable) -> None:
    """`locked(fn)` runs `fn()` under the sandbox's lock."""

    def script(name: str) -> Response:
        if name not in SCRIPTS:
            abort(404)
        return Response((CDN / f"{name}.js").read_text(encoding="utf-8"), content_type="text/javascript")

    def session_token() -> Response:
        shop, key = request.args.get("shop", ""), request.args.get("client_id", "")
        if not is_valid_shop(shop) or key not in oauth.apps:
            abort(404)
        answer = jsonify(token=locked(lambda: oauth.session_token(shop, key)))
        answer.headers["Access-Control-Allow-Origin"] = "*"
        return answer

    def admin_page(shop: str, client_id: str) -> Response:
        app_url = request.args.get("app_url", "")
        if not is_valid_shop(shop) or client_id not in oauth.apps or not app_url.startswith(("http://", "https://")):
            abort(404)
        src = f"{app_url}?{locked(lambda: oauth.app_url_query(shop, client_id))}"
        page = ('<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>Shopify 관리자 (stand-in)</title>'
                "<style>body{margin:0;font-family:sans-serif}header{background:#1a1a1a;color:#fff;padding:.6rem 1rem}"
                "iframe{border:0;width:100%;height:calc(100vh - 2.6rem)}</style></head>"
                f"<body><header>{escape(shop)} · 앱</header>"
                f'<iframe id="app-iframe" name="app-iframe" src="{escape(src)}"></iframe></body></html>')
        return Response(page, content_type="text/html; charset=utf-8")

    app.add_url_rule("/cdn/<name>.js", "cdn_script", script)
    app.add_url_rule("/admin/session-token", "admin_session_token", session_token)
    app.add_url_rule("/admin/store/<shop>/apps/<client_id>", "admin_app_page", admin_page)
