"""Checks on everything Shopify sends us: shop domains, query-string HMACs, webhook HMACs and
timestamps. (The single-use OAuth `state` is bot.connect.oauth_states'.)

Every comparison of a signature is constant-time; every parameter of a signed query
counts (never a whitelist), except `hmac` and `signature` themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Iterable, Sequence

from bot.util.compare import constant_time_equal

SHOP_DOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")
MAX_CLOCK_SKEW = 300  # seconds a signed timestamp may differ from our clock


def is_valid_shop(shop: str | None) -> bool:
    """A bare `*.myshopify.com` host: no scheme, path, port, or trailing tricks."""
    return bool(shop) and len(shop) <= 255 and SHOP_DOMAIN.fullmatch(shop) is not None


def normalize_shop(shop: str) -> str:
    """Lower-case a shop domain; raises ValueError if it is not a `*.myshopify.com` host."""
    if not is_valid_shop(shop):
        raise ValueError(f"{shop!r} is not a shop domain like my-store.myshopify.com")
    return shop.lower()


def query_message(pairs: Iterable[tuple[str, str]]) -> str:
    """Shopify's signed message: all parameters but hmac/signature, sorted by key, `k=v` joined by `&`.

    An array parameter (`ids[]=1&ids[]=2`) is signed as `ids=["1", "2"]`, even with one value.
    """
    grouped: dict[str, list[str]] = {}
    arrays: set[str] = set()
    for key, value in pairs:
        if key in ("hmac", "signature"):
            continue
        if key.endswith("[]"):
            key = key[:-2]
            arrays.add(key)
        grouped.setdefault(key, []).append(value)
    parts = []
    for key in sorted(grouped):
        values = grouped[key]
        if key in arrays or len(values) > 1:
            parts.append(f"{key}=[" + ", ".join(f'"{v}"' for v in values) + "]")
        else:
            parts.append(f"{key}={values[0]}")
    return "&".join(parts)


def query_hmac(pairs: Iterable[tuple[str, str]], secret: str) -> str:
    return hmac.new(secret.encode(), query_message(pairs).encode(), hashlib.sha256).hexdigest()


def verify_query(pairs: Sequence[tuple[str, str]], app_secrets: Sequence[str]) -> bool:
    """True if the query's `hmac` was made by one of `app_secrets` over all its other parameters."""
    given = [value for key, value in pairs if key == "hmac"]
    if len(given) != 1 or not given[0]:
        return False
    return any(constant_time_equal(query_hmac(pairs, secret), given[0].lower()) for secret in app_secrets if secret)


def webhook_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_webhook(body: bytes, header: str | None, app_secrets: Sequence[str]) -> bool:
    """`X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw body (current or previous secret)."""
    if not header:
        return False
    return any(constant_time_equal(webhook_hmac(body, secret), header.strip()) for secret in app_secrets if secret)


def fresh_timestamp(timestamp: str | None, now: float, max_skew: int = MAX_CLOCK_SKEW) -> bool:
    # A long digit string still makes an int, but one too large to subtract from a float
    # (OverflowError); no more than 12 digits can be a fresh epoch in seconds anyway.
    if not timestamp or len(timestamp) > 12:
        return False
    try:
        return abs(now - int(timestamp)) <= max_skew
    except (ValueError, OverflowError):
        return False
