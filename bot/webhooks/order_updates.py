"""What `orders/updated` does, for a run of such events claimed together: compare, alert, snapshot.

Each event is compared with the stored snapshot of its order (`bot.webhooks.order_snapshots`): a
change of the shipping address or the line items alerts the shop's `shopify-order-alert` jobs that
have `on_update`; no snapshot yet stores one without an alert; an event older than the snapshot
(its updated_at, then X-Shopify-Triggered-At: `is_stale`) is ignored as stale.

Coalescing. Helper apps touch an order many times in a row, and every touch is a delivery. Of the
updates of one order in a run, only the newest can decide the snapshot, so the ones strictly older
than it are not compared at all: stored before the newest, they end `done`, "superseded by webhook
<id>"; stored after it, `ignored` as stale (as they would be if handled after it) — in the same
transaction as the newest one's outcome (so a crash leaves all of them to be retaken together). The
alert, if any, compares the stored snapshot with the newest state: several changes in one run are
one alert, and a change undone within the run (an address changed and changed back before the
worker got to it) is none — the merchant is told what the order is now, as an order processed
late would tell anyway. Only `orders/updated` coalesces: no other handler reads it (cancellations
and refunds have topics of their own, each delivery of which is handled).

The snapshots of the whole run are read in one statement and written in one round trip (`upsert_snapshots`,
guarded so that no older state overwrites a newer one written meanwhile by another worker); the
caller writes them in the transaction that records the outcomes. Alerts go out before that
transaction: a crash in between re-compares after the restart, and the deliveries table (its
unique job, slot key and recipient) skips whoever already got the alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alerts import AlertFailed, AlertSender, alert_jobs
from bot.shopify.orders import order_gid
from bot.util.keys import SLOT_KEY_MAX, fit_key
from bot.webhooks.inbox import parse_time
from bot.webhooks.order_snapshots import (
    SnapshotWrite,
    StoredSnapshot,
    is_stale,
    order_snapshot,
    read_snapshots,
    snapshot_changes,
)
from bot.webhooks.stored import Handled, StoredEvent

TOPIC = "orders/updated"
SUPERSEDED = "superseded by webhook "  # how a superseded update's result starts (the worker's summary counts them)


@dataclass(frozen=True)
class _Update:
    """One event of the run, read: its order, that order's gid and updated_at."""

    event: StoredEvent
    order: dict[str, Any]
    gid: str
    updated_at: datetime | None

    @property
    def key(self) -> tuple[str, str]:
        return self.event.shop, self.gid

    def older_than(self, other: "_Update") -> bool:
        return is_stale(other.updated_at, other.event.triggered_at, self.updated_at, self.event.triggered_at)


@dataclass
class RunResult:
    """What a run came to: outcomes to record, failures to retry, snapshots to write."""

    outcomes: list[tuple[StoredEvent, Handled]] = field(default_factory=list)
    failures: list[tuple[StoredEvent, str]] = field(default_factory=list)  # an alert failed: retried
    writes: list[SnapshotWrite] = field(default_factory=list)


