"""The order name a person knows (`#1001`) behind an order alert's delivery key, for `history`.

An alert's delivery is keyed `order:<gid>` (or `order-update:<gid>:<time>`): exactly-once hangs on that
key, which the webhook and the reconciliation both derive from the order id, so the name cannot go in
it. `remember` keeps gid → name in the job memory under a reserved job name when the alert is made,
and forgets names older than RETENTION; `names_for` finds them for the rows `history` shows.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, Iterable

from sqlalchemy import delete, select

from bot.store.db import Database, utcnow
from bot.store.job_memory import StoredJobState
from bot.store.models import JobMemory

NAMES_JOB = "!order-names"  # not a configurable job name: config job names cannot start with "!"
RETENTION = timedelta(days=90)  # history is read for recent deliveries; older rows fall back to the id
# The gid an alert's key is about: an order's, or a refund's (`refund:<gid>`, named after its order).
ORDER_GID = re.compile(r"gid://shopify/(?:Order|Refund)/\d+")


def remember(db: Database, slot_key: str, order: dict[str, Any]) -> None:
    """Keep the name of the order an alert under `slot_key` is about (nothing if either is unknown)."""
    gid, name = ORDER_GID.search(slot_key), order.get("name")
    if gid is None or not isinstance(name, str) or not name.strip():
        return
    StoredJobState(db, NAMES_JOB).set(gid.group(0), name.strip()[:40])
    with db.session() as session:
        session.execute(delete(JobMemory).where(JobMemory.job == NAMES_JOB,
                                                JobMemory.updated_at < utcnow() - RETENTION))


def names_for(db: Database, slot_keys: Iterable[str]) -> dict[str, str]:
    """gid → order name, for the order gids found in `slot_keys`."""
    gids = {match.group(0) for key in slot_keys if (match := ORDER_GID.search(key))}
    if not gids:
        return {}
    with db.session() as session:
        rows = session.execute(select(JobMemory.key, JobMemory.value_json)
                               .where(JobMemory.job == NAMES_JOB, JobMemory.key.in_(gids)))
        return {key: json.loads(value) for key, value in rows}
