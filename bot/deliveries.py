"""The one place that records deliveries: claim, sending, sent / failed / unknown / skipped.

A (job, slot_key, recipient) row is unique. Whoever inserts it sends; a row found from an
earlier run decides what a re-run may do:
  sent                 → nothing (already delivered)
  sending              → the process died during the request: outcome unknown, reported
  unknown              → reported again, never repeated
  failed / skipped     → taken over and tried again
  claimed              → taken over when its claimer is gone (crashed before the POST)
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.db import Database, utcnow
from bot.models import Delivery

STALE_CLAIM = timedelta(minutes=15)
RETAKEABLE = ("failed", "skipped")


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    """Outcome of claiming one recipient: `row_id` set when this process may send."""

    recipient: str
    row_id: int | None
    previous_status: str | None = None  # the status found, when not claimable
    previous_reason: str | None = None


class DeliveryLog:
    def __init__(self, db: Database, *, owner: str | None = None, clock: Callable[[], datetime] = utcnow):
        self.db, self.owner, self.clock = db, owner or instance_id(), clock

    def claim(self, *, job: str, slot_key: str, recipient: str, label: str, sender: str,
              quota_day: str, late: bool = False) -> Claim:
        now = self.clock()
        values = dict(job=job, slot_key=slot_key, recipient=recipient, label=label, sender=sender,
                      status="claimed", quota_day=quota_day, claimed_by=self.owner, late=late,
                      created_at=now, updated_at=now)
        with self.db.session() as session:
            dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
            inserted = session.execute(
                dialect.insert(Delivery).values(**values)
                .on_conflict_do_nothing(index_elements=["job", "slot_key", "recipient"])
                .returning(Delivery.id)
            ).scalar_one_or_none()
            if inserted is not None:
                return Claim(recipient, inserted)
            row = session.execute(select(Delivery).where(
                Delivery.job == job, Delivery.slot_key == slot_key, Delivery.recipient == recipient)).scalar_one()
            if row.status == "sending":
                # The process that started this request died before recording its outcome.
                row.status, row.reason = "unknown", "the sending process stopped during the request"
            if row.status in RETAKEABLE or (row.status == "claimed" and self._abandoned(row, now)):
                # Conditional update: of several instances retaking the same row, one wins.
                won = session.execute(
                    update(Delivery).where(Delivery.id == row.id, Delivery.status == row.status,
                                           Delivery.claimed_by == row.claimed_by)
                    .values(status="claimed", claimed_by=self.owner, code=None, reason=None,
                            quota_day=quota_day, label=label, updated_at=now)
                ).rowcount
                if won:
                    return Claim(recipient, row.id)
            return Claim(recipient, None, row.status, row.reason)

    def _abandoned(self, row: Delivery, now: datetime) -> bool:
        host, _, rest = row.claimed_by.partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            return True
        return now - row.updated_at > STALE_CLAIM

    def mark(self, row_ids: Sequence[int], status: str, *, code: int | None = None, reason: str | None = None) -> None:
        if not row_ids:
            return
        with self.db.session() as session:
            session.execute(update(Delivery).where(Delivery.id.in_(list(row_ids)))
                            .values(status=status, code=code, reason=reason, updated_at=self.clock()))

    def skip(self, *, job: str, slot_key: str, recipient: str, label: str, sender: str, quota_day: str,
             reason: str) -> Claim:
        """Record that a recipient was not sent to, and why (unless it was already delivered)."""
        claim = self.claim(job=job, slot_key=slot_key, recipient=recipient, label=label, sender=sender,
                           quota_day=quota_day)
        if claim.row_id is not None:
            self.mark([claim.row_id], "skipped", reason=reason)
        return claim

    def history(self, *, job: str | None = None, limit: int = 20) -> list[Delivery]:
        with self.db.session() as session:
            query = select(Delivery).order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)
            if job:
                query = query.where(Delivery.job == job)
            return list(session.scalars(query))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
