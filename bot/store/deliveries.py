"""The one place that records deliveries: claim, sending, sent / failed / unknown / skipped.

A (job, slot_key, recipient) row is unique. Whoever inserts it sends; a row found from an
earlier run decides what a re-run may do:
  sent                 → nothing (already delivered)
  sending              → once its owner is gone, the process died during the request:
                         outcome unknown, reported (while the owner lives: left to it).
                         `resolve_stuck` (the service's sweep) does the same without a re-run,
                         and also for this process's own rows whose request is over but whose
                         outcome could not be written (the database went away meanwhile)
  unknown              → reported again, never repeated
  failed / skipped     → taken over and tried again
  claimed              → taken over when its claimer is gone (crashed before the POST)
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, ContextManager, Iterable, Iterator, Sequence

from sqlalchemy import Connection, bindparam, select, update

from bot.kakao.quota import ME_RESERVE, QuotaBook
from bot.store.claims import abandoned, instance_id, update_if_unchanged
from bot.store.db import Database, insert_for, utcnow
from bot.store.models import Delivery
from bot.store.quota_counts import load_quota_book

RETAKEABLE = ("failed", "skipped")
FINAL = ("sent", "unknown")  # outcomes a later run of the slot never sends again
DIED_REASON = "the sending process stopped during the request; the message may have been delivered"
LOST_REASON = ("the outcome of the request could not be recorded (the database was unavailable); "
               "the message may have been delivered")
ID_CHUNK = 500  # row ids per `IN (…)`: well under any database's limit of bound parameters

_rows = Delivery.__table__
# The status change of a fan-out's rows, several per second: built once (only its parameters change
# per call), on the table rather than the mapped class, which spares the ORM's statement handling.
SET_STATUS = (
    update(_rows)
    .where(_rows.c.id.in_(bindparam("ids", expanding=True)), _rows.c.claimed_by == bindparam("owner"))
    .values(status=bindparam("new_status"), code=bindparam("new_code"), reason=bindparam("new_reason"),
            updated_at=bindparam("now", type_=_rows.c.updated_at.type))
    .returning(_rows.c.id)
)


@dataclass(frozen=True)
class Claim:
    """Outcome of claiming one recipient: `row_id` set when this process may send."""

    recipient: str
    row_id: int | None
    previous_status: str | None = None  # the status found, when not claimable
    previous_reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of some rows (a batch's send, a quota refusal), to be written with `DeliveryLog.record`."""

    row_ids: tuple[int, ...]
    status: str
    code: int | None = None
    reason: str | None = None


