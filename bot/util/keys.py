"""Stored keys fitted to their database columns.

Slot keys and job-memory names are built from configured names, shop domains and order ids, so
they can outgrow their column. Too long, the part that varies is replaced by a SHA-256 digest of
it, after as much of its head as still fits when the key should stay readable. The shortened
text is stored: each format must give the same text for the same input in every release.
"""

from __future__ import annotations

import hashlib

SLOT_KEY_MAX = 80  # deliveries.slot_key
MEMORY_NAME_MAX = 100  # job_memory.job and job_memory.key


def fit_key(body: str, limit: int, *, prefix: str = "", suffix: str = "", mark: str = "#",
            digest_chars: int = 64, keep_head: bool = False) -> str:
    """`prefix + body + suffix` when it has at most `limit` characters. Otherwise `body` becomes
    `mark` and the first `digest_chars` hex digits of its SHA-256, preceded, with `keep_head`, by
    as many of its first characters as leave the whole at `limit`."""
    whole = prefix + body + suffix
    if len(whole) <= limit:
        return whole
    digest = hashlib.sha256(body.encode()).hexdigest()[:digest_chars]
    head = body[:limit - len(prefix) - len(mark) - len(digest) - len(suffix)] if keep_head else ""
    return prefix + head + mark + digest + suffix
