"""Comparing a secret value (HMAC, OAuth state) with what a caller sent: constant time, never raising.

`hmac.compare_digest` refuses non-ASCII text with a TypeError — an unauthenticated crash (a 500, or a
traceback instead of a refused login) — so both sides are compared as UTF-8 bytes.
"""

from __future__ import annotations

import hmac


def constant_time_equal(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass"))
