"""High-risk order alerts of `shopify-risk-alert` jobs (jobs.shopify_risk_alert), from webhooks.

`orders/create` (after the new-order alert, bot.webhooks.topics) and
`orders/risk_assessment_changed` both name an order; its risk summary is read with GraphQL
(bot.shopify.order_checks.fetch_order_risk) and, when risky enough for a job's `level`, alerted
under `risk:<order gid>` — once per order and recipient whichever topic (or redelivery) raised it.
A risk not assessed yet (every assessment PENDING) is left to `orders/risk_assessment_changed`.
Test and cancelled orders are not alerted. A failing query raises: the event is retried.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alerts import AlertFailed, AlertSender, problems_of
from bot.shopify.order_checks import OrderRisk, fetch_order_risk
from bot.shopify.orders import ORDER_GID, order_gid
from bot.util.keys import SLOT_KEY_MAX, fit_key
from jobs.shopify_risk_alert import KIND, is_risky, risk_outcome

log = logging.getLogger(__name__)

Result = tuple[str, str]  # (status "done" | "ignored", what happened) — topics.Handled's fields


def risk_jobs(app: App, shop: str | None = None) -> list[JobConfig]:
    """The configured `shopify-risk-alert` jobs (of `shop`, when given)."""
    return [job for job in app.jobs() if job.kind == KIND and (shop is None or job.params.shop == shop)]


def risk_slot_key(gid: str) -> str:
    return fit_key(f"risk:{gid}", SLOT_KEY_MAX, digest_chars=16, keep_head=True)


def joined(first: Result, second: Result) -> Result:
    """Two handlers' results as one: done if either did something."""
    status = "done" if "done" in (first[0], second[0]) else "ignored"
    return status, f"{first[1]} | {second[1]}"


class RiskAlerts:
    def __init__(self, app: App, alerts: AlertSender, *,
                 fetch: Callable[[App, str, str], OrderRisk | None] | None = None):
        self.app, self.alerts = app, alerts
        self.fetch = fetch or (lambda app, shop, gid: fetch_order_risk(app.shopify_graphql(shop), gid))

    def wanted(self, shop: str) -> bool:
        """Whether some job checks the risk of `shop`'s orders."""
        return bool(risk_jobs(self.app, shop))

    def check(self, shop: str, payload: dict[str, Any], _triggered_at: datetime | None = None) -> Result:
        """The risk check of the order an `orders/create` or `orders/risk_assessment_changed` body names."""
        jobs = risk_jobs(self.app, shop)
        if not jobs:
            return "ignored", f"no {KIND} job for {shop}"
        gid = _named_order(payload)
        if gid is None:
            return "ignored", "malformed: the body names no order"
        if payload.get("test") is True:
            return "ignored", f"risk: {gid} is a test order"
        risk = self.fetch(self.app, shop, gid)
        if risk is None:
            return "ignored", f"risk: order {gid} is unknown to Shopify"
        name = risk.order.get("name") or gid
        if risk.order.get("test") is True or risk.order.get("cancelledAt"):
            return "ignored", f"risk: {name} is a test or cancelled order"
        if risk.pending:
            return "ignored", f"risk: {name} is not assessed yet (orders/risk_assessment_changed brings it)"
        chosen = [job for job in jobs if is_risky(job.params.level, risk.recommendation, risk.level)]
        if not chosen:
            return "done", f"risk: {name} {risk.recommendation}/{risk.level}: not risky enough to alert"
        sent, problems = 0, []
        for job in chosen:
            outcome = risk_outcome(job, risk.order, recommendation=risk.recommendation, level=risk.level,
                                   facts=risk.facts)
            report = self.alerts.deliver(job, risk_slot_key(gid), outcome)
            sent += report.count("sent")
            problems += [f"{job.name} → {problem}" for problem in problems_of(report)]
        if problems:
            raise AlertFailed("; ".join(problems))
        return "done", f"risk: {name} {risk.recommendation}/{risk.level}: {sent} alert(s) sent"


def _named_order(payload: dict[str, Any]) -> str | None:
    """The order of an orders/create body (`id`, `admin_graphql_api_id`) or an
    orders/risk_assessment_changed body (`admin_graphql_api_order_id`, `order_id`)."""
    gid = payload.get("admin_graphql_api_order_id")
    if isinstance(gid, str) and gid.startswith(ORDER_GID) and gid[len(ORDER_GID):].isdigit():
        return gid
    if "order_id" in payload:
        return order_gid({"id": payload.get("order_id")})
    return order_gid(payload)
