"""Processing stored Shopify webhooks, after they were answered: claim, handle, record.

The route (`bot.webhooks.inbox`) commits each delivery as a `pending` row and answers 200. A worker
claims pending rows a few at a time with one conditional statement (`UPDATE … SET status =
'processing' WHERE id IN (oldest pending) AND status = 'pending' RETURNING …`; on PostgreSQL the
ids are picked FOR UPDATE SKIP LOCKED), so of several workers — threads, processes or instances
sharing one PostgreSQL — exactly one takes each row. Rows due for a retry, and `processing` rows
whose claimer is gone (its process is dead on this host, or the claim is older than
`stale_claim`), are claimed one by one under the same rule, `attempts` acting as their version.
So an event answered 200 by a process that died before or during processing is processed after
the restart (the worker drains first thing when it starts). A handler that raises leaves the row
`failed` with the error and a `next_attempt_at` (backoff), up to `max_attempts` claims.

The worker dispatches by topic to the handlers of `bot.webhooks.topics`, which say what each topic
does (a topic without one is ignored); they are idempotent, so an event handled twice (retaken
after a crash) never acts twice.

The HMAC covers the body, not the headers: a body that names a shop (`myshopify_domain`,
`shop_domain`) other than X-Shopify-Shop-Domain is ignored, and app/uninstalled and shop/redact
must name theirs — a captured body resent under other headers destroys nothing.

Bodies hold personal data: once an event is done (or ignored) its body is emptied; the row
stays a while (KEEP_DONE) so a late redelivery is still recognised, then it is pruned. When a
drain has emptied bodies, the SQLite WAL is checkpointed and truncated (bot.store.sqlite_scrub), so the
bytes are gone from the files as well.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Connection, and_, bindparam, delete, or_, select, update

from bot.app import App
from bot.delivery.alerts import AlertFailed, AlertSender
from bot.store.claims import STALE_CLAIM, abandoned, instance_id, update_if_unchanged
from bot.store.models import WebhookEvent
from bot.store.sqlite_scrub import scrub_files
from bot.util.background import Repeating
from bot.util.logs import redact
from bot.util.native_memory import trim
from bot.webhooks import order_updates
from bot.webhooks.order_snapshots import upsert_snapshots
from bot.webhooks.stored import Handled, StoredEvent
from bot.webhooks.topics import MUST_NAME_SHOP, TopicHandlers
from bot.webhooks.worker_log import Tally

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
POLL_INTERVAL = 5.0  # seconds between looks when nobody wakes the worker (retries, other instances)
# Woken by the route, the worker lets deliveries gather this long before it claims: under a stream of
# webhooks it then takes them a batch at a time instead of one claim, snapshot read and commit per event,
# CPU that the request threads of the same process need for their answers. Alerts wait this much longer.
GATHER = 0.1
BATCH = 50  # failed/abandoned rows looked at per pass
OTHERS_EVERY = 1.0  # seconds between looks for them while a drain goes on
# Pending rows claimed at once (one statement). Large enough that a storm of one order's updates
# coalesces and a run's snapshots and outcomes share a transaction; small enough that other workers
# find rows left to take and a stop hands few back.
CLAIM_BATCH = 100
KEEP_DONE = timedelta(days=7)  # Shopify retries a delivery for 4 hours: dedupe well beyond that
KEEP_FAILED = timedelta(days=30)
PRUNE_EVERY = 3600.0
# Worker threads on PostgreSQL unless [webhooks] workers says otherwise: measured on 2 cores, 10,000
# stored orders/updated of distinct orders drain at ~1.4x the rate of one with 2, no faster with 3 or 4
# (they share the process's interpreter lock once the round trips overlap).
DEFAULT_PG_WORKERS = 2

# In StoredEvent's field order: claims return rows that become StoredEvent(*row).
_EVENT_COLUMNS = (WebhookEvent.id, WebhookEvent.app, WebhookEvent.shop, WebhookEvent.topic, WebhookEvent.webhook_id,
                  WebhookEvent.triggered_at, WebhookEvent.attempts, WebhookEvent.body)

# The pending rows, oldest first. They never have a retry time: saying so, and ordering by the whole
# index (status, next_attempt_at, id) — the same as by id here — makes PostgreSQL read them in order
# from that index; ordered by id alone it walked the primary key past a week of done rows (67 ms at
# 100,000 of them, 0.3 ms from the index).
PENDING = (WebhookEvent.status == "pending", WebhookEvent.next_attempt_at.is_(None))
PENDING_ORDER = (WebhookEvent.status, WebhookEvent.next_attempt_at, WebhookEvent.id)

# An event's outcome, for executemany: matches only while the row is still this worker's claim.
_FINISH = (update(WebhookEvent)
           .where(WebhookEvent.id == bindparam("row_id"), WebhookEvent.status == "processing",
                  WebhookEvent.claimed_by == bindparam("owner"))
           .values(status=bindparam("new_status"), result=bindparam("outcome"), error=None, next_attempt_at=None,
                   body=""))


def _finish_many(connection: Connection, owner: str, now: datetime, rows: list[tuple[int, str, str]]) -> int | None:
    """Record (id, status, result) outcomes; how many rows matched, None when the driver cannot tell.

    One executemany of one statement, compiled once: psycopg sends the whole run in one pipeline (one
    round trip), SQLite runs it in-process. A statement built per run (UPDATE … FROM (VALUES …)) cost
    more to compile than to run: the worker spent half its CPU in SQLAlchemy's and psycopg's compilers."""
    changed = connection.execute(_FINISH.values(processed_at=now), [
        dict(row_id=row_id, owner=owner, new_status=status, outcome=result)
        for row_id, status, result in rows]).rowcount
    return changed if connection.dialect.supports_sane_multi_rowcount else None


class WebhookWorker:
    """Drains the stored events of one App: `start()` runs it in a thread, `drain_once()` one pass."""

    def __init__(self, app: App, *, poll_interval: float = POLL_INTERVAL, max_attempts: int = MAX_ATTEMPTS,
                 stale_claim: timedelta = STALE_CLAIM, claim_batch: int = CLAIM_BATCH, owner: str | None = None,
                 alerts: AlertSender | None = None, name: str = "webhook-worker", gather: float = GATHER):
        self.app, self.gather = app, gather
        self.claim_batch = claim_batch
        self.poll_interval, self.max_attempts, self.stale_claim = poll_interval, max_attempts, stale_claim
        self.owner = owner or instance_id()
        self.alerts = alerts or AlertSender(app)
        self._loop = Repeating(name, self._tick, poll_interval, wake=app.webhook_wakeup,
                               failure="webhook worker: draining failed; trying again shortly")
        self._stop = self._loop.stopping
        self._pruned_at = 0.0
        self._scrub_due = False  # bodies were emptied since the WAL was last truncated
        # A dict per worker: one topic's handler can be wrapped (tests do) without touching the others.
        topics = TopicHandlers(app, self.alerts)
        self.handlers: dict[str, Callable[[StoredEvent], Handled]] = topics.by_topic()
        self.updates = topics.updates  # orders/updated: a run of them at once
        self.tally = Tally()  # what was processed, summed up in one INFO line a minute

    # -- running -----------------------------------------------------------------------
    def start(self) -> "WebhookWorker":
        self._loop.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the event in hand; True if the thread ended within `timeout`."""
        return self._loop.stop(timeout)

    def alive(self) -> bool:
        """True while its thread runs (for /healthz)."""
        return self._loop.alive()

    def _tick(self) -> None:
        # A database hiccup raises out of here; the loop logs it and tries again shortly.
        if self.gather:
            self._stop.wait(self.gather)  # a stop ends the wait: drain_once then hands nothing out
        if self.drain_once():
            self._scrub_due = True
            trim()  # the backlog is drained: what it freed goes back to the system (bot.util.native_memory)
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            self.prune()
        if self._scrub_due:  # once the backlog is drained: the emptied bodies leave the files too
            self._scrub_due = not scrub_files(self.app.db)
        self.tally.report_if_due()

    def drain_once(self) -> int:
        """Process every event that is due now (pending, retry due, or abandoned); returns how many."""
        handled, looked = 0, None
        while not self._stop.is_set():
            # Retries and take-overs first: looked for while nothing is in hand (see _abandoned), at the
            # start of a drain and then once a second (two queries; a batch takes milliseconds).
            retaken = []
            if looked is None or time.monotonic() - looked >= OTHERS_EVERY:
                looked = time.monotonic()
                retaken = [event for event in map(self._claim, self._others()) if event]
            claimed = sorted(retaken + self._claim_pending(), key=lambda event: event.id)
            if not claimed:
                break
            units = _units(claimed)
            for index, unit in enumerate(units):
                if self._stop.is_set():
                    self._release([event for rest in units[index:] for event in rest])
                    return handled
                handled += len(unit)
                if unit[0].topic == order_updates.TOPIC:
                    self._handle_updates(unit)
                else:
                    self._handle(unit[0])
        return handled

    # -- claiming ----------------------------------------------------------------------
    def _claim_pending(self) -> list[StoredEvent]:
        """Take up to `claim_batch` pending rows, oldest first, in one statement.

        `UPDATE … WHERE id IN (the oldest pending ids) AND status = 'pending' RETURNING`: a row
        another worker took meanwhile no longer matches, so each row has one claimer. On
        PostgreSQL the ids are picked FOR UPDATE SKIP LOCKED, so workers take different rows
        instead of queueing on the same ones.
        """
        now = self.app.clock()
        with self.app.db.write_transaction() as connection:
            oldest = (select(WebhookEvent.id).where(*PENDING).order_by(*PENDING_ORDER).limit(self.claim_batch))
            if not self.app.db.is_sqlite:
                oldest = oldest.with_for_update(skip_locked=True)
            rows = connection.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(oldest.scalar_subquery()), WebhookEvent.status == "pending")
                .values(status="processing", claimed_by=self.owner, claimed_at=now,
                        attempts=WebhookEvent.attempts + 1)
                .returning(*_EVENT_COLUMNS)).all()
        return sorted((StoredEvent(*row) for row in rows), key=lambda event: event.id)

    def _others(self) -> list[tuple[int, str, int, str | None]]:
        """Failed rows due for a retry, and `processing` rows whose claimer is gone."""
        now = self.app.clock()
        columns = (WebhookEvent.id, WebhookEvent.status, WebhookEvent.attempts, WebhookEvent.claimed_by)
        with self.app.db.engine.connect() as connection:  # a read: no write lock, no ORM Session
            due = connection.execute(
                select(*columns).where(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at.is_not(None),
                                       WebhookEvent.next_attempt_at <= now)
                .order_by(WebhookEvent.id).limit(BATCH)).all()
            busy = connection.execute(
                select(*columns, WebhookEvent.claimed_at).where(WebhookEvent.status == "processing")
                .order_by(WebhookEvent.id).limit(BATCH)).all()
        abandoned = [tuple(row[:4]) for row in busy if self._abandoned(row.claimed_by, row.claimed_at, now)]
        return sorted([tuple(row) for row in due] + abandoned)

    def _abandoned(self, claimed_by: str | None, claimed_at: datetime | None, now: datetime) -> bool:
        if claimed_by == self.owner:
            # Ours, yet nothing is in hand between batches: left by a pass that broke off (a
            # database error while recording an outcome). Taken again rather than stranded.
            return True
        return abandoned(claimed_by, claimed_at, now, stale_after=self.stale_claim)

    def _claim(self, candidate: tuple[int, str, int, str | None]) -> StoredEvent | None:
        """Take one row if it is still as read (status, attempts, claimer): one claimer wins."""
        row_id, status, attempts, claimed_by = candidate
        now = self.app.clock()
        with self.app.db.write_transaction() as connection:
            row = connection.execute(
                update_if_unchanged(WebhookEvent, row_id, status, claimed_by)
                .where(WebhookEvent.attempts == attempts)
                .values(status="processing", claimed_by=self.owner, claimed_at=now, attempts=attempts + 1,
                        next_attempt_at=None)
                .returning(*_EVENT_COLUMNS)
            ).one_or_none()
        if row is None:
            return None
        event = StoredEvent(*row)
        if status == "processing":
            log.warning("webhook %s (%s, %s): taken over from %s, which stopped while processing it",
                        event.webhook_id, event.topic, event.shop, claimed_by)
        return event

    def _release(self, events: list[StoredEvent]) -> None:
        """Stopping: hand back claimed rows not started, as they were (the claim is not an attempt)."""
        with self.app.db.write_transaction() as connection:
            for event in events:
                connection.execute(
                    update_if_unchanged(WebhookEvent, event.id, "processing", self.owner)
                    .values(status="pending", claimed_by=None, claimed_at=None, attempts=event.attempts - 1))

    # -- processing --------------------------------------------------------------------
    def _handle(self, event: StoredEvent) -> None:
        if event.attempts > self.max_attempts:
            # Only a row re-taken again and again gets here: it stops its processes, somehow.
            self._fail(event, f"gave up after {self.max_attempts} attempts (processing kept stopping)", final=True)
            return
        try:
            handled = self.process(event)
        except Exception as exc:  # noqa: BLE001 — recorded on the row and retried
            if not isinstance(exc, AlertFailed):
                log.exception("webhook %s (%s, %s) failed", event.webhook_id, event.topic, event.shop)
            self._fail(event, redact(f"{type(exc).__name__}: {exc}"), final=event.attempts >= self.max_attempts)
            return
        self._finish(event, handled)

    def _handle_updates(self, events: list[StoredEvent]) -> None:
        """A run of orders/updated (bot.webhooks.order_updates): its snapshots and outcomes in one transaction."""
        ready, outcomes = [], []
        for event in events:
            if event.attempts > self.max_attempts:
                self._fail(event, f"gave up after {self.max_attempts} attempts (processing kept stopping)", final=True)
                continue
            early = self._check(event)
            if early is None:
                ready.append(event)
            else:
                outcomes.append((event, early))
        try:
            run = self.updates.handle(ready)
        except Exception as exc:  # noqa: BLE001 — recorded on the rows and retried, as for one event
            log.exception("webhooks %s (orders/updated) failed", ", ".join(event.webhook_id for event in ready))
            run = order_updates.RunResult(failures=[(event, redact(f"{type(exc).__name__}: {exc}")) for event in ready])
        for event, error in run.failures:
            self._fail(event, error, final=event.attempts >= self.max_attempts)
        outcomes += run.outcomes
        with self.app.db.write_transaction() as connection:
            upsert_snapshots(connection, run.writes, self.app.clock())
            self._record(connection, outcomes)

    def process(self, event: StoredEvent) -> Handled:
        """Run the topic's handler (the row is claimed by this worker)."""
        early = self._check(event)
        if early is not None:
            return early
        handler = self.handlers.get(event.topic)
        if handler is None:
            return Handled("ignored", f"no handler for topic {event.topic!r}")
        return handler(event)

    def _check(self, event: StoredEvent) -> Handled | None:
        """Why an event is ignored before its topic's handler sees it, or None."""
        if event.topic not in self.handlers and event.topic != order_updates.TOPIC:
            return Handled("ignored", f"no handler for topic {event.topic!r}")
        if not event.body:
            return Handled("ignored", "the body was removed (redacted) before processing")
        try:
            payload = event.payload()
        except ValueError:
            return Handled("ignored", "the stored body is not JSON")
        # The signature covers the body only, not the headers: a body must not act on another shop
        # than the one it names (a captured body resent with other headers), and the destructive
        # topics must name theirs.
        named = payload.get("myshopify_domain") or payload.get("shop_domain")
        if named is not None and str(named).lower() != event.shop:
            return Handled("ignored", f"the body names shop {str(named)[:255]!r}, the headers {event.shop!r}")
        if named is None and event.topic in MUST_NAME_SHOP:
            return Handled("ignored", "the body does not name the shop")
        return None

    def _finish(self, event: StoredEvent, handled: Handled) -> None:
        with self.app.db.write_transaction() as connection:
            self._record(connection, [(event, handled)])

    def _record(self, connection: Connection, outcomes: list[tuple[StoredEvent, Handled]]) -> None:
        """Mark the events done or ignored (one statement, run for each) while each is still this worker's claim."""
        if not outcomes:
            return
        rows = [(event.id, handled.status, handled.result[:2000]) for event, handled in outcomes]
        changed = _finish_many(connection, self.owner, self.app.clock(), rows)
        if changed is not None and changed < len(outcomes):
            log.warning("%d webhook(s) processed, but another worker had taken them over meanwhile",
                        len(outcomes) - changed)
        for event, handled in outcomes:
            self.tally.count(event, handled)

    def _fail(self, event: StoredEvent, error: str, *, final: bool) -> None:
        now = self.app.clock()
        retry_at = None if final else now + min(RETRY_BASE * 2 ** max(event.attempts - 1, 0), RETRY_MAX)
        with self.app.db.write_transaction() as connection:
            connection.execute(
                update_if_unchanged(WebhookEvent, event.id, "processing", self.owner)
                .values(status="failed", error=error[:2000], next_attempt_at=retry_at, processed_at=now))
        if final:
            log.error("webhook %s (%s, %s) failed for good after %d attempts: %s", event.webhook_id, event.topic,
                      event.shop, event.attempts, error)
        else:
            log.warning("webhook %s (%s, %s) failed (attempt %d), retried at %s: %s", event.webhook_id, event.topic,
                        event.shop, event.attempts, f"{retry_at:%H:%M:%S} UTC", error)

    def prune(self) -> int:
        """Delete finished rows past their keeping time; returns how many."""
        now = self.app.clock()
        with self.app.db.write_transaction() as connection:
            return connection.execute(
                delete(WebhookEvent).where(or_(
                    and_(WebhookEvent.status.in_(("done", "ignored")), WebhookEvent.received_at < now - KEEP_DONE),
                    and_(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at.is_(None),
                         WebhookEvent.received_at < now - KEEP_FAILED)))).rowcount


