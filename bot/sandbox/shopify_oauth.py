"""The OAuth side of the Shopify stand-in: apps, authorization codes, access and refresh tokens.

`TokenAuthority` answers the authorize and access_token endpoints (the sandbox routes the
HTTP requests to it) and tells the GraphQL endpoint which grant a token stands for. It follows
UPSTREAMS.md: signed callbacks, one-time codes, expiring offline tokens whose refresh tokens
are one-time use with Shopify's 2026-08 recovery rule, client credentials on the app's own
stores only, and uninstalls that kill everything the app held on a shop.

It has no lock of its own: `ShopifySandbox` calls it under the sandbox lock, which also
guards the shops and records these calls touch.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urlencode

import jwt

from bot.shopify.signing import query_hmac

DEFAULT_SCOPE = "read_orders"
CODE_TTL = 600
RECOVERY = 30 * 86400  # a used refresh token may be retried for 30 days at most (2026-08 change)
LEGACY_APP = "legacy-custom-app"  # owner of admin-created `shpat_` tokens

BAD_CLIENT = ("Client authentication failed due to unknown client, no client authentication included, "
              "or unsupported authentication method.")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"
BAD_SUBJECT_TOKEN = "The subject token is invalid, expired, or was not issued for this client."
BAD_GRANT = ("The provided authorization grant is invalid, expired, revoked, does not match the redirection "
             "URI used in the authorization request, or was issued to another client.")


class OAuthError(Exception):
    """Answered as HTTP 400 with Shopify's `{error, error_description}` body."""

    def __init__(self, error: str, description: str):
        super().__init__(error, description)
        self.body = {"error": error, "error_description": description}


class Settings(Protocol):
    """The sandbox knobs tokens depend on; read at each use, so tests may change them any time."""

    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    access_ttl: int
    refresh_ttl: int
    client_credentials_ttl: int


@dataclass
class App:
    api_key: str
    api_secret: str
    scopes_granted: str | None
    own_shops: set[str]


@dataclass
class Grant:
    """What a code, access token or refresh token stands for."""

    shop: str
    app: str
    scopes: tuple[str, ...]
    expires_at: float | None  # None: never expires
    parent: str | None = None  # the refresh token this token was minted from
    first_used_at: float | None = None  # refresh tokens: when first exchanged


def parse_scopes(scope: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in scope.split(",") if s.strip())


