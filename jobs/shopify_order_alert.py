"""The `shopify-order-alert` job kind: one KakaoTalk alert per new order of a shop, at once.

Not scheduled (no `at`): alerts are raised by the webhook worker (`bot.webhooks.worker`) from
`orders/create` — and from `orders/updated` when the shipping address or the line items
(sku, quantity) changed — and by the reconciliation (`bot.webhooks.reconcile`) for an order whose
webhook never came. Each order is alerted once per recipient: the delivery's slot key is
`order:<order gid>` whichever path raised it (`order-update:<gid>:<updated_at>` for a change).

An order reaches this module in one of two shapes, both handled by `order_context`:
the REST-shaped webhook body (`id`, `admin_graphql_api_id`, `total_price_set.shop_money`,
`line_items[{name, sku, quantity, current_quantity}]`) or a GraphQL node from
`bot.shopify.orders_query.fetch_orders` (`id` = gid, `totalPriceSet.shopMoney`, `lineItems.nodes`).

No customer data is ever put into the template's values — no name, e-mail, phone or
address — so neither the built-in template nor a custom one can show any to anybody.

`min_total = 50000` (in the shop's currency, compared with the order's total): orders below it are
not alerted (neither new nor changed); an order whose total cannot be read is alerted anyway.

Quiet hours (`quiet = "22:00-07:00"`, local time of the configured zone; the window may wrap
midnight): an alert raised inside the window is held (`bot.delivery.alerts`), and when the window ends
the scheduler sends one summary of the held alerts per job. Digests are not affected.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from bot.config.model import ConfigError, JobConfig
from bot.shopify.orders import order_gid
from bot.util.quiet_hours import QuietWindow
from bot.util.times import parse_instant
from jobs.base import JobContext, JobFailed, Outcome
from jobs.alert_params import parse_quiet_param, render_alert
from jobs.render import won
from jobs.shopify_money import currency_code, money_amount
from jobs.shopify_orders import parse_shop

KIND = "shopify-order-alert"
SCHEDULED = False
PARAM_KEYS = frozenset({"shop", "on_update", "top_items", "quiet", "min_total"})
# The webhook topics and Admin API scopes a job of this kind needs (bot.connect.webhook_needs reads them).
WEBHOOK_TOPICS = ("orders/create", "orders/updated")
SCOPES = ("read_orders",)

TOP_ITEMS_LIMIT = 10
ADMIN_ORDER_URL = "https://admin.shopify.com/store/{store}/orders/{number}"
_SHOP_SUFFIX = ".myshopify.com"
_UNNAMED = "(이름 없음)"
CHANGE_NAMES = {"shipping_address": "배송지", "line_items": "상품 구성"}


@dataclass(frozen=True)
class ShopifyOrderAlertParams:
    shop: str  # normalised: lower-case `*.myshopify.com`
    on_update: bool = True  # also alert when an order's shipping address or items change
    top_items: int = 3  # line items named in the alert
    quiet: QuietWindow | None = None  # alerts raised inside are held and summarised when it ends
    min_total: Decimal | None = None  # orders whose total is below are not alerted (shop currency)


def job_webhook_topics(params: ShopifyOrderAlertParams) -> tuple[str, ...]:
    """The topics one job needs: orders/updated only when it alerts on changes."""
    return WEBHOOK_TOPICS if params.on_update else ("orders/create",)


def parse_min_total(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> Decimal | None:
    """`min_total`: a non-negative number (integer or decimal), or absent."""
    if "min_total" not in raw:
        return None
    value = raw["min_total"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail("min_total", f"must be a number (an amount in the shop's currency), got {type(value).__name__}")
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise fail("min_total", f"must be zero or more, got {value}")
    return amount


def below_min_total(min_total: Decimal | None, total: Any) -> bool:
    """True if an alert about `total` is to be skipped; an unknown total is never below."""
    return min_total is not None and isinstance(total, Decimal) and total < min_total


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ShopifyOrderAlertParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    shop = parse_shop(raw, fail)
    on_update = raw.get("on_update", True)
    if not isinstance(on_update, bool):
        raise fail("on_update", "must be true or false")
    top_items = raw.get("top_items", 3)
    if isinstance(top_items, bool) or not isinstance(top_items, int):
        raise fail("top_items", f"must be an integer, got {type(top_items).__name__}")
    if not 1 <= top_items <= TOP_ITEMS_LIMIT:
        raise fail("top_items", f"must be between 1 and {TOP_ITEMS_LIMIT}, got {top_items}")
    return ShopifyOrderAlertParams(shop, on_update, top_items, parse_quiet_param(raw, fail),
                                    parse_min_total(raw, fail))


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """Alerts are not collected on a schedule: they come from webhooks (and reconciliation)."""
    raise JobFailed(f"{job.name}: a {KIND} job is not scheduled; its alerts come from Shopify webhooks")


render = render_alert


def alert_outcome(job: JobConfig, order: dict[str, Any], *, event: str = "new",
                  changes: Iterable[str] = (), timezone: ZoneInfo | None = None) -> Outcome:
    """What one alert about `order` says: `event` "new" or "updated" (with the `changes`)."""
    params: ShopifyOrderAlertParams = job.params
    context = order_context(order, shop=params.shop, top_items=params.top_items, timezone=timezone)
    changes = [change for change in changes]
    changes_text = ", ".join(CHANGE_NAMES.get(change, change) for change in changes)
    context.update(event=event, changes=changes, changes_text=changes_text)
    context.update(summary_line(context))
    return Outcome(context=context, link=context["admin_url"])


def summary_line(context: dict[str, Any]) -> dict[str, Any]:
    """How the alert reads in a quiet-hours summary (bot.delivery.alert_summary): its group, line and detail."""
    from_total = f" {won(context['total'], context.get('currency'))}" if context.get("total") is not None else ""
    flags = (" (테스트)" if context.get("test") else "") + (" 취소됨" if context.get("cancelled") else "")
    if context.get("event") == "updated":
        return {"summary_group": "주문 변경", "summary_line": f"✏️ {context['name']} 변경: "
                f"{context.get('changes_text') or '-'}", "summary_detail": ""}
    items = ", ".join(f"{item['name']} ×{item['quantity']}" for item in context.get("items") or [])
    return {"summary_group": "주문", "summary_line": f"🛒 {context['name']}{from_total}{flags}",
            "summary_detail": items}


def order_number(gid: str) -> str:
    """`gid://shopify/Order/123` → "123" (the id in admin URLs and in REST bodies)."""
    return gid.rsplit("/", 1)[-1]


def order_context(order: dict[str, Any], *, shop: str, top_items: int = 3,
                  timezone: ZoneInfo | None = None) -> dict[str, Any]:
    """Template values for an order in either shape (see the module docstring)."""
    gid = order_gid(order) or ""
    store = shop[: -len(_SHOP_SUFFIX)] if shop.endswith(_SHOP_SUFFIX) else shop
    number = order_number(gid) if gid else ""
    amount, currency = _total(order)
    items = [item for item in _line_items(order) if item["quantity"] > 0]
    created = parse_instant(order.get("created_at") or order.get("createdAt"))
    if created is not None and timezone is not None:
        created = created.astimezone(timezone)
    financial = order.get("financial_status") or order.get("displayFinancialStatus")
    return {
        "shop": shop,
        "store": store,
        "order_id": gid,
        "name": _text(order.get("name")) or (f"#{number}" if number else "(주문)"),
        "total": amount,
        "currency": currency,
        "item_count": sum(item["quantity"] for item in items),
        "items": items[:top_items],
        "more_items": max(len(items) - top_items, 0),
        "created_at": f"{created.month}/{created.day} {created:%H:%M}" if created else "",
        "created_at_iso": created.isoformat() if created else "",
        "financial_status": financial.upper() if isinstance(financial, str) else None,
        "cancelled": bool(order.get("cancelled_at") or order.get("cancelledAt")),
        "test": order.get("test") is True,
        "admin_url": ADMIN_ORDER_URL.format(store=store, number=number) if number else
        f"https://admin.shopify.com/store/{store}/orders",
    }


def _total(order: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    rest = order.get("total_price_set")
    if isinstance(rest, dict):
        shop_money = rest.get("shop_money")
        if isinstance(shop_money, dict):
            return money_amount(shop_money.get("amount")), currency_code(shop_money.get("currency_code"))
    gql = order.get("totalPriceSet")
    if isinstance(gql, dict):
        shop_money = gql.get("shopMoney")
        if isinstance(shop_money, dict):
            return money_amount(shop_money.get("amount")), currency_code(shop_money.get("currencyCode"))
    if "total_price" in order:
        return money_amount(order.get("total_price")), currency_code(order.get("currency"))
    return None, None


def _line_items(order: dict[str, Any]) -> list[dict[str, Any]]:
    """[{name, sku, quantity}] in the order's own order; REST `current_quantity` wins (order edits)."""
    raw = order.get("line_items")
    if not isinstance(raw, list):
        connection = order.get("lineItems")
        raw = connection.get("nodes") if isinstance(connection, dict) else None
    items = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        quantity = item.get("current_quantity", item.get("quantity"))
        items.append({"name": _text(item.get("name")) or _text(item.get("title")) or _text(item.get("sku"))
                      or _UNNAMED, "sku": _text(item.get("sku")), "quantity": _quantity(quantity)})
    return items


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _quantity(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