def _units(claimed: list[StoredEvent]) -> list[list[StoredEvent]]:
    """The claimed events in id order as units of work: each run of consecutive orders/updated is one
    (handled together), any other event one of its own. An update never jumps ahead of an event
    stored before it (an orders/create writes the snapshot the update is compared with)."""
    units: list[list[StoredEvent]] = []
    for event in claimed:
        if event.topic == order_updates.TOPIC and units and units[-1][0].topic == order_updates.TOPIC:
            units[-1].append(event)
        else:
            units.append([event])
    return units


def start_background(app: App) -> list[WebhookWorker]:
    """Start the webhook workers (each has .stop(timeout)): `[webhooks] workers` threads, by default one
    on SQLite (one writer at a time: a second only queues) and DEFAULT_PG_WORKERS on PostgreSQL, where
    each claims its own rows (SKIP LOCKED) and their round trips overlap. They first drain what an
    earlier process left (stored and answered, but not processed). The order reconciliation is a
    scheduler job (bot.service.run.register_reconciliation)."""
    count = app.config.webhooks.workers or (1 if app.db.is_sqlite else DEFAULT_PG_WORKERS)
    return [WebhookWorker(app, name=f"webhook-worker-{index + 1}" if count > 1 else "webhook-worker").start()
            for index in range(count)]
