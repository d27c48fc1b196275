"""Processing stored Shopify webhooks, after they were answered: claim, handle, record.

The route (`bot.webhooks`) commits each delivery as a `pending` row and answers 200. A worker
claims pending rows a few at a time with one conditional statement (`UPDATE … SET status =
'processing' WHERE id IN (oldest pending) AND status = 'pending' RETURNING …`; on PostgreSQL the
ids are picked FOR UPDATE SKIP LOCKED), so of several workers — threads, processes or instances
sharing one PostgreSQL — exactly one takes each row. Rows due for a retry, and `processing` rows
whose claimer is gone (its process is dead on this host, or the claim is older than
`stale_claim`), are claimed one by one under the same rule, `attempts` acting as their version.
So an event answered 200 by a process that died before or during processing is processed after
the restart (the worker drains first thing when it starts). A handler that raises leaves the row
`failed` with the error and a `next_attempt_at` (backoff), up to `max_attempts` claims.

Handling an event twice never acts twice: alerts are deliveries with a unique (job, slot_key,
recipient) — `order:<gid>` for a new order, `order-update:<gid>:<updated_at>` for a change —
and every other handler is idempotent.

Topics:
  orders/create        alert for every `shopify-order-alert` job of the shop; snapshot stored
  orders/updated       compared with the stored snapshot (shipping address digest + line items'
                       (sku, quantity)): changed → alert (jobs with on_update) and snapshot;
                       no snapshot → one stored, no alert; older than the snapshot (its
                       updated_at, then X-Shopify-Triggered-At) → ignored as stale
  app/uninstalled      the install's tokens are wiped (`ShopifyTokens.uninstalled`)
  customers/data_request  what the bot holds about the customer's orders, logged for a person
  customers/redact     the snapshots of the listed orders are deleted
  shop/redact          everything of the shop is deleted: snapshots, stored events, state
  anything else        ignored
The HMAC covers the body, not the headers: a body that names a shop (`myshopify_domain`,
`shop_domain`) other than X-Shopify-Shop-Domain is ignored, and app/uninstalled and shop/redact
must name theirs — a captured body resent under other headers destroys nothing.

Bodies hold personal data: once an event is done (or ignored) its body is emptied; the row
stays a while (KEEP_DONE) so a late redelivery is still recognised, then it is pruned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import and_, delete, false, or_, select, true, update

from bot.background import Repeating
from bot.db import insert_for
from bot.alerts import AlertFailed, AlertSender, alert_jobs, problems_of
from bot.deliveries import _pid_alive, instance_id
from bot.logs import redact
from bot.models import JobMemory, OrderSnapshot, WebhookEvent
from bot.webhooks import parse_time, wakeup_event, write_session
from jobs.shopify_order_alert import alert_outcome, order_gid

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import JobConfig

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
STALE_CLAIM = timedelta(minutes=15)  # a claim this old is another worker's crash, not its work
POLL_INTERVAL = 5.0  # seconds between looks when nobody wakes the worker (retries, other instances)
BATCH = 50  # failed/abandoned rows looked at per pass
CLAIM_BATCH = 10  # pending rows claimed at once (one statement); the others stay free for other workers
KEEP_DONE = timedelta(days=7)  # Shopify retries a delivery for 4 hours: dedupe well beyond that
KEEP_FAILED = timedelta(days=30)
PRUNE_EVERY = 3600.0
SLOT_KEY_MAX = 80  # deliveries.slot_key

# Shipping address fields whose change is worth an alert; the snapshot keeps only their digest.
ADDRESS_FIELDS = ("first_name", "last_name", "name", "company", "address1", "address2", "city", "province",
                  "province_code", "zip", "country", "country_code", "phone")


@dataclass(frozen=True)
class StoredEvent:
    """A claimed row, detached from its session: what a handler reads."""

    id: int
    app: str
    shop: str
    topic: str
    webhook_id: str
    triggered_at: datetime | None
    attempts: int
    body: str

    def payload(self) -> dict[str, Any]:
        value = json.loads(self.body) if self.body else {}
        return value if isinstance(value, dict) else {}


_EVENT_COLUMNS = (WebhookEvent.id, WebhookEvent.app, WebhookEvent.shop, WebhookEvent.topic, WebhookEvent.webhook_id,
                  WebhookEvent.triggered_at, WebhookEvent.attempts, WebhookEvent.body)


@dataclass(frozen=True)
class Handled:
    status: str  # done | ignored
    result: str


class WebhookWorker:
    def __init__(self, app: "App", *, poll_interval: float = POLL_INTERVAL, max_attempts: int = MAX_ATTEMPTS,
                 stale_claim: timedelta = STALE_CLAIM, claim_batch: int = CLAIM_BATCH, owner: str | None = None,
                 alerts: AlertSender | None = None):
        self.app = app
        self.claim_batch = claim_batch
        self.poll_interval, self.max_attempts, self.stale_claim = poll_interval, max_attempts, stale_claim
        self.owner = owner or instance_id()
        self.alerts = alerts or AlertSender(app)
        self._loop = Repeating("webhook-worker", self._tick, poll_interval, wake=wakeup_event(app),
                               failure="webhook worker: draining failed; trying again shortly")
        self._stop = self._loop.stopping
        self._pruned_at = 0.0
        self.handlers: dict[str, Callable[[StoredEvent], Handled]] = {
            "orders/create": self._order_created,
            "orders/updated": self._order_updated,
            "app/uninstalled": self._app_uninstalled,
            "customers/data_request": self._data_request,
            "customers/redact": self._customer_redact,
            "shop/redact": self._shop_redact,
        }

    # -- running -----------------------------------------------------------------------
    def start(self) -> "WebhookWorker":
        self._loop.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the event in hand; True if the thread ended within `timeout`."""
        return self._loop.stop(timeout)

    def _tick(self) -> None:
        # A database hiccup raises out of here; the loop logs it and tries again shortly.
        self.drain_once()
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            self.prune()

    def drain_once(self) -> int:
        """Process every event that is due now (pending, retry due, or abandoned); returns how many."""
        handled = 0
        while not self._stop.is_set():
            # Retries and take-overs first: looked for while nothing is in hand (see _abandoned).
            retaken = [event for event in map(self._claim, self._others()) if event]
            claimed = sorted(retaken + self._claim_pending(), key=lambda event: event.id)
            if not claimed:
                break
            for index, event in enumerate(claimed):
                if self._stop.is_set():
                    self._release(claimed[index:])
                    return handled
                handled += 1
                self._handle(event)
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
        with write_session(self.app.db) as session:
            oldest = (select(WebhookEvent.id).where(WebhookEvent.status == "pending")
                      .order_by(WebhookEvent.id).limit(self.claim_batch))
            if not self.app.db.is_sqlite:
                oldest = oldest.with_for_update(skip_locked=True)
            rows = session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(oldest.scalar_subquery()), WebhookEvent.status == "pending")
                .values(status="processing", claimed_by=self.owner, claimed_at=now,
                        attempts=WebhookEvent.attempts + 1)
                .returning(*_EVENT_COLUMNS)
                .execution_options(synchronize_session=False)).all()
        return sorted((StoredEvent(*row) for row in rows), key=lambda event: event.id)

    def _others(self) -> list[tuple[int, str, int, str | None]]:
        """Failed rows due for a retry, and `processing` rows whose claimer is gone."""
        now = self.app.clock()
        columns = (WebhookEvent.id, WebhookEvent.status, WebhookEvent.attempts, WebhookEvent.claimed_by)
        with self.app.db.session() as session:
            due = session.execute(
                select(*columns).where(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at.is_not(None),
                                       WebhookEvent.next_attempt_at <= now)
                .order_by(WebhookEvent.id).limit(BATCH)).all()
            busy = session.execute(
                select(*columns, WebhookEvent.claimed_at).where(WebhookEvent.status == "processing")
                .order_by(WebhookEvent.id).limit(BATCH)).all()
        abandoned = [tuple(row[:4]) for row in busy if self._abandoned(row.claimed_by, row.claimed_at, now)]
        return sorted([tuple(row) for row in due] + abandoned)

    def _abandoned(self, claimed_by: str | None, claimed_at: datetime | None, now: datetime) -> bool:
        if claimed_by == self.owner:
            # Ours, yet nothing is in hand between batches: left by a pass that broke off (a
            # database error while recording an outcome). Taken again rather than stranded.
            return True
        host, _, rest = (claimed_by or "").partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            return True
        return claimed_at is None or now - claimed_at > self.stale_claim

    def _claim(self, candidate: tuple[int, str, int, str | None]) -> StoredEvent | None:
        """Take one row if it is still as read (status, attempts, claimer): one claimer wins."""
        row_id, status, attempts, claimed_by = candidate
        now = self.app.clock()
        with write_session(self.app.db) as session:
            row = session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == row_id, WebhookEvent.status == status, WebhookEvent.attempts == attempts,
                       WebhookEvent.claimed_by.is_(None) if claimed_by is None
                       else WebhookEvent.claimed_by == claimed_by)
                .values(status="processing", claimed_by=self.owner, claimed_at=now, attempts=attempts + 1,
                        next_attempt_at=None)
                .returning(*_EVENT_COLUMNS)
                .execution_options(synchronize_session=False)
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
        with write_session(self.app.db) as session:
            for event in events:
                session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id == event.id, WebhookEvent.claimed_by == self.owner,
                           WebhookEvent.status == "processing")
                    .values(status="pending", claimed_by=None, claimed_at=None, attempts=event.attempts - 1)
                    .execution_options(synchronize_session=False))

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

    def process(self, event: StoredEvent) -> Handled:
        """Run the topic's handler (the row is claimed by this worker)."""
        handler = self.handlers.get(event.topic)
        if handler is None:
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
        if named is None and event.topic in ("app/uninstalled", "shop/redact"):
            return Handled("ignored", "the body does not name the shop")
        return handler(event)

    def _finish(self, event: StoredEvent, handled: Handled) -> None:
        now = self.app.clock()
        with write_session(self.app.db) as session:
            changed = session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id, WebhookEvent.claimed_by == self.owner,
                       WebhookEvent.status == "processing")
                .values(status=handled.status, result=handled.result[:2000], error=None, processed_at=now,
                        next_attempt_at=None, body="")
                .execution_options(synchronize_session=False)
            ).rowcount
        if not changed:
            log.warning("webhook %s: processed, but another worker had taken it over meanwhile", event.webhook_id)
            return
        log.info("webhook %s (%s, %s): %s — %s", event.webhook_id, event.topic, event.shop, handled.status,
                 handled.result)

    def _fail(self, event: StoredEvent, error: str, *, final: bool) -> None:
        now = self.app.clock()
        retry_at = None if final else now + min(RETRY_BASE * 2 ** max(event.attempts - 1, 0), RETRY_MAX)
        with write_session(self.app.db) as session:
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id, WebhookEvent.claimed_by == self.owner,
                       WebhookEvent.status == "processing")
                .values(status="failed", error=error[:2000], next_attempt_at=retry_at, processed_at=now)
                .execution_options(synchronize_session=False))
        if final:
            log.error("webhook %s (%s, %s) failed for good after %d attempts: %s", event.webhook_id, event.topic,
                      event.shop, event.attempts, error)
        else:
            log.warning("webhook %s (%s, %s) failed (attempt %d), retried at %s: %s", event.webhook_id, event.topic,
                        event.shop, event.attempts, f"{retry_at:%H:%M:%S} UTC", error)

    def prune(self) -> int:
        """Delete finished rows past their keeping time; returns how many."""
        now = self.app.clock()
        with write_session(self.app.db) as session:
            return session.execute(
                delete(WebhookEvent).where(or_(
                    and_(WebhookEvent.status.in_(("done", "ignored")), WebhookEvent.received_at < now - KEEP_DONE),
                    and_(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at.is_(None),
                         WebhookEvent.received_at < now - KEEP_FAILED)))
                .execution_options(synchronize_session=False)).rowcount

    # -- orders ------------------------------------------------------------------------
    def _order_created(self, event: StoredEvent) -> Handled:
        jobs = alert_jobs(self.app, event.shop)
        if not jobs:
            return Handled("ignored", f"no shopify-order-alert job for {event.shop}")
        order = event.payload()
        gid = order_gid(order)
        if gid is None:
            return Handled("ignored", "the order has no id")
        if any(job.params.on_update for job in jobs):
            self._write_snapshot(event.shop, gid, order_snapshot(order), parse_time(order.get("updated_at")),
                                 event.triggered_at)
        summary = self._alert(jobs, f"order:{gid}", order, "new", ())
        return Handled("done", f"new order {order.get('name') or gid}: {summary}")

    def _order_updated(self, event: StoredEvent) -> Handled:
        jobs = [job for job in alert_jobs(self.app, event.shop) if job.params.on_update]
        if not jobs:
            return Handled("ignored", f"no shopify-order-alert job for {event.shop} alerts on order changes")
        order = event.payload()
        gid = order_gid(order)
        if gid is None:
            return Handled("ignored", "the order has no id")
        updated_at = parse_time(order.get("updated_at"))
        new = order_snapshot(order)
        with self.app.db.session() as session:
            row = session.execute(select(OrderSnapshot).where(OrderSnapshot.shop == event.shop,
                                                              OrderSnapshot.order_id == gid)).scalar_one_or_none()
            old = (row.updated_at, row.last_event_at, json.loads(row.snapshot_json)) if row else None
        if old is None:
            self._write_snapshot(event.shop, gid, new, updated_at, event.triggered_at)
            return Handled("done", f"order {gid}: no snapshot yet; stored one, nothing to compare")
        if _stale(old[0], old[1], updated_at, event.triggered_at):
            return Handled("ignored", f"stale: order {gid} changed at {_iso(updated_at or event.triggered_at)}, "
                                      f"the snapshot is from {_iso(old[0] or old[1])}")
        changes = snapshot_changes(old[2], new)
        summary = "no change of address or items"
        if changes:
            stamp = _iso(updated_at or event.triggered_at) if (updated_at or event.triggered_at) else event.webhook_id
            summary = self._alert(jobs, _slot_key(f"order-update:{gid}:{stamp}"), order, "updated", changes)
        # Written after the alert: a crash in between re-compares and the deliveries table skips
        # whoever already got it; written before, the alert would be lost.
        self._write_snapshot(event.shop, gid, new, updated_at, event.triggered_at)
        return Handled("done", f"order {order.get('name') or gid}: {', '.join(changes) or 'unchanged'}; {summary}")

    def _alert(self, jobs: list["JobConfig"], slot_key: str, order: dict[str, Any], kind: str,
               changes: tuple | list) -> str:
        """Deliver the alert of each job; AlertFailed (after trying all) if some recipient failed."""
        sent, problems = 0, []
        for job in jobs:
            try:
                outcome = alert_outcome(job, order, event=kind, changes=changes, timezone=self.app.config.timezone)
                report = self.alerts.deliver(job, slot_key, outcome)
            except Exception as exc:  # noqa: BLE001 — one job's problem must not stop the others
                log.exception("%s: alert %s failed", job.name, slot_key)
                problems.append(f"{job.name}: {type(exc).__name__}: {exc}")
                continue
            sent += report.count("sent")
            problems += [f"{job.name} → {problem}" for problem in problems_of(report)]
        if problems:
            raise AlertFailed("; ".join(problems))
        return f"{sent} alert(s) sent"

    def _write_snapshot(self, shop: str, gid: str, snapshot: dict[str, Any], updated_at: datetime | None,
                        event_at: datetime | None) -> bool:
        """Insert, or replace unless the stored one is newer; True if written."""
        values = dict(updated_at=updated_at, last_event_at=event_at,
                      snapshot_json=json.dumps(snapshot, ensure_ascii=False, sort_keys=True))
        with write_session(self.app.db) as session:
            inserted = session.execute(
                insert_for(session.bind.dialect.name, OrderSnapshot).values(shop=shop, order_id=gid, created_at=self.app.clock(), **values)
                .on_conflict_do_nothing(index_elements=["shop", "order_id"]).returning(OrderSnapshot.id)
            ).scalar_one_or_none()
            if inserted is not None:
                return True
            return bool(session.execute(
                update(OrderSnapshot)
                .where(OrderSnapshot.shop == shop, OrderSnapshot.order_id == gid, _not_older(updated_at, event_at))
                .values(**values).execution_options(synchronize_session=False)).rowcount)

    # -- the app and the compliance topics ---------------------------------------------
    def _app_uninstalled(self, event: StoredEvent) -> Handled:
        self.app.shopify_tokens.uninstalled(event.shop, event.app)
        return Handled("done", f"app {event.app!r} uninstalled from {event.shop}: tokens wiped")

    def _data_request(self, event: StoredEvent) -> Handled:
        payload = event.payload()
        gids = _order_gids(payload.get("orders_requested"))
        with self.app.db.session() as session:
            held = sorted(session.scalars(select(OrderSnapshot.order_id).where(
                OrderSnapshot.shop == event.shop, OrderSnapshot.order_id.in_(gids))))
        customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
        request = payload.get("data_request") if isinstance(payload.get("data_request"), dict) else {}
        report = (f"customer data request {request.get('id', '?')} from {event.shop} for customer "
                  f"{customer.get('id', '?')}: of the {len(gids)} order(s) named, the bot holds "
                  + (f"{len(held)}: {', '.join(held)} — for each only a digest of the shipping address and the "
                     "line items' SKUs and quantities" if held else "none")
                  + "; it keeps no customer names, e-mail addresses or phone numbers")
        log.warning("%s: send this to the shop owner", report)
        return Handled("done", report)

    def _customer_redact(self, event: StoredEvent) -> Handled:
        payload = event.payload()
        gids = _order_gids(payload.get("orders_to_redact"))
        with write_session(self.app.db) as session:
            deleted = session.execute(delete(OrderSnapshot).where(
                OrderSnapshot.shop == event.shop, OrderSnapshot.order_id.in_(gids))
                .execution_options(synchronize_session=False)).rowcount
            # Unfinished events about those orders still hold their bodies: empty them.
            kept = session.execute(select(WebhookEvent.id, WebhookEvent.body).where(
                WebhookEvent.shop == event.shop, WebhookEvent.id != event.id, WebhookEvent.body != "",
                WebhookEvent.topic.like("orders/%"), WebhookEvent.status != "processing")).all()
            emptied = [row.id for row in kept if _body_order(row.body) in gids]
            if emptied:
                session.execute(update(WebhookEvent).where(WebhookEvent.id.in_(emptied)).values(body="")
                                .execution_options(synchronize_session=False))
        return Handled("done", f"customer redaction: {deleted} order snapshot(s) and {len(emptied)} stored "
                               f"event body(ies) deleted of the {len(gids)} order(s) named")

    def _shop_redact(self, event: StoredEvent) -> Handled:
        from bot.reconcile import state_key

        with write_session(self.app.db) as session:
            snapshots = session.execute(delete(OrderSnapshot).where(OrderSnapshot.shop == event.shop)
                                        .execution_options(synchronize_session=False)).rowcount
            events = session.execute(delete(WebhookEvent).where(WebhookEvent.shop == event.shop,
                                                                WebhookEvent.id != event.id)
                                     .execution_options(synchronize_session=False)).rowcount
            session.execute(delete(JobMemory).where(JobMemory.job == state_key(event.shop))
                            .execution_options(synchronize_session=False))
        return Handled("done", f"shop redaction: {snapshots} order snapshot(s) and {events} stored event(s) "
                               f"of {event.shop} deleted")


