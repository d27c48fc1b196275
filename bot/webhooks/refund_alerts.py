"""What `orders/cancelled` and `refunds/create` do: the alerts of `shopify-refund-alert` jobs.

Each event is one delivery per recipient under a slot key both paths derive from Shopify's ids —
`cancel:<order gid>`, `refund:<refund gid>` — so the webhook, its redeliveries, a restart, a second
instance and the reconciliation (bot.webhooks.reconcile) all meet in the deliveries table and the
alert goes out once. A body without a usable id is ignored with the reason (never retried, never a
500: the route answered long before). Quiet hours and quotas are AlertSender.deliver's business.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alert_start import alerting_since
from bot.delivery.alerts import AlertFailed, AlertSender, problems_of
from bot.shopify.orders import order_gid
from bot.store.order_names import names_for
from bot.store.order_names import remember as remember_order_name
from bot.util.times import parse_instant
from jobs.base import Outcome
from jobs.shopify_refund_alert import KIND, cancel_outcome, refund_outcome, wants
from jobs.shopify_refunds import refund_gid

log = logging.getLogger(__name__)


def refund_jobs(app: App, shop: str | None = None) -> list[JobConfig]:
    """The configured `shopify-refund-alert` jobs (of `shop`, when given)."""
    return [job for job in app.jobs() if job.kind == KIND and (shop is None or job.params.shop == shop)]


def cancel_key(order_id: str) -> str:
    return f"cancel:{order_id}"


def refund_key(refund_id: str) -> str:
    return f"refund:{refund_id}"


class RefundAlerts:
    """Raises cancellation and refund alerts for the jobs that want them; used by both paths."""

    def __init__(self, app: App, alerts: AlertSender):
        self.app, self.alerts = app, alerts
        self.sent_last = 0  # messages the last call sent (0: already sent, held, or not wanted)

    def cancelled(self, shop: str, order: dict[str, Any]) -> tuple[str, str]:
        """(status, result) of alerting a cancelled order (REST body or GraphQL node)."""
        gid = order_gid(order)
        if gid is None:
            return "ignored", "the order has no id"
        if not (order.get("cancelled_at") or order.get("cancelledAt")):
            return "ignored", f"order {gid} is not cancelled (no cancelled_at)"
        zone = self.app.config.timezone
        outcomes = [(job, cancel_outcome(job, order, timezone=zone)) for job in self._jobs(shop, order)]
        return self._deliver(outcomes, "cancelled", cancel_key(gid), order.get("name") or gid, order)

    def refunded(self, shop: str, refund: dict[str, Any], order: dict[str, Any] | None = None) -> tuple[str, str]:
        """(status, result) of alerting a refund (REST body, or GraphQL node with its `order`)."""
        gid = refund_gid(refund)
        if gid is None:
            return "ignored", "the refund has no id"
        if order is None:
            order_id = order_gid({"id": refund.get("order_id")}) if refund.get("order_id") is not None else None
            if order_id is None:
                return "ignored", f"refund {gid} names no order"
            order = {"id": refund.get("order_id"), "admin_graphql_api_id": order_id,
                     "name": names_for(self.app.db, [f"order:{order_id}"]).get(order_id)}
        zone = self.app.config.timezone
        outcomes = [(job, refund_outcome(job, refund, order=order, timezone=zone))
                    for job in self._jobs(shop, refund)]
        return self._deliver(outcomes, "refund", refund_key(gid), order.get("name") or gid, order)

    def _jobs(self, shop: str, event: dict[str, Any]) -> list[JobConfig]:
        """The shop's jobs whose alerting had started when the event happened (not history to them)."""
        at = parse_instant(event.get("cancelled_at") or event.get("cancelledAt") or event.get("created_at")
                           or event.get("createdAt"))
        jobs = []
        for job in refund_jobs(self.app, shop):
            since = alerting_since(self.app, job, shop)
            if since is None or at is None or at >= since:
                jobs.append(job)
        return jobs

    def _deliver(self, outcomes: list[tuple[JobConfig, Outcome]], event: str, slot_key: str, name: str,
                 order: dict[str, Any]) -> tuple[str, str]:
        self.sent_last = 0
        chosen = [(job, outcome) for job, outcome in outcomes if wants(job, event, outcome.context.get("amount"))]
        if not chosen:
            return "ignored", (f"{slot_key}: no {KIND} job of the shop alerts it (events, min_total, or it "
                               "happened before alerting started)")
        remember_order_name(self.app.db, slot_key, order)
        sent, problems = 0, []
        for job, outcome in chosen:
            try:
                report = self.alerts.deliver(job, slot_key, outcome)
            except Exception as exc:  # noqa: BLE001 — one job's problem must not stop the others
                log.exception("%s: alert %s failed", job.name, slot_key)
                problems.append(f"{job.name}: {type(exc).__name__}: {exc}")
                continue
            sent += report.count("sent")
            problems += [f"{job.name} → {problem}" for problem in problems_of(report)]
        if problems:
            raise AlertFailed("; ".join(problems))
        self.sent_last = sent
        return "done", f"{event} {name}: {sent} alert(s) sent"


def handlers(app: App, alerts: AlertSender, handled: Callable[[str, str], Any]) -> dict[str, Callable[..., Any]]:
    """`orders/cancelled` and `refunds/create` for TopicHandlers.by_topic(); `handled(status, result)`
    builds its Handled."""
    raising = RefundAlerts(app, alerts)

    def order_cancelled(event: Any) -> Any:
        if not refund_jobs(app, event.shop):
            return handled("ignored", f"no {KIND} job for {event.shop}")
        return handled(*raising.cancelled(event.shop, event.payload()))

    def refund_created(event: Any) -> Any:
        if not refund_jobs(app, event.shop):
            return handled("ignored", f"no {KIND} job for {event.shop}")
        return handled(*raising.refunded(event.shop, event.payload()))

    return {"orders/cancelled": order_cancelled, "refunds/create": refund_created}
