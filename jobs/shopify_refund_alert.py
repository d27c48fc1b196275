"""The `shopify-refund-alert` job kind: one KakaoTalk alert per cancelled order and per refund, at once.

Not scheduled: alerts are raised by the webhook worker from `orders/cancelled` and `refunds/create`
(bot.webhooks.refund_alerts) and by the reconciliation (bot.webhooks.reconcile) for an event whose
webhook never came. The delivery's slot key is `cancel:<order gid>` or `refund:<refund gid>`
whichever path raised it, so each event is alerted once per recipient.

Options: `events = ["cancelled", "refund"]` (the default: both), `min_total` (events whose amount —
the order's total for a cancellation, the refunded amount for a refund — is below it are not
alerted; shop currency), `quiet = "22:00-07:00"` (held and summarised like new-order alerts).

The amount of a refund comes from the webhook's REST-shaped body: the successful `refund`
transactions (`transactions[].amount`, strings; the customer's currency, so when that is not the
shop's, the line items win), else the refund line items' `subtotal_set` + `total_tax_set` in shop
money; from reconciliation, the GraphQL `totalRefundedSet.shopMoney`.
No customer data is put into the template's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bot.config.model import ConfigError, JobConfig
from bot.shopify.orders import order_gid
from bot.util.quiet_hours import QuietWindow
from bot.util.times import parse_instant
from jobs.base import JobContext, JobFailed, Outcome
from jobs.alert_params import parse_quiet_param, render_alert
from jobs.render import won
from jobs.shopify_order_alert import below_min_total, order_context, parse_min_total
from jobs.shopify_orders import parse_shop
from jobs.shopify_refunds import refund_amount, refund_gid, refund_items

KIND = "shopify-refund-alert"
SCHEDULED = False
PARAM_KEYS = frozenset({"shop", "events", "min_total", "quiet"})
EVENTS = ("cancelled", "refund")
TOPIC_OF_EVENT = {"cancelled": "orders/cancelled", "refund": "refunds/create"}
WEBHOOK_TOPICS = tuple(TOPIC_OF_EVENT.values())
SCOPES = ("read_orders",)
CANCEL_REASONS = {"customer": "고객 요청", "fraud": "사기 의심", "inventory": "재고 부족", "declined": "결제 거절",
                  "staff": "직원 실수", "other": "기타"}


@dataclass(frozen=True)
class ShopifyRefundAlertParams:
    shop: str
    events: tuple[str, ...] = EVENTS
    min_total: Decimal | None = None
    quiet: QuietWindow | None = None


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ShopifyRefundAlertParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    shop = parse_shop(raw, fail)
    events = raw.get("events", list(EVENTS))
    if not isinstance(events, list) or not events or not all(isinstance(event, str) for event in events):
        raise fail("events", f"must be a non-empty list of {', '.join(map(repr, EVENTS))}")
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        raise fail("events", f"unknown event {unknown[0]!r}: the events are {', '.join(map(repr, EVENTS))}")
    quiet = parse_quiet_param(raw, fail)  # first: with both keys wrong, the error names `quiet`, as it always has
    return ShopifyRefundAlertParams(shop, tuple(dict.fromkeys(events)), parse_min_total(raw, fail), quiet)


def job_webhook_topics(params: ShopifyRefundAlertParams) -> tuple[str, ...]:
    """The topics one job needs: those of its events."""
    return tuple(TOPIC_OF_EVENT[event] for event in params.events)


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """Alerts are not collected on a schedule: they come from webhooks (and reconciliation)."""
    raise JobFailed(f"{job.name}: a {KIND} job is not scheduled; its alerts come from Shopify webhooks")


render = render_alert


def wants(job: JobConfig, event: str, amount: Any) -> bool:
    """Whether `job` alerts an `event` ("cancelled" | "refund") of `amount`."""
    params: ShopifyRefundAlertParams = job.params
    return event in params.events and not below_min_total(params.min_total, amount)


def cancel_outcome(job: JobConfig, order: dict[str, Any], *, timezone: ZoneInfo | None = None) -> Outcome:
    """The alert of a cancelled order (a REST webhook body or a GraphQL node): its items as ordered
    (a cancellation sets the REST `current_quantity` to 0)."""
    if isinstance(order.get("line_items"), list):
        order = {**order, "line_items": [{key: value for key, value in item.items() if key != "current_quantity"}
                                         if isinstance(item, dict) else item for item in order["line_items"]]}
    context = order_context(order, shop=job.params.shop, top_items=3, timezone=timezone)
    reason = order.get("cancel_reason") or order.get("cancelReason")
    reason = reason.lower() if isinstance(reason, str) else ""
    money = f" {won(context['total'], context['currency'])}" if context["total"] is not None else ""
    context.update(event="cancelled", amount=context["total"], reason=reason,
                   reason_text=CANCEL_REASONS.get(reason, ""), summary_group="취소",
                   summary_line=f"❌ {context['name']}{money} 취소",
                   summary_detail=CANCEL_REASONS.get(reason, ""))
    return Outcome(context=context, link=context["admin_url"])


def refund_outcome(job: JobConfig, refund: dict[str, Any], *, order: dict[str, Any] | None = None,
                   timezone: ZoneInfo | None = None) -> Outcome:
    """The alert of a refund: a REST `refunds/create` body (its order is `order_id`), or a GraphQL
    refund node with its `order` node from the reconciliation."""
    order = order or {"id": refund.get("order_id"), "admin_graphql_api_id": _order_gid_of(refund.get("order_id"))}
    context = order_context(order, shop=job.params.shop, top_items=3, timezone=timezone)
    amount, currency = refund_amount(refund)
    items = refund_items(refund)
    created = parse_instant(refund.get("created_at") or refund.get("createdAt"))
    if created is not None and timezone is not None:
        created = created.astimezone(timezone)
    money = f" {won(amount, currency)}" if amount is not None else ""
    context.update(event="refund", refund_id=refund_gid(refund) or "", amount=amount, currency=currency,
                   items=items[:3], more_items=max(len(items) - 3, 0),
                   item_count=sum(item["quantity"] for item in items),
                   created_at=f"{created.month}/{created.day} {created:%H:%M}" if created else "",
                   note="", summary_group="환불", summary_line=f"↩️ {context['name']}{money} 환불",
                   summary_detail=", ".join(f"{item['name']} ×{item['quantity']}" for item in items[:3]))
    return Outcome(context=context, link=context["admin_url"])


def _order_gid_of(value: Any) -> str | None:
    return order_gid({"id": value}) if value not in (None, "") else None
