"""The Shopify client: one HTTP wrapper for the shop's origin, and the app's OAuth token calls.

An app's credentials travel with each `ShopifyOAuth` object, never in a process-wide
session: two apps on one server cannot overwrite each other's secret. GraphQL queries
live in `bot.shopify.graphql` and go through the same `ShopifyHttp`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlencode, urlsplit

import requests

from bot.shopify.errors import (
    ShopifyBadCredentials,
    ShopifyError,
    ShopifyOAuthError,
    ShopifyReauthRequired,
    ShopifySessionTokenRefused,
    ShopifyUnavailable,
)
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from bot.util.urls import host_port

log = logging.getLogger(__name__)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"

__all__ = ["ShopifyApp", "ShopifyHttp", "ShopifyOAuth", "ShopifyTokenAnswer", "shop_url"]


@dataclass(frozen=True)
class ShopifyApp:
    """One configured Shopify app with its credentials resolved from the secrets."""

    name: str
    api_key: str
    api_secret: str = field(repr=False)
    old_api_secret: str | None = field(default=None, repr=False)  # accepted during secret rotation
    scopes: tuple[str, ...] = ("read_orders",)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Secrets that may have signed a request: the current one first."""
        return (self.api_secret,) + ((self.old_api_secret,) if self.old_api_secret else ())


def shop_url(origin: str, shop: str, path: str) -> str:
    """`[shopify].origin` ("https://{shop}") + path; `shop` must already be validated."""
    return origin.replace("{shop}", shop).rstrip("/") + path


class ShopifyHttp:
    """Sends one logical request to a shop; retries transport failures and 5xx per `retry`."""

    def __init__(self, session: requests.Session | None = None, *, timeout: float = 15.0,
                 retry: RetryPolicy = RetryPolicy()):
        self.session, self.timeout, self.retry = session or new_session(), timeout, retry

    def call(self, method: str, url: str, *, errors: Callable[[requests.Response], ShopifyError],
             retry: RetryPolicy | None = None, **kwargs: Any) -> requests.Response:
        """The 2xx response, or the exception `errors` makes of any other answer."""

        def attempt() -> requests.Response:
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise ShopifyUnavailable(f"no answer from {host_port(url)}: {type(exc).__name__}") from None
            if 200 <= response.status_code < 300:
                return response
            if response.status_code >= 500:
                raise ShopifyUnavailable(f"{urlsplit(url).hostname} answered HTTP {response.status_code}",
                                         status=response.status_code)
            raise errors(response)

        path = urlsplit(url).path  # never the query: OAuth codes travel there
        return (retry or self.retry).run(attempt, retry_if=lambda exc: getattr(exc, "retryable", False),
                                         what=f"Shopify {path}")


@dataclass(frozen=True)
class ShopifyTokenAnswer:
    access_token: str = field(repr=False)
    scope: str
    expires_in: int | None = None  # None: a token that does not expire (legacy offline)
    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_expires_in: int | None = None

    @classmethod
    def parse(cls, body: Any) -> "ShopifyTokenAnswer":
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise ShopifyError("token answer without access_token")
        expires_in, refresh = body.get("expires_in"), body.get("refresh_token")
        refresh_in = body.get("refresh_token_expires_in")
        if expires_in is not None and not isinstance(expires_in, int):
            raise ShopifyError("token answer with a malformed expires_in")
        if refresh is not None and (not isinstance(refresh, str) or not isinstance(refresh_in, int)):
            raise ShopifyError("token answer with a malformed refresh_token")
        scope = body.get("scope") if isinstance(body.get("scope"), str) else ""
        return cls(body["access_token"], scope, expires_in, refresh, refresh_in)

    @property
    def granted_scopes(self) -> set[str]:
        return {scope.strip() for scope in self.scope.split(",") if scope.strip()}


