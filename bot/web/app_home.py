"""The embedded app's page (app home): what the Shopify admin shows when a merchant opens the app.

Served at the app URL (`GET /shopify/<app>` with `embedded=1`, its query HMAC-checked by
`bot.web.shopify_routes`) as Shopify asks of embedded apps: `<meta name="shopify-api-key">`, App
Bridge then Polaris web components from Shopify's CDN (`[shopify].cdn`), and
`Content-Security-Policy: frame-ancestors https://{shop} https://admin.shopify.com` (the shop's
address as `[shopify].origin` spells it, so a local stand-in's admin may frame it too). The page
(templates/app_home.html, static/app_home.js) is in Korean; everything it shows comes from the JSON
API (bot.web.embedded_api) with App Bridge's session token, so the HTML itself holds nothing of the
shop but its name.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template

from bot.app import App
from bot.shopify.client import shop_url

blueprint = Blueprint("app_home", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static/app-home")

SLOT_NAMES_KO = {"morning": "아침", "noon": "점심", "evening": "저녁"}


def app_home(app: App, app_name: str, shop: str, api_key: str) -> Response:
    cdn = app.config.shopify.cdn
    slots = [(moment.strftime("%H:%M"), SLOT_NAMES_KO.get(name, name)) for name, moment in
             sorted(app.config.slots.items(), key=lambda item: item[1])]
    page = render_template("app_home.html", api_key=api_key, shop=shop, cdn=cdn,
                           api_base=f"/shopify/{app_name}/api", slots=slots)
    response = Response(page, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {_origin(shop_url(app.config.shopify.origin, shop, '/'))} https://admin.shopify.com; "
        f"script-src 'self' {_origin(cdn)}; object-src 'none'; base-uri 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _origin(url: str) -> str:
    """scheme://host[:port] of `url`: the shop's own admin is https://{shop}; a stand-in's is its address."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
