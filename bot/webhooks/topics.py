"""What each stored Shopify webhook topic does, once the worker (`bot.webhooks.worker`) claimed it.

Topics:
  orders/create        alert for every `shopify-order-alert` job of the shop whose alerting had
                       started when the order was created (`bot.delivery.alert_start`); snapshot stored
  orders/create, orders/risk_assessment_changed  also the risk check of `shopify-risk-alert` jobs
                       (bot.webhooks.risk)
  inventory_levels/update  low / out-of-stock alerts of `shopify-stock-alert` jobs (bot.webhooks.stock)
  orders/updated       compared with the stored snapshot (shipping address digest + line items'
                       (sku, quantity), `bot.webhooks.order_snapshots`): changed → alert (jobs with
                       on_update) and snapshot; no snapshot → one stored, no alert; older than the
                       snapshot (its updated_at, then X-Shopify-Triggered-At) → ignored as stale.
                       Handled a run at a time, older updates of one order superseded by the newest
                       (`bot.webhooks.order_updates`, `TopicHandlers.updates`), not by `by_topic`
  orders/cancelled, refunds/create  alerts of `shopify-refund-alert` jobs (bot.webhooks.refund_alerts)
  app/uninstalled      the install's tokens are wiped (`ShopifyTokens.uninstalled`), and the embedded
                       app merchant's own Kakao login deleted (`bot.connect.merchant_kakao.forget_merchant`)
  customers/data_request  what the bot holds about the customer's orders, logged for a person
  customers/redact     the snapshots of the listed orders are deleted
  shop/redact          everything of the shop is deleted: snapshots, stored events, state, and the
                       merchant's Kakao login and the deliveries it sent
  anything else        ignored (by the worker: no handler)

Handling an event twice never acts twice: alerts are deliveries with a unique (job, slot_key,
recipient) — `order:<gid>` for a new order, `order-update:<gid>:<updated_at>` for a change —
and every other handler is idempotent. A handler raises to have the event retried.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from sqlalchemy import delete, select, update

from bot.app import App
from bot.config.model import JobConfig
from bot.connect.merchant_kakao import forget_merchant
from bot.delivery.alert_start import alert_starts, jobs_for_new_order, memory_name
from bot.delivery.alerts import AlertSender, alert_jobs
from bot.shopify.orders import order_gid
from bot.store.models import JobMemory, OrderSnapshot, WebhookEvent
from bot.webhooks.inbox import parse_time
from bot.webhooks.order_snapshots import order_snapshot, write_snapshot
from bot.webhooks.order_updates import OrderUpdates, send_order_alert
from bot.webhooks.reconcile import state_key
from bot.webhooks.refund_alerts import handlers as refund_handlers
from bot.webhooks.risk import RiskAlerts, joined
from bot.webhooks.stock import StockAlerts
from bot.webhooks.stored import Handled, StoredEvent

log = logging.getLogger(__name__)

# Destructive topics act only on a body that names its shop: the HMAC covers the body, not the
# headers, so a captured body resent under another shop's headers must not pass.
MUST_NAME_SHOP = ("app/uninstalled", "shop/redact")


class TopicHandlers:
    """The handlers of one App; `alerts` delivers (and deduplicates) the order alerts."""

    def __init__(self, app: App, alerts: AlertSender):
        self.app = app
        self.alerts = alerts
        self.stock, self.risk = StockAlerts(app, alerts), RiskAlerts(app, alerts)
        self.updates = OrderUpdates(app, alerts)  # orders/updated: runs of them at once (bot.webhooks.order_updates)

    def by_topic(self) -> dict[str, Callable[[StoredEvent], Handled]]:
        return {
            "orders/create": self.order_created_and_risk,
            "orders/risk_assessment_changed": lambda e: Handled(*self.risk.check(e.shop, e.payload())),
            "inventory_levels/update": lambda e: Handled(*self.stock.inventory_updated(e.shop, e.payload(),
                                                                                        e.triggered_at)),
            "app/uninstalled": self.app_uninstalled,
            "customers/data_request": self.data_request,
            "customers/redact": self.customer_redact,
            "shop/redact": self.shop_redact,
            **refund_handlers(self.app, self.alerts, Handled),  # orders/cancelled, refunds/create
        }

    # -- orders ------------------------------------------------------------------------
    def order_created_and_risk(self, event: StoredEvent) -> Handled:
        """The new-order alert, then the risk check (bot.webhooks.risk): each idempotent, so a retry is safe."""
        first = self.order_created(event)
        if not self.risk.wanted(event.shop):
            return first
        return Handled(*joined((first.status, first.result), self.risk.check(event.shop, event.payload())))

    def order_created(self, event: StoredEvent) -> Handled:
        jobs = alert_jobs(self.app, event.shop)
        if not jobs:
            return Handled("ignored", f"no shopify-order-alert job for {event.shop}")
        order = event.payload()
        gid = order_gid(order)
        if gid is None:
            return Handled("ignored", "the order has no id")
        if any(job.params.on_update for job in jobs):
            write_snapshot(self.app, event.shop, gid, order_snapshot(order), parse_time(order.get("updated_at")),
                           event.triggered_at)
        started = jobs_for_new_order(jobs, alert_starts(self.app, jobs, event.shop), order)
        if not started:
            return Handled("ignored", f"order {order.get('name') or gid} was created before alerting started "
                                      f"(the shop's connection or the alert job's first run): not a new order")
        summary = self._alert(started, f"order:{gid}", order, "new", ())
        return Handled("done", f"new order {order.get('name') or gid}: {summary}")

    def _alert(self, jobs: list[JobConfig], slot_key: str, order: dict[str, Any], kind: str,
               changes: tuple | list) -> str:
        return send_order_alert(self.alerts, jobs, slot_key, order, kind, changes)

    # -- the app and the compliance topics ---------------------------------------------
    def app_uninstalled(self, event: StoredEvent) -> Handled:
        self.app.shopify_tokens.uninstalled(event.shop, event.app)
        merchant = forget_merchant(self.app, event.app, event.shop)
        return Handled("done", f"app {event.app!r} uninstalled from {event.shop}: tokens wiped; merchant's {merchant}")

    def data_request(self, event: StoredEvent) -> Handled:
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

    def customer_redact(self, event: StoredEvent) -> Handled:
        payload = event.payload()
        gids = _order_gids(payload.get("orders_to_redact"))
        with self.app.db.write_session() as session:
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

    def shop_redact(self, event: StoredEvent) -> Handled:
        with self.app.db.write_session() as session:
            snapshots = session.execute(delete(OrderSnapshot).where(OrderSnapshot.shop == event.shop)
                                        .execution_options(synchronize_session=False)).rowcount
            events = session.execute(delete(WebhookEvent).where(WebhookEvent.shop == event.shop,
                                                                WebhookEvent.id != event.id)
                                     .execution_options(synchronize_session=False)).rowcount
            session.execute(delete(JobMemory).where(JobMemory.job.in_([state_key(event.shop), memory_name(event.shop)]))
                            .execution_options(synchronize_session=False))
        merchant = forget_merchant(self.app, event.app, event.shop, with_history=True)
        return Handled("done", f"shop redaction: {snapshots} order snapshot(s) and {events} stored event(s) "
                               f"of {event.shop} deleted; merchant's {merchant}")


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