# -- snapshots ---------------------------------------------------------------------------------


def order_snapshot(order: dict[str, Any]) -> dict[str, Any]:
    """What a change alert compares: the shipping address's digest and the (sku, quantity) multiset."""
    address = order.get("shipping_address")
    digest = None
    if isinstance(address, dict) and any(address.get(key) not in (None, "") for key in ADDRESS_FIELDS):
        canonical = {key: " ".join(str(address.get(key) or "").split()) for key in ADDRESS_FIELDS}
        digest = hashlib.sha256(json.dumps(canonical, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    items: dict[str, int] = {}
    for item in order.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        quantity = item.get("current_quantity", item.get("quantity"))
        try:
            quantity = int(quantity) if not isinstance(quantity, bool) else 0
        except (TypeError, ValueError):
            quantity = 0
        if quantity <= 0:
            continue  # removed by an order edit
        key = _item_key(item)
        items[key] = items.get(key, 0) + quantity
    return {"v": 1, "address": digest, "items": sorted([key, qty] for key, qty in items.items())}


def snapshot_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    if old.get("address") != new.get("address"):
        changes.append("shipping_address")
    if [list(pair) for pair in old.get("items") or []] != [list(pair) for pair in new.get("items") or []]:
        changes.append("line_items")
    return changes


def _item_key(item: dict[str, Any]) -> str:
    sku = item.get("sku")
    if isinstance(sku, str) and sku.strip():
        return f"sku:{sku.strip()}"
    for key in ("variant_id", "product_id"):
        if item.get(key) not in (None, ""):
            return f"{key.split('_')[0]}:{item[key]}"
    return f"name:{' '.join(str(item.get('name') or item.get('title') or '').split())}"


def _stale(snap_updated: datetime | None, snap_event: datetime | None, updated: datetime | None,
           event_at: datetime | None) -> bool:
    """True if the event is older than the snapshot: by the order's updated_at, then the event time."""
    if updated is not None and snap_updated is not None and updated != snap_updated:
        return updated < snap_updated
    return event_at is not None and snap_event is not None and event_at < snap_event


def _not_older(updated: datetime | None, event_at: datetime | None):  # noqa: ANN202 (SQL condition)
    """SQL: the stored snapshot is not newer than (updated, event_at) — the mirror of `_stale`."""
    stored = OrderSnapshot
    newer_source = (or_(stored.updated_at.is_(None), stored.updated_at < updated) if updated is not None
                    else false())
    same_source = (or_(stored.updated_at.is_(None), stored.updated_at == updated) if updated is not None
                   else true())
    event_ok = (or_(stored.last_event_at.is_(None), stored.last_event_at <= event_at) if event_at is not None
                else true())
    return or_(newer_source, and_(same_source, event_ok))


def _order_gids(ids: Any) -> list[str]:
    if not isinstance(ids, list):
        return []
    return [gid for gid in (order_gid({"id": value}) for value in ids) if gid]


def _body_order(body: str) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return order_gid(payload) if isinstance(payload, dict) else None


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z") if moment else "?"


def _slot_key(key: str) -> str:
    if len(key) <= SLOT_KEY_MAX:
        return key
    return key[:SLOT_KEY_MAX - 17] + "#" + hashlib.sha256(key.encode()).hexdigest()[:16]
