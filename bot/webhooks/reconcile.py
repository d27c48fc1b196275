"""Reconciliation: the order alerts a lost webhook would have raised.

Shopify does not guarantee webhook delivery. Every INTERVAL seconds (a job on the service's scheduler,
bot.service.run.register_reconciliation; the first pass at start-up), for each shop with a
`shopify-order-alert` job, the orders created since the previous pass (minus `overlap`, for
orders that reach Shopify's search a little late) are queried through the Admin GraphQL API,
and each is alerted exactly as `orders/create` would: same job, same slot key
`order:<order gid>`. An order already alerted — by its webhook or an earlier pass — finds its
deliveries recorded and is not sent again; the passes may overlap freely.

Where a pass ended is kept per shop in the job memory (`reconcile:<shop>`) and advanced only
after a pass of that shop succeeded: a failed query is simply covered by the next pass. The
first pass looks back `first_window`; after a long stop at most `max_window`. An order created
before its job's alerting started (`bot.delivery.alert_start`: the shop's connection, the job's first
sighting) is never alerted: it is not new to anybody.

For shops with `shopify-refund-alert` jobs the same pass lists the orders *updated* since the window's
start with their `cancelledAt` and `refunds` (bot.shopify.order_events_query) and raises each
cancellation and refund as `orders/cancelled` and `refunds/create` would (bot.webhooks.refund_alerts:
slot keys `cancel:<order gid>`, `refund:<refund gid>`), so a lost webhook still yields its alert once.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from bot.app import App
from bot.delivery.alert_start import alert_starts, jobs_for_new_order
from bot.delivery.alerts import AlertSender, alert_jobs
from bot.shopify.orders import order_gid
from bot.shopify.order_events_query import fetch_order_events
from bot.shopify.orders_query import fetch_orders
from bot.store.job_memory import StoredJobState
from bot.util.keys import MEMORY_NAME_MAX, fit_key
from bot.util.logs import redact
from bot.webhooks.inbox import parse_time
from bot.webhooks.refund_alerts import RefundAlerts, refund_jobs

log = logging.getLogger(__name__)

INTERVAL = 300.0
OVERLAP = timedelta(minutes=2)
FIRST_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=1)
LINE_ITEMS = 25  # line items read per order (the alert names a few and counts them)


def state_key(shop: str) -> str:
    """The job-memory name under which a shop's reconciliation remembers where it ended."""
    return fit_key(shop, MEMORY_NAME_MAX, prefix="reconcile:", mark="")


class Reconciler:
    def __init__(self, app: App, *, stopping: threading.Event | None = None, overlap: timedelta = OVERLAP,
                 first_window: timedelta = FIRST_WINDOW, max_window: timedelta = MAX_WINDOW,
                 alerts: AlertSender | None = None):
        self.app = app
        self.overlap, self.first_window, self.max_window = overlap, first_window, max_window
        self.alerts = alerts or AlertSender(app)
        # Set when the service stops: the pass ends after the shop in progress; the next start covers the rest.
        self.stopping = stopping or threading.Event()

    def run_once(self, now: datetime | None = None) -> int:
        """One pass over every shop with alert jobs; returns the number of orders newly alerted."""
        now = now or self.app.clock()
        raised = 0
        for shop in dict.fromkeys(job.params.shop for job in alert_jobs(self.app) + refund_jobs(self.app)):
            if self.stopping.is_set():
                break
            try:
                raised += self._shop(shop, now)
            except Exception as exc:  # noqa: BLE001 — a shop that cannot be queried must not stop the others
                log.error("order reconciliation of %s failed (covered by the next pass): %s", shop,
                          redact(f"{type(exc).__name__}: {exc}"))
        return raised

    def _shop(self, shop: str, now: datetime) -> int:
    
        state = StoredJobState(self.app.db, state_key(shop))
        since = parse_time(state.get("since")) or now - self.first_window
        since = max(since, now - self.max_window)
        start = since - self.overlap
        jobs = alert_jobs(self.app, shop)
        orders = list(fetch_orders(self.app.shopify_graphql(shop), created_from=start, created_to=now,
                                   line_items=LINE_ITEMS)) if jobs else []
        raised, problems, older = 0, [], 0
        if refund_jobs(self.app, shop):
            for job in refund_jobs(self.app, shop):
                alert_starts(self.app, [job], shop, seen_at=now)  # the job's first sighting, as for new orders
            raised += self._refunds(shop, start, problems)
        starts = alert_starts(self.app, jobs, shop, seen_at=now)
        for order in orders:
            gid = order_gid(order)
            if gid is None:
                continue
            started = jobs_for_new_order(jobs, starts, order)
            if not started:
                older += 1
                continue
            sent, failed = self.alerts.alert_order(started, f"order:{gid}", order)
            problems += [f"{gid} {problem}" for problem in failed]
            if sent:
                raised += 1
                log.warning("%s: order %s was alerted by reconciliation: its webhook did not come (yet)",
                            shop, _name(order, gid))
        state.set("since", now.isoformat())
        if problems:
            log.error("order reconciliation of %s: some alerts failed: %s", shop, "; ".join(problems))
        log.info("order reconciliation of %s: %d order(s) since %s, %d alerted, %d placed before alerting "
                 "started", shop, len(orders), start.isoformat(timespec="seconds"), raised, older)
        return raised


    def _refunds(self, shop: str, start: datetime, problems: list[str]) -> int:
        """Cancellations and refunds of orders updated since `start`, each raised as its webhook would."""
        raising = RefundAlerts(self.app, self.alerts)
        raised = 0
        for order in fetch_order_events(self.app.shopify_graphql(shop), updated_from=start):
            attempts = ([("cancel", lambda: raising.cancelled(shop, order))] if order.get("cancelledAt") else [])
            attempts += [("refund", lambda refund=refund: raising.refunded(shop, refund, order))
                         for refund in order["refunds"]]
            for what, attempt in attempts:
                try:
                    status, result = attempt()
                except Exception as exc:  # noqa: BLE001 — the next pass (the deliveries table) retries it
                    problems.append(f"{order['id']} {what}: {exc}")
                    continue
                if status == "done" and raising.sent_last:
                    raised += 1
                    log.warning("%s: %s was alerted by reconciliation: its webhook did not come (yet)", shop, result)
        return raised


def _name(order: dict[str, Any], gid: str) -> str:
    name = order.get("name")
    return name if isinstance(name, str) and name else gid
