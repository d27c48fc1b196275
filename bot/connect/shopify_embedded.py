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
from bot.connect.shopify_install import Installed, InstallRefused, keep_install, resolve_app
from bot.shopify.errors import ShopifyBadCredentials, ShopifyError, ShopifyOAuthError, ShopifySessionTokenRefused
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
    try:
        answer = app.shopify_oauth(app_name).exchange_session_token(shop, session.raw)
    except ShopifySessionTokenRefused as exc:
        log.warning("Shopify %s: token exchange for app %r refused the session token: %s", shop, app_name, exc)
        raise SessionRefused("Shopify refused the session token: get a fresh one and try again") from None
    except ShopifyBadCredentials as exc:
        log.error("Shopify %s: token exchange for app %r refused our credentials: %s", shop, app_name, exc)
        raise InstallRefused(502, "app_credentials_refused",
                             f"Shopify refused the credentials of app {app_name!r}; the operator must check its "
                             "client id and secret on this server") from None
    except ShopifyOAuthError as exc:
        log.error("Shopify %s: token exchange for app %r refused: %s", shop, app_name, exc)
        raise InstallRefused(502, "token_exchange_refused", f"Shopify refused the token exchange: {exc}") from None
    except ShopifyError as exc:
        log.error("Shopify %s: token exchange for app %r failed: %s", shop, app_name, exc)
        raise InstallRefused(502, "shopify_unavailable", f"the token exchange with Shopify failed: {exc}") from None
    installed = keep_install(app, shopify_app, shop, answer)
    log.info("Shopify %s: app %r installed by token exchange", shop, app_name)
    return ShopConnection(installed.status, installed)