class TokenAuthority:
    """Apps registered with the pretend Shopify and every code and token issued to them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.apps: dict[str, App] = {}
        self.codes: dict[str, Grant] = {}
        self.access: dict[str, Grant] = {}
        self.refresh: dict[str, Grant] = {}
        self.uninstalled: set[tuple[str, str]] = set()

    # ---- for the sandbox's test helpers ------------------------------------------------

    def register_app(self, api_key: str, api_secret: str, scopes_granted: str | None,
                     own_shops: set[str]) -> None:
        self.apps[api_key] = App(api_key, api_secret, scopes_granted, own_shops)

    def issue_code(self, shop: str, api_key: str, scope: str) -> str:
        return self._issue_code(shop, self.apps[api_key], scope)

    def legacy_token(self, shop: str, scope: str) -> str:
        return self._mint(self.access, "shpat_", Grant(shop, LEGACY_APP, parse_scopes(scope), None))

    def uninstall(self, shop: str, api_key: str) -> None:
        self.uninstalled.add((shop, api_key))
        for store in (self.codes, self.access, self.refresh):
            for token in [t for t, g in store.items() if (g.shop, g.app) == (shop, api_key)]:
                del store[token]

    def expire_access_tokens(self) -> None:
        past = self.settings.clock() - 1
        for grant in self.access.values():
            if grant.expires_at is not None:
                grant.expires_at = past

    # ---- for the GraphQL endpoint ------------------------------------------------------

    def authenticate(self, token: str, shop: str) -> Grant | None:
        """The grant of a live access token for `shop`, else None."""
        grant = self.access.get(token)
        expired = grant is not None and grant.expires_at is not None and grant.expires_at <= self.settings.clock()
        if grant is None or grant.shop != shop or expired:
            return None
        self._retire(grant.parent)  # the new access token is in use: its predecessor retires
        return grant

    # ---- the OAuth endpoints -----------------------------------------------------------

    def authorize(self, shop: str, args: Mapping[str, str]) -> str:
        """Where `/admin/oauth/authorize` redirects: the app's callback with a signed code."""
        app = self.apps.get(args.get("client_id", ""))
        if app is None:
            client_id = args.get("client_id")
            raise OAuthError("invalid_request", f"Could not find an app with client_id {client_id!r}")
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri:
            raise OAuthError("invalid_request", "The redirect_uri is missing")
        # Merchant consent is automatic: the stand-in always installs.
        code = self._issue_code(shop, app, args.get("scope", ""))
        handle = shop.split(".")[0]
        host = base64.b64encode(f"admin.shopify.com/store/{handle}".encode()).decode().rstrip("=")
        params = [("code", code), ("host", host), ("shop", shop)]
        if "state" in args:
            params.append(("state", args["state"]))
        params.append(("timestamp", str(int(self.settings.wall_clock()))))
        params.insert(1, ("hmac", query_hmac(params, app.api_secret)))
        sep = "&" if "?" in redirect_uri else "?"
        return redirect_uri + sep + urlencode(params)

    def access_token(self, shop: str, form: Mapping[str, Any]) -> dict[str, Any]:
        """The body `/admin/oauth/access_token` answers for `form`, by grant type."""
        app = self.apps.get(str(form.get("client_id") or ""))
        secret = str(form.get("client_secret") or "")
        if app is None or not hmac.compare_digest(secret.encode(), app.api_secret.encode()):
            raise OAuthError("invalid_client", BAD_CLIENT)
        grant_type = form.get("grant_type") or ("authorization_code" if "code" in form else "")
        if grant_type == "authorization_code":
            expiring = str(form.get("expiring")) == "1"
            return self._exchange_code(shop, app, str(form.get("code") or ""), expiring)
        if grant_type == "refresh_token":
            return self._use_refresh(shop, app, str(form.get("refresh_token") or ""))
        if grant_type == "client_credentials":
            return self._client_credentials(shop, app)
        if grant_type == TOKEN_EXCHANGE:
            return self._token_exchange(shop, app, form)
        raise OAuthError("unsupported_grant_type", f"The grant type {grant_type!r} is not supported.")

    # ---- grants ------------------------------------------------------------------------

    def _issue_code(self, shop: str, app: App, scope: str) -> str:
        self.uninstalled.discard((shop, app.api_key))  # consenting (re)installs the app
        grant = Grant(shop, app.api_key, parse_scopes(app.scopes_granted or scope),
                      self.settings.clock() + CODE_TTL)
        code = secrets.token_hex(16)
        self.codes[code] = grant
        return code

    def _exchange_code(self, shop: str, app: App, code: str, expiring: bool) -> dict[str, Any]:
        grant = self.codes.get(code)
        if (grant is None or (grant.shop, grant.app) != (shop, app.api_key)
                or grant.expires_at <= self.settings.clock()):
            raise OAuthError("invalid_grant", BAD_GRANT)
        del self.codes[code]  # one-time: a second exchange is invalid_grant
        if not expiring:
            access = self._mint(self.access, "shpca_", Grant(shop, app.api_key, grant.scopes, None))
            return {"access_token": access, "scope": ",".join(grant.scopes)}
        return self._pair(shop, app, grant.scopes, parent=None)

    def _pair(self, shop: str, app: App, scopes: tuple[str, ...], parent: str | None) -> dict[str, Any]:
        now, access_ttl, refresh_ttl = self.settings.clock(), self.settings.access_ttl, self.settings.refresh_ttl
        access = self._mint(self.access, "shpca_", Grant(shop, app.api_key, scopes, now + access_ttl, parent))
        refresh = self._mint(self.refresh, "shprt_", Grant(shop, app.api_key, scopes, now + refresh_ttl, parent))
        return {"access_token": access, "expires_in": access_ttl, "refresh_token": refresh,
                "refresh_token_expires_in": refresh_ttl, "scope": ",".join(scopes)}

    def _use_refresh(self, shop: str, app: App, token: str) -> dict[str, Any]:
        if (shop, app.api_key) in self.uninstalled:
            raise OAuthError("invalid_client", BAD_CLIENT)
        grant = self.refresh.get(token)
        now = self.settings.clock()
        if grant is None or (grant.shop, grant.app) != (shop, app.api_key) or (grant.expires_at or 0) <= now:
            raise OAuthError("invalid_grant", BAD_GRANT)
        if grant.first_used_at is None:
            grant.first_used_at = now
        elif now - grant.first_used_at >= RECOVERY:
            del self.refresh[token]
            raise OAuthError("invalid_grant", BAD_GRANT)
        # One-time use, with the 2026-08 grace: `token` stays until a replacement is used
        # (its new access token in an API call, or its new refresh token here).
        self._retire(grant.parent)
        return self._pair(shop, app, grant.scopes, parent=token)

    def session_token(self, shop: str, api_key: str, *, user_id: str = "1", lifetime: int = 60) -> str:
        """What App Bridge's `shopify.idToken()` gives the app's page in `shop`'s admin: a JWT signed
        HS256 with the app's secret, valid `lifetime` seconds (Shopify: one minute)."""
        app = self.apps[api_key]
        now = int(self.settings.wall_clock())
        claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": api_key, "sub": user_id,
                  "exp": now + lifetime, "nbf": now, "iat": now, "jti": secrets.token_hex(16),
                  "sid": secrets.token_hex(16)}
        return jwt.encode(claims, app.api_secret, algorithm="HS256")

    def _token_exchange(self, shop: str, app: App, form: Mapping[str, Any]) -> dict[str, Any]:
        """Shopify-managed installation: a valid session token of `shop` installs the app (with the
        scopes of its configuration) and buys an offline token, expiring with `expiring=1`."""
        if form.get("subject_token_type") != ID_TOKEN:
            raise OAuthError("invalid_request", "subject_token_type must be " + ID_TOKEN)
        if form.get("requested_token_type") != OFFLINE_TOKEN:
            raise OAuthError("invalid_request", "requested_token_type must be " + OFFLINE_TOKEN)
        if not self._session_token_valid(str(form.get("subject_token") or ""), shop, app):
            raise OAuthError("invalid_subject_token", BAD_SUBJECT_TOKEN)
        self.uninstalled.discard((shop, app.api_key))
        scopes = parse_scopes(app.scopes_granted or DEFAULT_SCOPE)
        if str(form.get("expiring")) != "1":
            access = self._mint(self.access, "shpua_", Grant(shop, app.api_key, scopes, None))
            return {"access_token": access, "scope": ",".join(scopes)}
        return self._pair(shop, app, scopes, parent=None)

    def _session_token_valid(self, token: str, shop: str, app: App) -> bool:
        try:
            claims = jwt.decode(token, app.api_secret, algorithms=["HS256"], audience=app.api_key,
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "require": ["exp", "nbf", "dest"]})
        except jwt.InvalidTokenError:
            return False
        now = self.settings.wall_clock()
        return claims["dest"] == f"https://{shop}" and claims["nbf"] - 5 <= now <= claims["exp"] + 5

    def _client_credentials(self, shop: str, app: App) -> dict[str, Any]:
        if shop not in app.own_shops:
            raise OAuthError("shop_not_permitted", "Client credentials cannot be performed on this shop.")
        if (shop, app.api_key) in self.uninstalled:
            raise OAuthError("app_not_installed", "The application is not installed on this shop.")
        scopes = parse_scopes(app.scopes_granted or DEFAULT_SCOPE)
        ttl = self.settings.client_credentials_ttl
        access = self._mint(self.access, "shpat_", Grant(shop, app.api_key, scopes, self.settings.clock() + ttl))
        return {"access_token": access, "scope": ",".join(scopes), "expires_in": ttl}

    def _mint(self, store: dict[str, Grant], prefix: str, grant: Grant) -> str:
        token = prefix + secrets.token_hex(16)
        store[token] = grant
        return token

    def _retire(self, parent: str | None) -> None:
        """A replacement token was used: the refresh token it came from stops working."""
        if parent is not None:
            self.refresh.pop(parent, None)