class OrderUpdates:
    """The orders/updated handling of one App; `alerts` delivers (and deduplicates) the alerts."""

    def __init__(self, app: App, alerts: AlertSender):
        self.app, self.alerts = app, alerts

    def handle(self, events: list[StoredEvent]) -> RunResult:
        """Handle a run of orders/updated events (in id order, all claimed by the caller)."""
        result = RunResult()
        groups: dict[tuple[str, str], list[_Update]] = {}
        jobs_of: dict[str, list[JobConfig]] = {}
        for event in events:
            if event.shop not in jobs_of:
                jobs_of[event.shop] = [job for job in alert_jobs(self.app, event.shop) if job.params.on_update]
            update = self._read(event, jobs_of[event.shop], result)
            if update is not None:
                groups.setdefault(update.key, []).append(update)
        if not groups:
            return result
        with self.app.db.engine.connect() as connection:
            stored = read_snapshots(connection, groups)
        for key, updates in groups.items():
            self._order(updates, stored.get(key), jobs_of[key[0]], result)
        return result

    def _read(self, event: StoredEvent, jobs: list[JobConfig], result: RunResult) -> _Update | None:
        if not jobs:
            result.outcomes.append((event, Handled(
                "ignored", f"no shopify-order-alert job for {event.shop} alerts on order changes")))
            return None
        order = event.payload()
        gid = order_gid(order)
        if gid is None:
            result.outcomes.append((event, Handled("ignored", "the order has no id")))
            return None
        return _Update(event, order, gid, parse_time(order.get("updated_at")))

    def _order(self, updates: list[_Update], old: StoredSnapshot | None, jobs: list[JobConfig],
               result: RunResult) -> None:
        """The updates of one order: the superseded ones settled, the others compared in turn."""
        newest = updates[0]
        for update in updates[1:]:
            if not update.older_than(newest):
                newest = update  # of equals, the later stored
        written: _Update | None = None
        for update in updates:
            if update is not newest and update.older_than(newest):
                result.outcomes.append((update.event, _passed_over(update, newest)))
                continue
            handled, snapshot = self._compare(update, old, jobs, result)
            if handled is not None:
                result.outcomes.append((update.event, handled))
            if snapshot is not None:
                old, written = snapshot, update
        if written is not None:
            result.writes.append(SnapshotWrite(written.event.shop, written.gid, old.snapshot, written.updated_at,
                                               written.event.triggered_at))

    def _compare(self, update: _Update, old: StoredSnapshot | None, jobs: list[JobConfig],
                 result: RunResult) -> tuple[Handled | None, StoredSnapshot | None]:
        """One update against the snapshot: its outcome (None if it failed) and the new snapshot, if any."""
        event, gid, updated_at = update.event, update.gid, update.updated_at
        new = StoredSnapshot(updated_at, event.triggered_at, order_snapshot(update.order))
        if old is None:
            return Handled("done", f"order {gid}: no snapshot yet; stored one, nothing to compare"), new
        if is_stale(old.updated_at, old.last_event_at, updated_at, event.triggered_at):
            return Handled("ignored", f"stale: order {gid} changed at {iso(updated_at or event.triggered_at)}, "
                                      f"the snapshot is from {iso(old.updated_at or old.last_event_at)}"), None
        changes = snapshot_changes(old.snapshot, new.snapshot)
        summary = "no change of address or items"
        if changes:
            moment = updated_at or event.triggered_at
            stamp = iso(moment) if moment else event.webhook_id
            try:
                summary = send_order_alert(self.alerts, jobs, update_slot_key(f"order-update:{gid}:{stamp}"),
                                           update.order, "updated", changes)
            except AlertFailed as exc:
                result.failures.append((event, str(exc)))
                return None, None
        name = update.order.get("name") or gid
        return Handled("done", f"order {name}: {', '.join(changes) or 'unchanged'}; {summary}"), new


def _passed_over(update: _Update, newest: _Update) -> Handled:
    """An older update not compared: superseded if stored before the newest, else stale, as it would be
    if handled after the newest (the order in which they were stored decides, not their claim)."""
    if update.event.id > newest.event.id:
        return Handled("ignored", f"stale: order {update.gid} changed at "
                                  f"{iso(update.updated_at or update.event.triggered_at)}, the snapshot is from "
                                  f"{iso(newest.updated_at or newest.event.triggered_at)}")
    return Handled("done", f"{SUPERSEDED}{newest.event.webhook_id}, a newer update of order {update.gid}")


def send_order_alert(alerts: AlertSender, jobs: list[JobConfig], slot_key: str, order: dict[str, Any], kind: str,
                     changes: Iterable[str]) -> str:
    """Deliver the alert of each job; AlertFailed (after trying all) if some recipient failed."""
    sent, problems = alerts.alert_order(jobs, slot_key, order, event=kind, changes=changes)
    if problems:
        raise AlertFailed("; ".join(problems))
    return f"{sent} alert(s) sent"


def update_slot_key(key: str) -> str:
    """An order update's delivery key, cut to the column with a digest of the whole (two long keys stay distinct)."""
    return fit_key(key, SLOT_KEY_MAX, digest_chars=16, keep_head=True)


def iso(moment: datetime | None) -> str:
    """A time as Shopify writes it (UTC, Z; microseconds only when there are any); "?" for none."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z") if moment else "?"