class DeliveryLog:
    def __init__(self, db: Database, *, owner: str | None = None, clock: Callable[[], datetime] = utcnow):
        self.db, self.owner, self.clock = db, owner or instance_id(), clock
        # Rows whose Kakao request this process is making right now: `resolve_stuck` leaves them alone.
        self._in_flight: set[int] = set()
        self._in_flight_guard = threading.Lock()

    def claim(self, *, job: str, slot_key: str, recipient: str, label: str, sender: str,
              quota_day: str, late: bool = False) -> Claim:
        return self.claim_many(job=job, slot_key=slot_key, recipients=[(recipient, label)], sender=sender,
                               quota_day=quota_day, late=late)[0]

    def claim_many(self, *, job: str, slot_key: str, recipients: Sequence[tuple[str, str]], sender: str,
                   quota_day: str, late: bool = False) -> list[Claim]:
        """Claim (recipient key, label) pairs in one transaction: one commit, not one per recipient."""
        with self._transaction() as connection:
            return self._claim(connection, job, slot_key, recipients, sender, quota_day, late)

    def claim_counted(self, *, job: str, slot_key: str, recipients: Sequence[tuple[str, str]], sender: str,
                      quota_day: str, late: bool = False, reserve: int = ME_RESERVE) -> tuple[list[Claim], QuotaBook]:
        """`claim_many`, and the quota counts of the day for the recipients claimed, in one transaction."""
        with self._transaction() as connection:
            claims = self._claim(connection, job, slot_key, recipients, sender, quota_day, late)
            claimed = [claim.recipient for claim in claims if claim.row_id is not None]
            return claims, load_quota_book(connection, sender, quota_day, claimed, reserve)

    def _transaction(self) -> ContextManager[Connection]:
        # A Core transaction (an ORM Session costs more to set up than these short statements take),
        # queued with the process's other SQLite writers and holding the write lock from its start.
        return self.db.write_transaction()

    def _claim(self, connection: Connection, job: str, slot_key: str, recipients: Sequence[tuple[str, str]],
               sender: str, quota_day: str, late: bool) -> list[Claim]:
        now = self.clock()
        rows = [dict(job=job, slot_key=slot_key, recipient=key, label=label, sender=sender, status="claimed",
                     quota_day=quota_day, claimed_by=self.owner, late=late, created_at=now, updated_at=now)
                for key, label in dict(recipients).items()]
        if not rows:
            return []
        # One statement with many parameter sets: compiled once and cached, whatever the number of rows
        # (SQLAlchemy sends them as multi-row INSERTs with RETURNING).
        inserted = dict(connection.execute(
            insert_for(connection.dialect.name, Delivery.__table__)
            .on_conflict_do_nothing(index_elements=["job", "slot_key", "recipient"])
            .returning(Delivery.recipient, Delivery.id), rows).all())
        return [Claim(row["recipient"], inserted[row["recipient"]]) if row["recipient"] in inserted
                else self._reclaim(connection, row, now) for row in rows]

    def _reclaim(self, connection: Connection, values: dict, now: datetime) -> Claim:
        """The row existed already: decide what this run may do with it (see the module docstring)."""
        recipient, label, quota_day = values["recipient"], values["label"], values["quota_day"]
        row = connection.execute(select(Delivery.id, Delivery.status, Delivery.claimed_by, Delivery.updated_at,
                                        Delivery.reason).where(
            Delivery.job == values["job"], Delivery.slot_key == values["slot_key"],
            Delivery.recipient == recipient)).one()
        if row.status == "sending" and abandoned(row.claimed_by, row.updated_at, now):
            # The process that started this request died before recording its outcome.
            # Conditional: never overwrite an outcome its sender recorded meanwhile.
            reason = DIED_REASON
            changed = connection.execute(
                update_if_unchanged(Delivery, row.id, "sending", row.claimed_by)
                .values(status="unknown", reason=reason, updated_at=now)
            ).rowcount
            return Claim(recipient, None, "unknown" if changed else "sending", reason if changed else None)
        if row.status in RETAKEABLE or (row.status == "claimed" and abandoned(row.claimed_by, row.updated_at, now)):
            # Conditional update: of several instances retaking the same row, one wins.
            won = connection.execute(
                update_if_unchanged(Delivery, row.id, row.status, row.claimed_by)
                .values(status="claimed", claimed_by=self.owner, code=None, reason=None,
                        quota_day=quota_day, label=label, updated_at=now)
            ).rowcount
            if won:
                return Claim(recipient, row.id)
        return Claim(recipient, None, row.status, row.reason)

    @contextmanager
    def in_flight(self, row_ids: Iterable[int]) -> Iterator[None]:
        """Around marking rows `sending`, the request and recording its outcome: while inside, the
        sweep knows the request is still being made (entered before `sending` is committed)."""
        ids = set(row_ids)
        with self._in_flight_guard:
            self._in_flight |= ids
        try:
            yield
        finally:
            with self._in_flight_guard:
                self._in_flight -= ids

    def resolve_stuck(self) -> list[int]:
        """Turn `sending` rows nobody will finish into `unknown`: a dead (or 15 min silent) owner's, and
        this process's own whose request is over but whose outcome was never written. Returns their ids."""
        now = self.clock()
        resolved = []
        with self.db.session() as session:
            rows = list(session.scalars(select(Delivery).where(Delivery.status == "sending")))
            with self._in_flight_guard:  # read after the rows: a request starting meanwhile is in here
                busy = set(self._in_flight)
            for row in rows:
                own = row.claimed_by == self.owner
                if (row.id in busy) if own else not abandoned(row.claimed_by, row.updated_at, now):
                    continue
                changed = session.execute(
                    update_if_unchanged(Delivery, row.id, "sending", row.claimed_by)
                    .values(status="unknown", reason=LOST_REASON if own else DIED_REASON, updated_at=now)
                    .execution_options(synchronize_session=False)).rowcount
                if changed:
                    resolved.append(row.id)
        return resolved

    def mark(self, row_ids: Sequence[int], status: str, *, code: int | None = None,
             reason: str | None = None) -> set[int]:
        """Set the status of rows this owner holds; returns the ids changed.

        A row another instance took over (our claim went stale) is left alone: its new
        owner sends it, and the caller must not.
        """
        if not row_ids:
            return set()
        with self._transaction() as connection:
            return self._set(connection, row_ids, status, code, reason)

    def record(self, outcomes: Sequence[Outcome], *, sending: Sequence[int] = ()) -> set[int]:
        """Write `outcomes` and move the rows `sending` to `sending`, in one transaction: a fan-out
        commits the outcome of one call together with the start of the next, so the start is still
        committed before its request goes out. Returns the ids of `sending` moved (see `mark`)."""
        if not outcomes and not sending:
            return set()
        groups: dict[tuple[str, int | None, str | None], list[int]] = {}  # one UPDATE per kind of outcome
        for outcome in outcomes:
            groups.setdefault((outcome.status, outcome.code, outcome.reason), []).extend(outcome.row_ids)
        with self._transaction() as connection:
            for (status, code, reason), row_ids in groups.items():
                self._set(connection, row_ids, status, code, reason)
            return self._set(connection, sending, "sending", None, None) if sending else set()

    def _set(self, connection: Connection, row_ids: Sequence[int], status: str, code: int | None,
             reason: str | None) -> set[int]:
        changed: set[int] = set()
        ids, now = list(row_ids), self.clock()
        for start in range(0, len(ids), ID_CHUNK):
            changed.update(connection.execute(SET_STATUS, {
                "ids": ids[start:start + ID_CHUNK], "owner": self.owner, "new_status": status, "new_code": code,
                "new_reason": reason, "now": now}).scalars())
        return changed

    def skip(self, *, job: str, slot_key: str, recipient: str, label: str, sender: str, quota_day: str,
             reason: str) -> Claim:
        """Record that a recipient was not sent to, and why (unless it was already delivered)."""
        claim = self.claim(job=job, slot_key=slot_key, recipient=recipient, label=label, sender=sender,
                           quota_day=quota_day)
        if claim.row_id is not None:
            self.mark([claim.row_id], "skipped", reason=reason)
        return claim

    def settled(self, *, job: str, slot_key: str, recipients: Sequence[str]) -> set[str]:
        """The recipients of (job, slot_key) whose outcome is final — sent, or unknown (reported, never
        repeated): a run of that slot will not send to them again."""
        if not recipients:
            return set()
        with self._transaction() as connection:
            return set(connection.scalars(select(Delivery.recipient).where(
                Delivery.job == job, Delivery.slot_key == slot_key, Delivery.recipient.in_(list(recipients)),
                Delivery.status.in_(FINAL))))

    def history(self, *, job: str | None = None, sender: str | None = None, limit: int = 20) -> list[Delivery]:
        """The latest deliveries, newest first; of one job and/or one sender (a merchant's Kakao login)."""
        with self.db.session() as session:
            query = select(Delivery).order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)
            if job:
                query = query.where(Delivery.job == job)
            if sender:
                query = query.where(Delivery.sender == sender)
            return list(session.scalars(query))
