"""`inventory_levels/update` → low / out-of-stock alerts of `shopify-stock-alert` jobs (jobs.shopify_stock_alert).

The webhook says that one location's `available` quantity of an inventory item changed; it only
triggers the check. The stock that counts is read with GraphQL (bot.shopify.inventory): the
item's `available` summed over all its locations, with the variant's name and SKU. So a webhook
that arrives late still sees today's stock, never an old one.

Per (job, inventory item) the job memory (`stock:<job>`, key = the item's gid) keeps
`{"low": bool, "n": crossings so far, "at": the newest updated_at handled}`:

- above → low: crossing n+1 is alerted under `stock:<item gid>:<n+1>`, then the state is written
  (a crash in between recomputes the same n: the deliveries table sends nobody twice);
- low → low: nothing; low → above: re-armed (no message);
- a webhook whose `updated_at` is older than `at` is stale (out of order) and changes nothing.

States are written only if unchanged since read (compare-and-set): of two instances handling two
webhooks of one item at once, both compute the same crossing n and the same slot key, and one
write wins; the other reads again. An alert that failed for some recipient leaves the state as
it was, so the retried event retakes the same crossing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import update

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alerts import AlertFailed, AlertSender, problems_of
from bot.shopify.inventory import InventoryItem, fetch_inventory_item, inventory_item_gid
from bot.store.db import insert_for
from bot.store.models import JobMemory
from bot.util.keys import MEMORY_NAME_MAX, SLOT_KEY_MAX, fit_key
from bot.util.times import parse_instant
from jobs.shopify_stock_alert import KIND, stock_outcome

log = logging.getLogger(__name__)

WRITE_TRIES = 5  # compare-and-set attempts per (job, item) before giving up (the event is retried)

Result = tuple[str, str]  # (status "done" | "ignored", what happened) — topics.Handled's fields


def stock_jobs(app: App, shop: str | None = None) -> list[JobConfig]:
    """The configured `shopify-stock-alert` jobs (of `shop`, when given)."""
    return [job for job in app.jobs() if job.kind == KIND and (shop is None or job.params.shop == shop)]


def memory_name(job_name: str) -> str:
    """The job-memory name of a job's crossing states."""
    return fit_key(job_name, MEMORY_NAME_MAX, prefix="stock:")


def stock_slot_key(item_gid: str, crossing: int) -> str:
    """`stock:<inventory item gid>:<crossing n>`."""
    return fit_key(f"stock:{item_gid}:{crossing}", SLOT_KEY_MAX, digest_chars=16, keep_head=True)


class StockAlerts:
    def __init__(self, app: App, alerts: AlertSender, *,
                 fetch: Callable[[App, str, str], InventoryItem | None] | None = None):
        self.app, self.alerts = app, alerts
        self.fetch = fetch or (lambda app, shop, gid: fetch_inventory_item(app.shopify_graphql(shop), gid))

    def inventory_updated(self, shop: str, payload: dict[str, Any], triggered_at: datetime | None) -> Result:
        jobs = stock_jobs(self.app, shop)
        if not jobs:
            return "ignored", f"no {KIND} job for {shop}"
        gid = inventory_item_gid(payload.get("inventory_item_id"))
        if gid is None:
            return "ignored", "malformed: no valid inventory_item_id"
        available = payload.get("available")
        if available is not None and (isinstance(available, bool) or not isinstance(available, int)):
            return "ignored", f"malformed: available is {type(available).__name__}, not a number"
        stamp = parse_instant(payload.get("updated_at")) if payload.get("updated_at") is not None else None
        if payload.get("updated_at") is not None and stamp is None:
            return "ignored", "malformed: updated_at is not a time"
        stamp = stamp or triggered_at
        item = self.fetch(self.app, shop, gid)  # raises (and the event is retried) when Shopify cannot answer
        if item is None:
            return "ignored", f"inventory item {gid} is unknown to Shopify (deleted?)"
        if not item.tracked:
            return "ignored", f"{item.variant_name or gid}: Shopify does not track its inventory"
        outcomes, problems = [], []
        for job in jobs:
            try:
                outcomes.append(f"{job.name}: {self._job(job, item, stamp)}")
            except AlertFailed as exc:
                problems.append(f"{job.name}: {exc}")
        if problems:
            raise AlertFailed("; ".join(problems))
        return "done", f"{item.variant_name or gid} ({item.sku or 'no SKU'}): {item.available} available; " \
                       + "; ".join(outcomes)

    def _job(self, job: JobConfig, item: InventoryItem, stamp: datetime | None) -> str:
        threshold = job.params.threshold_for(item.sku, item.product_title)
        low = item.available <= threshold
        for _ in range(WRITE_TRIES):
            text, state = self._read(job, item.gid)
            at = parse_instant(state.get("at"))
            if at is not None and stamp is not None and stamp < at:
                return f"stale: changed at {_iso(stamp)}, already handled {_iso(at)}"
            newest = max((moment for moment in (at, stamp) if moment is not None), default=None)
            was_low, crossing = bool(state.get("low")), int(state.get("n") or 0)
            what = "unchanged"
            if low and not was_low:
                crossing += 1
                key = stock_slot_key(item.gid, crossing)
                outcome = stock_outcome(job, name=item.variant_name, sku=item.sku, available=item.available,
                                        threshold=threshold, locations=item.locations)
                report = self.alerts.deliver(job, key, outcome)
                failed = problems_of(report)
                if failed:
                    raise AlertFailed(f"{key}: " + "; ".join(failed))
                what = f"crossed below {threshold} (crossing {crossing}): {report.count('sent')} sent"
            elif was_low and not low:
                what = f"restocked above {threshold}: re-armed"
            new = {"low": low, "n": crossing, "at": newest.isoformat() if newest else None}
            if new == state or self._write(job, item.gid, text, new):
                return what
        raise AlertFailed(f"the stock state of {item.gid} kept changing under this worker; retried later")

    def _read(self, job: JobConfig, gid: str) -> tuple[str | None, dict[str, Any]]:
        with self.app.db.session() as session:
            row = session.get(JobMemory, (memory_name(job.name), _item_key(gid)))
            return (row.value_json, json.loads(row.value_json)) if row else (None, {})

    def _write(self, job: JobConfig, gid: str, old_text: str | None, value: dict[str, Any]) -> bool:
        """Store `value` if the row is still `old_text` (None: absent); False when another writer came first."""
        name, key, text, now = memory_name(job.name), _item_key(gid), json.dumps(value), self.app.clock()
        with self.app.db.session() as session:
            if old_text is None:
                statement = insert_for(session.bind.dialect.name, JobMemory).values(
                    job=name, key=key, value_json=text, updated_at=now).on_conflict_do_nothing(
                    index_elements=["job", "key"])
            else:
                statement = (update(JobMemory).where(JobMemory.job == name, JobMemory.key == key,
                                                     JobMemory.value_json == old_text)
                             .values(value_json=text, updated_at=now).execution_options(synchronize_session=False))
            return bool(session.execute(statement).rowcount)


def _item_key(gid: str) -> str:
    return fit_key(gid, MEMORY_NAME_MAX)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()
