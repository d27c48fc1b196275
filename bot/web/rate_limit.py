"""Per-client rate limits of unauthenticated routes that write something (the Shopify install start
stores a state per request): a token bucket per client address, in memory.

    limiter = RateLimiter(per_minute=10, burst=10)
    wait = limiter.take(client_address(request.environ), now=app.clock().timestamp())
    if wait: answer 429 with Retry-After: ceil(wait)

The buckets are per process (several instances each allow the rate: still bounded). At most
`max_clients` buckets are kept; the least recently seen client is forgotten first, so a flood of
addresses costs bounded memory (a forgotten client starts with a full bucket again).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict

MAX_CLIENTS = 10_000


class RateLimiter:
    """A token bucket per key: `burst` requests at once, then `per_minute` a minute."""

    def __init__(self, *, per_minute: float, burst: int, max_clients: int = MAX_CLIENTS):
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be positive and burst at least 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, *, now: float) -> float:
        """Spend one token of `key`'s bucket: 0.0 if allowed, else the seconds until one is there."""
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait


def retry_after(wait: float) -> str:
    """The Retry-After header value for a wait in seconds (whole seconds, at least 1)."""
    return str(max(1, math.ceil(wait)))


def client_address(environ: dict) -> str:
    """Who is asking: the peer address; behind a reverse proxy on this machine (a loopback peer), the
    last X-Forwarded-For entry — the address the proxy itself saw, which a client cannot forge."""
    peer = environ.get("REMOTE_ADDR") or "?"
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and _is_loopback(peer):
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return peer


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
