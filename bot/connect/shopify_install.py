"""The OAuth install flow of a Shopify app, and what its app URL shows — without Flask.

`bot.web.shopify_routes` only turns HTTP into calls here and results into responses, so tests
can drive the flow directly. Every app is looked up by name on each call and its
credentials travel in the objects built for that call: two apps on one server never share
a session, a secret or a state.

The callback checks, in this order, before anything else happens (in particular before any
request leaves this process): the query-string HMAC with the app's current then previous
secret, the shop domain, the timestamp (±5 minutes of the App clock), the presence of a
code, then the single-use `state` — bound to the app (purpose `shopify:<app>`) and to the
shop it was issued for. Only then is the code exchanged (expiring offline token), the
granted scopes checked, the token pair stored, and the shop's webhook subscriptions brought in
step with the configured jobs (bot.connect.webhook_needs; best effort: a failure is logged and
shown, the install stands). Scopes the shop's jobs need and were not granted are named.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence
from urllib.parse import urlencode

from bot.app import App
from bot.config.secrets import MissingSecret
from bot.connect import oauth_states
from bot.shopify.client import ShopifyApp, ShopifyTokenAnswer, required_scopes_missing
from bot.shopify.errors import (
    ShopifyAuthError,
    ShopifyBadCredentials,
    ShopifyError,
    ShopifyOAuthError,
    ShopifyReauthRequired,
    ShopNotConnected,
)
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.signing import fresh_timestamp, is_valid_shop, normalize_shop, verify_query
from bot.connect.webhook_needs import missing_scopes, missing_text, sync_shop
from tokens.shopify import InstallStatus

log = logging.getLogger(__name__)

Query = Sequence[tuple[str, str]]  # the request's parameters, in order, repeated keys kept

# Query parameters Shopify sends once; a second value would make "which one counts" ambiguous.
SINGLE = ("shop", "state", "code", "timestamp", "host", "embedded")


class InstallRefused(Exception):
    """A request of the flow refused: answered as `status` with `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Installed:
    """A finished install: what the callback's page shows (never a token)."""

    app: str
    shop: str
    status: InstallStatus
    webhook_uri: str
    webhooks_created: tuple[str, ...] = ()
    webhook_error: str | None = None
    webhooks_deleted: tuple[str, ...] = ()
    missing_job_scopes: str | None = None  # "read_inventory (for stock)": what the shop's jobs lack


@dataclass(frozen=True)
class AppUrlState:
    """What the app URL found: `valid` (a stored token that works), `invalid` (stored, failing:
    authorise again) or `not_found` (never installed: install)."""

    kind: str  # valid | invalid | not_found | unavailable
    app: str
    shop: str
    install_url: str
    status: InstallStatus | None = None
    shop_name: str | None = None
    reason: str | None = field(default=None)


# -- addresses -------------------------------------------------------------------------------


def public_base(app: App) -> str:
    return app.config.server.public_url.rstrip("/")


def redirect_uri(app: App, app_name: str) -> str:
    return f"{public_base(app)}/shopify/{app_name}/callback"


def install_url(app: App, app_name: str, shop: str) -> str:
    """Our own install start for `shop` (which then redirects to Shopify's authorize page)."""
    return f"{public_base(app)}/shopify/{app_name}/install?{urlencode({'shop': shop})}"


def state_purpose(app_name: str) -> str:
    return f"shopify:{app_name}"


def shop_graphql(app: App, shop: str, app_name: str) -> ShopifyGraphQL:
    """The Admin API of `shop` through `app_name`'s own install (not whichever app installed last)."""
    return ShopifyGraphQL(app.shopify_http, origin=app.config.shopify.origin, shop=shop,
                          api_version=app.config.shopify.api_version,
                          tokens=app.shopify_tokens.source(shop, app_name))


# -- checks ----------------------------------------------------------------------------------


def resolve_app(app: App, app_name: str) -> ShopifyApp:
    """The configured app with its secrets; 404 if no such app, 503 if its secrets are not set."""
    if app_name not in {configured.name for configured in app.config.shopify.apps}:
        raise InstallRefused(404, "unknown_app", f"no Shopify app named {app_name!r} is configured on this server")
    try:
        return app.shopify_app(app_name)
    except MissingSecret as exc:
        log.error("Shopify app %r cannot serve requests: %s", app_name, exc)
        raise InstallRefused(503, "app_not_configured",
                             f"Shopify app {app_name!r} is missing its credentials on this server") from None


def _single(query: Query) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in query:
        if key in SINGLE and key in values:
            raise InstallRefused(400, "duplicate_parameter", f"the parameter {key!r} appears more than once")
        values.setdefault(key, value)
    return values


def _check_shop(shop: str | None) -> str:
    if not is_valid_shop(shop):
        raise InstallRefused(400, "invalid_shop", "shop must be a shop domain like my-store.myshopify.com")
    return normalize_shop(shop)  # type: ignore[arg-type]


def check_signed(app: App, shopify_app: ShopifyApp, query: Query) -> tuple[dict[str, str], str]:
    """HMAC (current, then previous secret), shop, timestamp: the parameters and the shop."""
    if not verify_query(query, shopify_app.secrets):
        raise InstallRefused(400, "invalid_hmac", "the request's hmac is missing or wrong")
    params = _single(query)
    shop = _check_shop(params.get("shop"))
    if not fresh_timestamp(params.get("timestamp"), app.clock().timestamp()):
        raise InstallRefused(400, "stale_timestamp",
                             "the request's timestamp is missing or more than 5 minutes from now: start again")
    return params, shop


# -- the flow --------------------------------------------------------------------------------


def start_install(app: App, app_name: str, shop: str | None) -> str:
    """The Shopify authorize URL for `shop`, with a fresh single-use state bound to it."""
    shopify_app = resolve_app(app, app_name)
    shop = _check_shop(shop)
    state = oauth_states.issue(app.db, state_purpose(app_name), shop, clock=app.clock)
    url = app.shopify_oauth(app_name).authorize_url(shop, state=state, redirect_uri=redirect_uri(app, app_name))
    log.info("Shopify %s: install of app %r started", shop, shopify_app.name)
    return url


def finish_install(app: App, app_name: str, query: Query) -> Installed:
    """The OAuth callback: verify everything, exchange the code, store the token, subscribe webhooks."""
    shopify_app = resolve_app(app, app_name)
    params, shop = check_signed(app, shopify_app, query)
    code = params.get("code")
    if not code:
        raise InstallRefused(400, "missing_code", "the callback carries no authorization code")
    try:
        subject = oauth_states.consume(app.db, state_purpose(app_name), params.get("state"), clock=app.clock)
    except oauth_states.StateInvalid as exc:
        log.warning("Shopify %s: install callback of app %r with a bad state (%s)", shop, app_name, exc.reason)
        raise InstallRefused(400, f"state_{exc.reason}", f"{exc}; start the install again") from None
    if subject != shop:
        log.warning("Shopify %s: install callback of app %r with a state issued for another shop", shop, app_name)
        raise InstallRefused(400, "state_other_shop",
                             "the state was issued for another shop: start the install again")

    with token_request(shop, app_name, "code exchange", refused=(400, "code_refused", "the authorization code")):
        answer = app.shopify_oauth(app_name).exchange_code(shop, code)
    return keep_install(app, shopify_app, shop, answer)


@contextmanager
def token_request(shop: str, app_name: str, what: str, *, refused: tuple[int, str, str]) -> Iterator[None]:
    """Shopify's answers to a token request (`what`: "code exchange", "token exchange") as InstallRefused:
    our credentials refused → 502; the grant refused → `refused` (status, code, what was refused);
    Shopify failing → 502. Each logged with the shop and app."""
    try:
        yield
    except ShopifyBadCredentials as exc:  # our client id/secret: this server's problem, not the request's
        log.error("Shopify %s: %s for app %r refused our credentials: %s", shop, what, app_name, exc)
        raise InstallRefused(502, "app_credentials_refused",
                             f"Shopify refused the credentials of app {app_name!r}; check its client id and secret "
                             "on this server") from None
    except ShopifyOAuthError as exc:
        status, code, grant = refused
        log.error("Shopify %s: %s for app %r refused: %s", shop, what, app_name, exc)
        raise InstallRefused(status, code, f"Shopify refused {grant}: {exc}") from None
    except ShopifyError as exc:
        log.error("Shopify %s: %s for app %r failed: %s", shop, what, app_name, exc)
        raise InstallRefused(502, "shopify_unavailable", f"the token request to Shopify failed: {exc}") from None


def keep_install(app: App, shopify_app: ShopifyApp, shop: str, answer: ShopifyTokenAnswer) -> Installed:
    """A token answer of a finished install (code or token exchange): the granted scopes checked, the
    token stored, the shop's webhook subscriptions brought in step with its jobs."""
    app_name = shopify_app.name
    missing = list(required_scopes_missing(shopify_app, answer))
    if missing:
        log.error("Shopify %s: app %r was granted %r, missing %s; nothing stored", shop, app_name, answer.scope,
                  ", ".join(missing))
        raise InstallRefused(403, "missing_scopes",
                             f"Shopify did not grant the scopes {', '.join(missing)} that app {app_name!r} needs; "
                             "nothing was stored. Grant them in the app's configuration and install again")
    status = app.shopify_tokens.store(app_name, shop, "oauth", answer)

    synced = sync_shop(app, shop_graphql(app, shop, app_name), shop, app_name)
    missing = missing_scopes(app, shop, status.scopes)
    if missing:
        log.warning("Shopify %s: app %r was not granted %s: those jobs will fail until the scopes are granted "
                    "and the app is installed again", shop, app_name, missing_text(missing))
    return Installed(app_name, shop, status, synced.uri, synced.created, synced.error, synced.deleted,
                     missing_text(missing) or None)


PROBE = "{ shop { name } }"
DEAD = (ShopifyAuthError, ShopNotConnected, ShopifyReauthRequired, ShopifyOAuthError)


def app_url_state(app: App, app_name: str, query: Query) -> AppUrlState:
    """What the app URL should do for a signed request from Shopify's admin."""
    shopify_app = resolve_app(app, app_name)
    _params, shop = check_signed(app, shopify_app, query)
    start = install_url(app, app_name, shop)
    status = app.shopify_tokens.status(shop, app_name)
    if status is None:
        return AppUrlState("not_found", app_name, shop, start)
    if not status.active:
        return AppUrlState("invalid", app_name, shop, start, status, reason=status.status_reason)
    try:
        data = shop_graphql(app, shop, app_name).query(PROBE)
    except DEAD as exc:
        # The token (or its refresh) was refused: ShopifyGraphQL / ShopifyTokens marked the install.
        log.warning("Shopify %s: app %r's stored token no longer works (%s): asking to authorise again",
                    shop, app_name, type(exc).__name__)
        return AppUrlState("invalid", app_name, shop, start, app.shopify_tokens.status(shop, app_name),
                           reason=str(exc))
    except ShopifyError as exc:
        log.warning("Shopify %s: could not check app %r's token: %s", shop, app_name, exc)
        return AppUrlState("unavailable", app_name, shop, start, status, reason=str(exc))
    name = ((data or {}).get("shop") or {}).get("name")
    return AppUrlState("valid", app_name, shop, start, app.shopify_tokens.status(shop, app_name) or status,
                       shop_name=name if isinstance(name, str) else None)
