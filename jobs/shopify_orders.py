"""The `shopify-orders` job kind: a digest of the orders a shop received since the job's last slot.

The window is [since, until): `since` is this job's previous slot, or local midnight today
(in the configured zone) on a job's first run; `until` is the slot's scheduled instant, so a slot
sent late (caught up after a restart) ends where the next digest starts; a plain `send-now` ends now. Orders come from the Admin GraphQL API
(`bot.shopify.orders_query.fetch_orders`, asked only for the fields the digest needs; an answer
not shaped as the schema says fails the job, and nothing is sent).

What is counted, all from the orders *created* in the window:
  count        every order, cancelled ones included
  cancelled    orders with `cancelledAt`
  refunded     orders not cancelled whose financial status is REFUNDED or PARTIALLY_REFUNDED
               (a cancelled order is normally refunded too; it is counted once, as cancelled)
  revenue      the order totals (`totalPriceSet.shopMoney`, summed with Decimal) of the orders
               neither cancelled nor refunded, per currency; a currency seen only on
               cancelled/refunded orders shows 0 so a busy-but-cancelled day reads "₩0"
  refunded_amounts  the order totals of the refunded orders, per currency. These are order
               totals, not refunded amounts (the digest does not fetch refunds): a partially
               refunded order is listed here with its whole total and left out of revenue
  unfulfilled  orders not cancelled and not fully refunded still waiting to ship
               (UNFULFILLED, PARTIALLY_FULFILLED, IN_PROGRESS, ON_HOLD, … — see `_WAITING`)
  top_products the `top_products` line-item names with the highest quantities, cancelled
               orders left out; only the first `line_items` items of each order are seen

Customer names are protected data: they are asked of Shopify only when the job sets
`include_customers = true`, and even then they only ever reach "me" — `render` removes
them from what a friend's template sees, so a custom template cannot leak them either.

Links: the message links to the shop admin's orders page
(`https://admin.shopify.com/store/<store>/orders`, also in the template as `admin_url`).
Kakao only opens links on the app's registered web domain, so unless `[kakao].web_domain`
is that origin, the button falls back to `web_domain` (and `admin_url` is there for a
custom template to print: KakaoTalk makes URLs in a text message tappable).

Comparisons (`compare = ["day", "week"]`): the same window one day and one week earlier, fetched
with the same query and compared by revenue, order count and average order value — see
`jobs.digest_compare`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable

import requests

from bot.config.model import ConfigError, JobConfig
from bot.shopify.errors import (
    ShopifyAuthError,
    ShopifyBadCredentials,
    ShopifyError,
    ShopifyReauthRequired,
    ShopNotConnected,
)
from bot.shopify.orders_query import fetch_orders
from bot.shopify.shapes import ShopifyBadAnswer
from bot.shopify.signing import normalize_shop
from bot.util.retry import can_pass
from bot.util.urls import same_origin
from jobs.base import JobContext, JobFailed, Outcome
from jobs.digest_chart import chart_for, feed_message, parse_chart
from jobs.digest_compare import COMPARE_DEFAULT, compare_context, parse_compare, shared_client
from jobs.render import message_for

log = logging.getLogger(__name__)

KIND = "shopify-orders"
SCHEDULED = True
PARAM_KEYS = frozenset({"shop", "top_products", "include_customers", "line_items", "compare", "chart"})
SCOPES = ("read_orders",)  # Admin API scopes a job of this kind needs (bot.connect.webhook_needs); no webhooks

TOP_PRODUCTS_LIMIT = 10
LINE_ITEMS_LIMIT = 50
ADMIN_ORDERS_URL = "https://admin.shopify.com/store/{store}/orders"
_SHOP_SUFFIX = ".myshopify.com"
_REFUNDED = frozenset({"REFUNDED", "PARTIALLY_REFUNDED"})
# displayFulfillmentStatus values of an order that still has something to ship.
_WAITING = frozenset({
    "UNFULFILLED", "PARTIALLY_FULFILLED", "IN_PROGRESS", "ON_HOLD", "OPEN", "PENDING_FULFILLMENT",
    "SCHEDULED", "REQUEST_DECLINED",
})
_UNNAMED = "(이름 없음)"


@dataclass(frozen=True)
class ShopifyOrdersParams:
    shop: str  # normalised: lower-case `*.myshopify.com`
    top_products: int = 3
    include_customers: bool = False
    line_items: int = 10
    compare: tuple[str, ...] = COMPARE_DEFAULT  # "day", "week": see jobs.digest_compare
    chart: str | None = None  # "hourly" | "daily7" (jobs.digest_chart)


def parse_shop(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> str:
    """The job's `shop` key, required, as a normalised *.myshopify.com domain (also for order alerts)."""
    shop = raw.get("shop")
    if not isinstance(shop, str) or not shop.strip():
        raise fail("shop", "required: the shop's domain, like my-store.myshopify.com")
    try:
        return normalize_shop(shop.strip())
    except ValueError as exc:
        raise fail("shop", str(exc)) from None


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ShopifyOrdersParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    shop = parse_shop(raw, fail)

    top_products = _int(raw, "top_products", 3, TOP_PRODUCTS_LIMIT, fail)

    include_customers = raw.get("include_customers", False)
    if not isinstance(include_customers, bool):
        raise fail("include_customers", "must be true or false")

    line_items = _int(raw, "line_items", 10, LINE_ITEMS_LIMIT, fail)
    return ShopifyOrdersParams(shop, top_products, include_customers, line_items, parse_compare(raw, fail),
                               parse_chart(raw, fail))


