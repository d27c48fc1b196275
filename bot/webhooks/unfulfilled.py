"""The check behind `shopify-unfulfilled-alert` jobs (jobs.shopify_unfulfilled_alert): on the service's scheduler.

Every CHECK_EVERY seconds (bot.service.run.register_unfulfilled_checks; the first pass at start-up)
each job's shop is asked for its open, unfulfilled orders created between `max_age_days` and
`hours` ago (bot.shopify.order_checks.fetch_unfulfilled), and each one not cancelled and not a
test is alerted under `unfulfilled:<order gid>`. The deliveries table makes that once per order
and recipient across passes, restarts and instances; an order already settled (delivery rows,
none failed) is skipped before anything is rendered. A shop that cannot be queried is logged and
covered by the next pass.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alerts import AlertSender, problems_of
from bot.shopify.order_checks import fetch_unfulfilled
from bot.store.models import Delivery
from bot.util.keys import SLOT_KEY_MAX, fit_key
from bot.util.logs import redact
from jobs.shopify_unfulfilled_alert import KIND, is_alertable, unfulfilled_outcome

log = logging.getLogger(__name__)

CHECK_EVERY = 1800.0


def unfulfilled_jobs(app: App) -> list[JobConfig]:
    """The configured `shopify-unfulfilled-alert` jobs."""
    return [job for job in app.jobs() if job.kind == KIND]


def unfulfilled_slot_key(gid: str) -> str:
    return fit_key(f"unfulfilled:{gid}", SLOT_KEY_MAX, digest_chars=16, keep_head=True)


class UnfulfilledCheck:
    def __init__(self, app: App, *, alerts: AlertSender | None = None, stopping: threading.Event | None = None):
        self.app = app
        self.alerts = alerts or AlertSender(app)
        self.stopping = stopping or threading.Event()

    def run_once(self, now: datetime | None = None) -> int:
        """One pass over every job; returns the number of orders newly alerted."""
        now = now or self.app.clock()
        raised = 0
        for job in unfulfilled_jobs(self.app):
            if self.stopping.is_set():
                break
            try:
                raised += self._job(job, now)
            except Exception as exc:  # noqa: BLE001 — one shop that cannot be queried must not stop the others
                log.error("%s: unfulfilled-orders check of %s failed (covered by the next pass): %s", job.name,
                          job.params.shop, redact(f"{type(exc).__name__}: {exc}"))
        return raised

    def _job(self, job: JobConfig, now: datetime) -> int:
        params = job.params
        orders = list(fetch_unfulfilled(self.app.shopify_graphql(params.shop),
                                        created_from=now - timedelta(days=params.max_age_days),
                                        created_to=now - timedelta(hours=params.hours)))
        raised, problems = 0, []
        for order in orders:
            if not is_alertable(order):
                continue
            key = unfulfilled_slot_key(order["id"])
            if self._settled(job, key):
                continue
            outcome = unfulfilled_outcome(job, order, now.astimezone(self.app.config.timezone),
                                          self.app.config.timezone)
            report = self.alerts.deliver(job, key, outcome)
            problems += [f"{order.get('name') or order['id']} {problem}" for problem in problems_of(report)]
            if report.count("sent"):
                raised += 1
        if problems:
            log.error("%s: some unfulfilled-order alerts failed (retried at the next pass): %s", job.name,
                      "; ".join(problems))
        log.info("%s: %d unfulfilled order(s) older than %d h, %d alerted", job.name, len(orders), params.hours,
                 raised)
        return raised

    def _settled(self, job: JobConfig, slot_key: str) -> bool:
        """Delivered before (rows, none failed): nothing to render or resolve again."""
        with self.app.db.session() as session:
            statuses = set(session.scalars(select(Delivery.status).where(Delivery.job == job.name,
                                                                         Delivery.slot_key == slot_key)))
        return bool(statuses) and "failed" not in statuses
