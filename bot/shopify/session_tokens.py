"""App Bridge session tokens: the JWT an embedded app's page sends with each call to its backend.

Inside the Shopify admin, the app's page gets a fresh token from App Bridge (`shopify.idToken()`,
valid one minute) and sends it as `Authorization: Bearer …`. It is signed HS256 with the app's
client secret and names the shop and the app:

    iss  https://{shop}/admin      dest  https://{shop}      aud  the app's client id
    sub  the admin user's id       exp / nbf / iat            jti, sid

`verify_session_token` checks the signature (the app's current secret, then its previous one
during a rotation) and the audience with PyJWT, then the times against the bot's clock with a
small leeway (Shopify's own libraries allow 5-10 s of skew), and that `dest` is a
*.myshopify.com shop whose admin is `iss`. The shop it returns is the only one the caller may see:
every API route of the embedded app takes its shop from here, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from bot.shopify.client import ShopifyApp
from bot.shopify.signing import is_valid_shop, normalize_shop

LEEWAY_SECONDS = 10
MAX_TOKEN_CHARS = 4096  # App Bridge's tokens are ~700 characters; anything far longer is not one
REQUIRED_CLAIMS = ("iss", "dest", "aud", "sub", "exp", "nbf")


class InvalidSessionToken(Exception):
    """Not a valid session token of this app; `reason` is safe to show and to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SessionToken:
    """A verified session token: whose shop, which admin user, until when."""

    shop: str
    user_id: str
    session_id: str | None
    expires_at: datetime


def verify_session_token(token: str, app: ShopifyApp, *, now: datetime,
                         leeway_seconds: int = LEEWAY_SECONDS) -> SessionToken:
    """The verified claims of `token`, or InvalidSessionToken saying what is wrong with it."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise InvalidSessionToken("no session token, or not one")
    claims = _signed_claims(token, app)
    shop = _shop_of(claims)
    instant = now.timestamp()
    expires, not_before = claims["exp"], claims["nbf"]
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (expires, not_before)):
        raise InvalidSessionToken("exp and nbf must be numbers")
    if instant > expires + leeway_seconds:
        raise InvalidSessionToken("the session token has expired")
    if instant < not_before - leeway_seconds:
        raise InvalidSessionToken("the session token is not valid yet")
    session_id = claims.get("sid")
    return SessionToken(shop=shop, user_id=str(claims["sub"]),
                        session_id=session_id if isinstance(session_id, str) else None,
                        expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo))


def _signed_claims(token: str, app: ShopifyApp) -> dict:
    """The claims, if some secret of the app signed them (HS256 only) for this app's client id."""
    # Imported at the first embedded call, not at start: PyJWT loads cryptography's asymmetric
    # algorithms and X.509 (1.3 MB) that an idle service without embedded merchants never uses.
    import jwt

    options = {"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_nbf": False, "verify_iat": False}
    for secret in app.secrets:
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=app.api_key, options=options)
        except jwt.InvalidSignatureError:
            continue  # perhaps the previous secret, during a rotation
        except jwt.InvalidAudienceError:
            raise InvalidSessionToken("the session token is for another app") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidSessionToken(f"the session token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise InvalidSessionToken("the session token is malformed or not signed HS256") from None
        if not isinstance(claims, dict):
            raise InvalidSessionToken("the session token's payload is not an object")
        return claims
    raise InvalidSessionToken("the session token's signature is wrong")


def _shop_of(claims: dict) -> str:
    """The shop of `dest`, checked against `iss` (that shop's admin)."""
    dest, issuer = claims["dest"], claims["iss"]
    if not isinstance(dest, str) or not isinstance(issuer, str):
        raise InvalidSessionToken("dest and iss must be strings")
    try:
        parts, issued = urlsplit(dest), urlsplit(issuer)
        port = parts.port
    except ValueError:  # a port that is not a number, brackets that do not close
        raise InvalidSessionToken("dest or iss is not a URL") from None
    shop = parts.hostname or ""
    if parts.scheme != "https" or parts.path not in ("", "/") or port is not None or not is_valid_shop(shop):
        raise InvalidSessionToken("dest is not https://<shop>.myshopify.com")
    if issued.scheme != "https" or (issued.hostname or "") != shop or issued.path.rstrip("/") != "/admin":
        raise InvalidSessionToken("iss is not the admin of the shop in dest")
    return normalize_shop(shop)
