"""Who may read /healthz's details: loopback callers not behind a proxy, or the bearer of BOT_HEALTH_TOKEN.

Everyone else gets the status and counts only: shop domains, Kakao account names, problem texts
and the database host are for the operator. A request that carries a proxy header (a reverse proxy
on this host forwards the outside world from 127.0.0.1) counts as remote. The token comparison is
constant-time and never raises, whatever bytes the header holds.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any, Mapping

HEALTH_TOKEN = "BOT_HEALTH_TOKEN"  # the secret (bot.config.secrets: environment, .env, or a systemd credential)
# Set by reverse proxies: with one of them present, the loopback peer is the proxy, not the caller.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "X-Client-IP")
DETAILS_HINT = ("details (logins, shops, problems) only from this host, or with "
                "`Authorization: Bearer $BOT_HEALTH_TOKEN`")


def may_see_details(remote_addr: str | None, headers: Mapping[str, str], token: str | None) -> bool:
    """True for a loopback peer without proxy headers, or a request bearing `token`."""
    if token and bearer_matches(headers.get("Authorization"), token):
        return True
    if any(headers.get(name) is not None for name in PROXY_HEADERS):
        return False
    return _is_loopback(remote_addr)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>`; False (never an exception) for anything odd."""
    if not authorization or not token:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # WSGI header values are latin-1 decoded bytes: back to those bytes, then digests of equal length.
    given_digest = hashlib.sha256(given.strip().encode("latin-1", "replace")).digest()
    token_digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(given_digest, token_digest)


def summary(body: dict[str, Any]) -> dict[str, Any]:
    """The status and counts of a full health body: no names, no texts, no host."""
    problems = body.get("problems") or []
    webhooks = body.get("webhooks") or {}
    scheduler = body.get("scheduler") or {}
    db_ok = body.get("db") == "ok"
    return {
        "status": body["status"],
        "db": "ok" if db_ok else "error",
        "scheduler": "running" if scheduler.get("running") else "not running",
        "counts": None if not db_ok else {  # unknown without the database, not zero
            "kakao_logins": len(body.get("kakao") or []),
            "kakao_logins_needing_login": sum(1 for login in body.get("kakao") or [] if login["status"] != "ok"),
            "shopify_installs": len(body.get("shopify") or []),
            "shopify_installs_not_active": sum(1 for i in body.get("shopify") or [] if i["status"] != "active"),
            "merchants": len(body.get("merchants") or []),
            "merchants_kakao_not_connected": sum(1 for m in body.get("merchants") or [] if m["kakao"] != "connected"),
            "problems": len(problems),
            "problems_needing_person": sum(1 for problem in problems if problem.get("needs_person")),
            "webhooks_pending": webhooks.get("pending"),
            "webhooks_unprocessed": webhooks.get("unprocessed"),  # the backlog: pending, in hand, awaiting a retry
        },
        "details": DETAILS_HINT,
    }


def _is_loopback(remote_addr: str | None) -> bool:
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