def _int(raw: dict[str, Any], key: str, default: int, upper: int, fail: Callable[[str, str], ConfigError]) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(key, f"must be an integer, got {type(value).__name__}")
    if not 1 <= value <= upper:
        raise fail(key, f"must be between 1 and {upper}, got {value}")
    return value


def admin_orders_url(shop: str) -> str:
    """The shop admin's orders page: `my-store.myshopify.com` → …/store/my-store/orders."""
    store = shop[: -len(_SHOP_SUFFIX)] if shop.endswith(_SHOP_SUFFIX) else shop
    return ADMIN_ORDERS_URL.format(store=store)


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """The digest of the orders created in [since (or local midnight), until (or now))."""
    params: ShopifyOrdersParams = job.params
    ctx = shared_client(ctx)  # one client for the digest and its comparison windows: one cost bucket
    # Never past now: a slot sent ahead of its time (`send-now --slot evening` at noon) covers what exists.
    end = min(ctx.until, ctx.now).astimezone(ctx.now.tzinfo) if ctx.until is not None else ctx.now
    start = ctx.since.astimezone(end.tzinfo) if ctx.since is not None else _midnight(end)
    orders = _fetch(job.name, params, ctx, start, end) if start < end else []
    admin_url = admin_orders_url(params.shop)
    context = summarize(orders, top_products=params.top_products, include_customers=params.include_customers)
    context.update(
        shop=params.shop,
        store=params.shop[: -len(_SHOP_SUFFIX)],
        admin_url=admin_url,
        period=_period(start, end),
        period_start=start.isoformat(),
        period_end=end.isoformat(),
    )

    def window(since: datetime, until: datetime) -> dict[str, Any]:  # a comparison needs totals only
        lean = replace(params, line_items=1, include_customers=False)
        return summarize(_fetch(job.name, lean, ctx, since, until) if since < until else [])

    context.update(compare_context(params.compare, start, end, context, window, job=job.name))
    outcome = Outcome(context=context, empty=context["count"] == 0, link=admin_url)
    if params.chart:  # drawn and uploaded by the delivery (bot.delivery.charts)
        outcome.chart, outcome.chart_error = chart_for(job.name, params.shop, params.chart, ctx, end)
    return outcome


def render(
    job: JobConfig,
    outcome: Outcome,
    *,
    audience: str,
    web_domain: str,
    default_link: str,
) -> dict[str, Any]:
    """Kakao template_object for one recipient; customer names only ever reach "me", when opted in."""
    params: ShopifyOrdersParams | None = job.params
    context = dict(outcome.context)
    if audience != "me" or params is None or not params.include_customers:
        context["customers"] = []
    # Kakao opens only links on the registered domain: anything else would be re-pointed
    # (with a warning in the log each time), so use the default link right away.
    link = outcome.link if outcome.link and same_origin(outcome.link, web_domain) else None
    shown = replace(outcome, context=context, link=link)
    if shown.image_url:  # the chart was uploaded: a feed message
        return feed_message(job, shown, audience=audience, web_domain=web_domain, default_link=default_link)
    return message_for(job, shown, audience=audience, web_domain=web_domain, default_link=default_link)