class ShopifyOAuth:
    """The token endpoint of a shop, for one app (`/admin/oauth/…`)."""

    def __init__(self, http: ShopifyHttp, *, origin: str, app: ShopifyApp):
        self.http, self.origin, self.app = http, origin, app

    def authorize_url(self, shop: str, *, state: str, redirect_uri: str) -> str:
        # Offline access: no grant_options[]=per-user.
        query = urlencode({"client_id": self.app.api_key, "scope": ",".join(self.app.scopes),
                           "redirect_uri": redirect_uri, "state": state})
        return shop_url(self.origin, shop, f"/admin/oauth/authorize?{query}")

    def exchange_code(self, shop: str, code: str) -> ShopifyTokenAnswer:
        """Authorization code → an expiring offline token pair (`expiring=1`)."""
        return self._token(shop, {"code": code, "expiring": "1"})

    def exchange_session_token(self, shop: str, session_token: str) -> ShopifyTokenAnswer:
        """Token exchange (Shopify-managed installation): an App Bridge session token of `shop` → an
        expiring offline token pair, with no redirect. Shopify answers 400 `invalid_subject_token`
        to a session token it does not accept (ShopifySessionTokenRefused)."""
        return self._token(shop, {"grant_type": TOKEN_EXCHANGE, "subject_token": session_token,
                                  "subject_token_type": ID_TOKEN, "requested_token_type": OFFLINE_TOKEN,
                                  "expiring": "1"})

    def refresh(self, shop: str, refresh_token: str) -> ShopifyTokenAnswer:
        """A new pair. The refresh token sent stays valid only until the new pair is used (Shopify, since
        2026-08-28): store the new pair before using it, and never send the old one again."""
        return self._token(shop, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def client_credentials(self, shop: str) -> ShopifyTokenAnswer:
        """A 24 h token for a store of the app's own organisation; ask again to renew."""
        return self._token(shop, {"grant_type": "client_credentials"})

    def _token(self, shop: str, form: dict[str, str]) -> ShopifyTokenAnswer:
        form = {"client_id": self.app.api_key, "client_secret": self.app.api_secret, **form}
        response = self.http.call("POST", shop_url(self.origin, shop, "/admin/oauth/access_token"), data=form,
                                  headers={"Accept": "application/json"},
                                  errors=lambda r: oauth_error(r, shop=shop, app=self.app.name))
        try:
            return ShopifyTokenAnswer.parse(response.json())
        except ValueError:
            raise ShopifyError("token answer is not JSON", shop=shop) from None


def oauth_error(response: requests.Response, *, shop: str, app: str) -> ShopifyError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    description = str(body.get("error_description") or "") if isinstance(body, dict) else ""
    if error == "invalid_grant":
        return ShopifyReauthRequired(
            f"{shop}: Shopify refused the grant ({description or error}): the merchant must authorise the app "
            f"again — open the install URL from `python -m bot shopify install {shop} --app {app}`",
            error=error, status=response.status_code, shop=shop)
    if error == "invalid_subject_token":
        return ShopifySessionTokenRefused(
            f"{shop}: Shopify refused the session token in the token exchange ({description or error}): "
            "reload the app in the Shopify admin", error=error, status=response.status_code, shop=shop)
    if error == "shop_not_permitted":
        return ShopifyBadCredentials(
            f"{shop}: the client credentials grant only works on stores of the app's own organisation; "
            f"install app {app!r} with `python -m bot shopify install {shop} --app {app}` instead",
            error=error, status=response.status_code, shop=shop)
    if error == "app_not_installed":
        return ShopifyBadCredentials(
            f"{shop}: app {app!r} is not installed on this shop: install it in the shop's admin "
            f"(or `python -m bot shopify install {shop} --app {app}`), then connect again",
            error=error, status=response.status_code, shop=shop)
    if error == "invalid_client" or response.status_code in (401, 403):
        return ShopifyBadCredentials(
            f"{shop}: Shopify refused the credentials of app {app!r} ({description or error or response.status_code}): "
            "check the client id/secret, or the app was uninstalled from the shop",
            error=error, status=response.status_code, shop=shop)
    return ShopifyOAuthError(f"{shop}: token request failed: HTTP {response.status_code} {error} {description}".strip(),
                             error=error, status=response.status_code, shop=shop)


def required_scopes_missing(app: ShopifyApp, answer: ShopifyTokenAnswer) -> Sequence[str]:
    """Scopes the app asked for and did not get; write_X implies read_X."""
    granted = answer.granted_scopes
    implied = {scope.replace("write_", "read_", 1) for scope in granted if scope.startswith("write_")}
    return [scope for scope in app.scopes if scope not in granted | implied]
