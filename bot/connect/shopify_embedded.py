"""The embedded app's side of connecting a shop: App Bridge session tokens in, installs by token exchange.

Inside the Shopify admin the app's page calls this server's JSON API (`/shopify/<app>/api/…`,
bot.web.embedded_api) with App Bridge's session token. `authenticate` turns the request's
`Authorization: Bearer …` into the verified shop — the only shop that request may read or change.
`ensure_installed` is Shopify-managed installation: when that shop has no usable offline token of
this app (never installed, uninstalled, or its token refused since), the session token is exchanged
for an expiring offline token at `/admin/oauth/access_token`, which is then kept exactly as an OAuth
callback keeps one (scopes checked, stored encrypted, webhooks subscribed). No redirect, no state:
the session token itself proves the merchant is in the shop's admin with the app open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.app import App
from bot.connect.shopify_install import (
    Installed,
    InstallRefused,
    Query,
    check_signed,
    keep_install,
    resolve_app,
    shop_graphql,
    token_request,
)
from bot.connect.webhook_needs import sync_shop
from bot.shopify.errors import ShopifySessionTokenRefused
from bot.shopify.session_tokens import InvalidSessionToken, SessionToken, verify_session_token
from tokens.shopify import InstallStatus

log = logging.getLogger(__name__)

BEARER = "bearer "


class SessionRefused(InstallRefused):
    """401: no valid session token. App Bridge fetches a fresh one and retries the request."""

    def __init__(self, message: str):
        super().__init__(401, "invalid_session_token", message)


@dataclass(frozen=True)
class Session:
    """A request authenticated by its session token: which app, which shop, and the raw token (for
    the token exchange only; never logged or stored)."""

    app_name: str
    token: SessionToken
    raw: str

    @property
    def shop(self) -> str:
        return self.token.shop


@dataclass(frozen=True)
class ShopConnection:
    """The shop's install as the page needs it: the status, and the install just made (if one was)."""

    status: InstallStatus
    installed_now: Installed | None = None


def embedded_shop(app: App, app_name: str, query: Query) -> str | None:
    """The shop whose admin opened the app URL embedded (`embedded=1`, the query's HMAC, shop and
    timestamp checked: InstallRefused if not), or None for a request that is not embedded."""
    shopify_app = resolve_app(app, app_name)
    params, shop = check_signed(app, shopify_app, query)
    return shop if params.get("embedded") == "1" else None


def authenticate(app: App, app_name: str, authorization: str | None) -> Session:
    """The request's verified session token, or SessionRefused (401) saying why not."""
    shopify_app = resolve_app(app, app_name)
    if not authorization or not authorization[:len(BEARER)].lower() == BEARER:
        raise SessionRefused("this API takes an App Bridge session token: Authorization: Bearer <token>")
    raw = authorization[len(BEARER):].strip()
    try:
        token = verify_session_token(raw, shopify_app, now=app.clock())
    except InvalidSessionToken as exc:
        log.info("Shopify app %r: session token refused (%s)", app_name, exc.reason)
        raise SessionRefused(exc.reason) from None
    return Session(app_name, token, raw)


def ensure_installed(app: App, session: Session) -> ShopConnection:
    """The shop's active install of the session's app, made by token exchange if there is none."""
    status = app.shopify_tokens.status(session.shop, session.app_name)
    if status is not None and status.active:
        return ShopConnection(status)
    shopify_app = resolve_app(app, session.app_name)
    shop, app_name = session.shop, session.app_name
    with token_request(shop, app_name, "token exchange", refused=(502, "token_exchange_refused", "the token exchange")):
        try:
            answer = app.shopify_oauth(app_name).exchange_session_token(shop, session.raw)
        except ShopifySessionTokenRefused as exc:  # the page's to retry with a fresh token: a 401, not a 502
            log.warning("Shopify %s: token exchange for app %r refused the session token: %s", shop, app_name, exc)
            raise SessionRefused("Shopify refused the session token: get a fresh one and try again") from None
    installed = keep_install(app, shopify_app, shop, answer)
    log.info("Shopify %s: app %r installed by token exchange", shop, app_name)
    return ShopConnection(installed.status, installed)


def settings_saved(app: App, app_name: str, shop: str) -> str | None:
    """After a merchant saved their settings: this process's merchant jobs rebuilt at once (the others
    follow within seconds), and the shop's webhook subscriptions brought in step with the jobs it now
    has (alerts need orders/create and orders/updated). Best effort: the error, if that failed."""
    app.merchant_jobs.refresh()
    return sync_shop(app, shop_graphql(app, shop, app_name), shop, app_name).error
