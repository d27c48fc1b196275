"""Claiming rows that several threads, processes or instances may reach for, and taking them over.

Deliveries (`bot.store.deliveries`) and stored webhook events (`bot.webhooks.worker`) are both
claimed by writing the claimant's identity, `instance_id()` ("host:pid:random"), into
`claimed_by`. A claim stays its claimant's until it is abandoned: the claiming process is dead
(a pid on this host that no longer runs), or the claim is older than `STALE_CLAIM`. An abandoned
row is taken over (or its outcome settled) with a conditional UPDATE (`update_if_unchanged`) that
matches only while the row is as it was read — same status, same claimant — so of several claimants
exactly one wins.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, update

from bot.store.models import Delivery, WebhookEvent

# A claim this old is a crashed claimant's (elsewhere, where its pid cannot be checked), not its work.
STALE_CLAIM = timedelta(minutes=15)

ClaimedTable = type[Delivery] | type[WebhookEvent]


def instance_id() -> str:
    """The claimant identity of this process: host and pid (checkable on this host), and a random tag
    telling apart the claimants of one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def claimant_dead(claimed_by: str | None) -> bool:
    """The claimant ran on this host and its process is gone (another host's cannot be checked)."""
    host, _, rest = (claimed_by or "").partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def abandoned(claimed_by: str | None, claimed_at: datetime | None, now: datetime, *,
              stale_after: timedelta = STALE_CLAIM) -> bool:
    """Whether a claim may be taken over: its claimant is dead, or it is older than `stale_after`."""
    if claimant_dead(claimed_by):
        return True
    return claimed_at is None or now - claimed_at > stale_after


def held_by(table: ClaimedTable, claimed_by: str | None) -> ColumnElement[bool]:
    """SQL: the row's claimant is `claimed_by` (no claimant when None)."""
    return table.claimed_by.is_(None) if claimed_by is None else table.claimed_by == claimed_by


def update_if_unchanged(table: ClaimedTable, row_id: int, status: str, claimed_by: str | None) -> Update:
    """An UPDATE of one row that matches only while it is as read (status and claimant): of several
    claimants taking it over at once one wins, and a claimant whose row was taken over meanwhile
    changes nothing (the caller adds its `.values(...)`)."""
    return update(table).where(table.id == row_id, table.status == status, held_by(table, claimed_by))