def summarize(orders: Iterable[dict[str, Any]], *, top_products: int = 3,
              include_customers: bool = False) -> dict[str, Any]:
    """The template values for a list of GraphQL order nodes (see the module docstring)."""
    count = cancelled = refunded = unfulfilled = 0
    revenue: dict[str, Decimal] = {}
    refunded_amounts: dict[str, Decimal] = {}
    orders_per_currency: Counter[str] = Counter()
    quantities: Counter[str] = Counter()
    customers: list[str] = []
    for order in orders:
        count += 1
        money = _money(order)
        if money is not None:
            orders_per_currency[money[0]] += 1
            revenue.setdefault(money[0], Decimal(0))
        if order.get("cancelledAt"):
            cancelled += 1
            continue
        financial = order.get("displayFinancialStatus")
        if financial in _REFUNDED:
            refunded += 1
            if money is not None:
                refunded_amounts[money[0]] = refunded_amounts.get(money[0], Decimal(0)) + money[1]
        elif money is not None:
            revenue[money[0]] += money[1]
        if order.get("displayFulfillmentStatus") in _WAITING and financial != "REFUNDED":
            unfulfilled += 1
        for item in _nodes(order.get("lineItems")):
            quantity = _quantity(item.get("quantity"))
            if quantity:
                quantities[_item_name(item)] += quantity
        if include_customers:
            name = _customer_name(order)
            if name and name not in customers:
                customers.append(name)

    def ranked(amounts: dict[str, Decimal]) -> list[dict[str, Any]]:
        # The shop's currency first: the one most orders were in.
        codes = sorted(amounts, key=lambda code: (-orders_per_currency[code], code))
        return [{"currency": code, "amount": amounts[code]} for code in codes]

    revenue_list = ranked(revenue)
    top = sorted(quantities.items(), key=lambda pair: (-pair[1], pair[0]))[:top_products]
    return {
        "count": count,
        "cancelled": cancelled,
        "refunded": refunded,
        "unfulfilled": unfulfilled,
        "revenue": revenue_list,
        "refunded_amounts": ranked(refunded_amounts),
        "currency": revenue_list[0]["currency"] if revenue_list else None,
        "top_products": [{"name": name, "quantity": quantity} for name, quantity in top],
        "customers": customers,
    }


def _fetch(name: str, params: ShopifyOrdersParams, ctx: JobContext, start: datetime,
           end: datetime) -> list[dict[str, Any]]:
    if ctx.shopify is None:
        raise JobFailed(f"{name}: no Shopify access in this run")

    shop = params.shop
    try:
        gql = ctx.shopify(shop)
        nodes = fetch_orders(gql, created_from=start, created_to=end, line_items=params.line_items,
                             with_customer=params.include_customers)
        # The generator pages lazily: errors surface while iterating, so iterate in here.
        return [order for order in nodes if isinstance(order, dict) and _within(order, start, end)]
    except ShopNotConnected as exc:
        raise JobFailed(f"{name}: {exc}") from None
    except (ShopifyAuthError, ShopifyReauthRequired, ShopifyBadCredentials) as exc:
        # The client's own message already names a fix; this one is the same for every cause.
        status = f" (HTTP {exc.status})" if exc.status else ""
        raise JobFailed(
            f"{name}: Shopify token for {shop} refused{status}: reconnect the shop with "
            f"`python -m bot shopify install {shop}` (or `python -m bot shopify connect {shop}` "
            f"for your own app)"
        ) from None
    except ShopifyBadAnswer as exc:
        raise JobFailed(f"{name}: nothing sent: {exc}") from None
    except ShopifyError as exc:
        raise JobFailed(f"{name}: Shopify unavailable for {shop}: {exc}", retryable=exc.retryable) from None
    except requests.RequestException as exc:  # the client should wrap these; never crash on one
        raise JobFailed(f"{name}: Shopify unavailable for {shop}: {type(exc).__name__}",
                        retryable=can_pass(exc)) from None


def _within(order: dict[str, Any], start: datetime, end: datetime) -> bool:
    """[start, end) on `createdAt`, as a guard on the query's own filter; unreadable → kept."""
    created = order.get("createdAt")
    if not isinstance(created, str):
        return True
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        return True
    if when.tzinfo is None:
        return True
    return start <= when < end


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _period(start: datetime, end: datetime) -> str:
    """"08:00–12:00" within a day, "11/21 18:00–11/22 08:00" across days."""
    if start.date() == end.date():
        return f"{start:%H:%M}–{end:%H:%M}"
    return f"{start.month}/{start.day} {start:%H:%M}–{end.month}/{end.day} {end:%H:%M}"


def _money(order: dict[str, Any]) -> tuple[str, Decimal] | None:
    price = order.get("totalPriceSet") or {}
    shop_money = price.get("shopMoney") if isinstance(price, dict) else None
    if not isinstance(shop_money, dict):
        log.warning("order %s has no totalPriceSet.shopMoney; left out of the totals", order.get("name"))
        return None
    currency = shop_money.get("currencyCode")
    try:
        amount = Decimal(str(shop_money.get("amount")))
    except (InvalidOperation, ValueError):
        amount = None
    if not isinstance(currency, str) or not currency or amount is None or not amount.is_finite():
        log.warning("order %s has an unreadable total; left out of the totals", order.get("name"))
        return None
    return currency.upper(), amount


def _nodes(connection: Any) -> list[dict[str, Any]]:
    nodes = connection.get("nodes") if isinstance(connection, dict) else None
    return [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []


def _quantity(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    try:
        quantity = int(value)
    except (TypeError, ValueError):
        return 0
    return max(quantity, 0)


def _item_name(item: dict[str, Any]) -> str:
    for key in ("name", "sku"):
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return _UNNAMED


def _customer_name(order: dict[str, Any]) -> str | None:
    customer = order.get("customer")
    name = customer.get("displayName") if isinstance(customer, dict) else None  # protected: may be null
    if not isinstance(name, str):
        return None
    return " ".join(name.split()) or None
