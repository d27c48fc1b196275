"""When new-order alerting started for a (job, shop): orders created before it are never alerted.

A `shopify-order-alert` job announces orders that are *new to its readers*. An order placed
before the shop was connected, or before the bot first ran with the job, is history: the
reconciliation's look-back (and a Shopify webhook retry that arrives after a restart) would
otherwise announce it as new. The start of a (job, shop) is the later of

- the time the shop's install was connected (`installed_at` of its earliest active install;
  a reconnection after an uninstall starts afresh), and
- the time the job was first seen with this shop, recorded once in the job memory (name
  `alert-start:<shop>`, key = job name) and never moved: by `run` at start-up
  (`mark_jobs_seen`) and by the reconciliation's passes. The webhook path only reads it: a
  webhook of a job not yet recorded is measured against the connection time alone.

Order change alerts (`orders/updated`) are about a change made now and are not affected.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from bot.app import App
from bot.config.model import JobConfig
from bot.store.db import insert_for
from bot.store.models import JobMemory
from bot.util.keys import MEMORY_NAME_MAX, fit_key
from bot.util.times import parse_instant
from jobs import job_kind

log = logging.getLogger(__name__)

def memory_name(shop: str) -> str:
    """The job-memory name under which a shop's alert starts are kept (hashed when too long)."""
    return fit_key(shop, MEMORY_NAME_MAX, prefix="alert-start:")


def first_seen_key(job_name: str) -> str:
    """The job memory key under which a job's first sight of a shop is kept."""
    return fit_key(job_name, MEMORY_NAME_MAX)


def mark_jobs_seen(app: App, now: datetime) -> None:
    """Record `now` as the first-seen time of every alert job (a kind not scheduled, of a shop) not
    recorded yet (at `run`'s start)."""
    for job in app.jobs():
        if not getattr(job_kind(job.kind), "SCHEDULED", True) and isinstance(getattr(job.params, "shop", None), str):
            _first_seen(app, job, job.params.shop, record_at=now)


def alerting_since(app: App, job: JobConfig, shop: str, *, seen_at: datetime | None = None) -> datetime | None:
    """The start of `job`'s alerts for `shop` (whole seconds: Shopify's `createdAt` has no fraction);
    None when neither a connection nor a first sighting is known. `seen_at`: record it as the
    first-seen time if none is recorded yet."""
    moments = [moment for moment in (_first_seen(app, job, shop, record_at=seen_at), _connected_at(app, shop))
               if moment is not None]
    return max(moments).replace(microsecond=0) if moments else None


def created_before(order: dict[str, Any], since: datetime | None) -> bool:
    """True if the order (webhook body or GraphQL node) was created before `since`. An order whose
    creation time cannot be read is not held back: a lost alert is worse than an early one."""
    created = parse_instant(order.get("createdAt") or order.get("created_at"))
    return since is not None and created is not None and created < since


def alert_starts(app: App, jobs: list[JobConfig], shop: str, *,
                 seen_at: datetime | None = None) -> dict[str, datetime | None]:
    """`alerting_since` of each of `jobs` (by job name), read once for a batch of orders."""
    return {job.name: alerting_since(app, job, shop, seen_at=seen_at) for job in jobs}


def jobs_for_new_order(jobs: list[JobConfig], starts: dict[str, datetime | None],
                       order: dict[str, Any]) -> list[JobConfig]:
    """Those of `jobs` whose alerting (`starts`, from `alert_starts`) had started when `order` was created."""
    return [job for job in jobs if not created_before(order, starts.get(job.name))]


def _first_seen(app: App, job: JobConfig, shop: str, *, record_at: datetime | None) -> datetime | None:
    name, key = memory_name(shop), first_seen_key(job.name)
    with app.db.session() as session:
        if record_at is not None:
            # Insert-if-absent: of two instances starting at once the first one's time stays.
            session.execute(insert_for(session.bind.dialect.name, JobMemory).values(
                job=name, key=key, value_json=json.dumps(record_at.isoformat()), updated_at=record_at,
            ).on_conflict_do_nothing(index_elements=["job", "key"]))
        row = session.get(JobMemory, (name, key))
        return parse_instant(json.loads(row.value_json)) if row else None


def _connected_at(app: App, shop: str) -> datetime | None:
    active = [status.installed_at for status in app.shopify_tokens.all_status()
              if status.shop == shop and status.active and status.installed_at is not None]
    return min(active) if active else None
