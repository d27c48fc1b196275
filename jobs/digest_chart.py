"""The chart of a `shopify-orders` digest (`chart = "hourly" | "daily7"`) and its feed message.

  hourly  today's sales by local hour, from local midnight to the digest's end, as bars, against the
          same weekday a week earlier (the whole day) as a line
  daily7  the sales of the last 7 local days, today (so far) included, as bars

Sales are counted as the digest counts revenue (jobs.shopify_orders.summarize): order totals
(`totalPriceSet.shopMoney`) of the orders neither cancelled nor refunded, in the currency most
orders are in, bucketed by `createdAt` in the configured zone (a DST day has 23 or 25 hours; each
order lands in its local hour). The orders come from the Admin GraphQL orders query
(bot.shopify.orders_query.fetch_orders): two windows for hourly (today, the day a week ago), one for
daily7 (seven days). A chart whose data cannot be had is not a failed digest: `chart_for` returns
why, the text digest goes out and the failure is reported (bot.delivery.charts).

The delivery draws the chart in a child process and uploads it once (bot.delivery.charts); with its
URL in `outcome.image_url`, `feed_message` makes the message a Kakao feed: the chart, the digest's
text as description, up to 5 figures (매출, 주문, 객단가, 취소, 환불) and one button to the orders.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Callable

import requests

from bot.config.model import ConfigError, JobConfig
from bot.kakao.templates import Button, feed_template
from bot.shopify.errors import ShopifyError
from bot.shopify.orders_query import fetch_orders
from jobs.base import JobContext, Outcome
from jobs.render import message_for, won

CHART_MODES = ("hourly", "daily7")
WEEKDAYS = "월화수목금토일"
ORDERS_BUTTON = "주문 보기"
_REFUNDED = frozenset({"REFUNDED", "PARTIALLY_REFUNDED"})


def parse_chart(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> str | None:
    """The job's `chart` key: "hourly", "daily7", or false / absent (None: no chart)."""
    value = raw.get("chart", False)
    if value is False:
        return None
    if value not in CHART_MODES:
        raise fail("chart", f'must be "hourly", "daily7" or false, got {value!r}')
    return value


def chart_for(job_name: str, shop: str, mode: str, ctx: JobContext, end: datetime) -> tuple[dict | None, str | None]:
    """(the chart for bot.util.chart_png, None), or (None, why it cannot be had)."""
    if ctx.shopify is None:
        return None, f"{job_name}: no Shopify access for the chart"
    zone = end.tzinfo
    today = end.date()
    try:
        gql = ctx.shopify(shop)
        if mode == "hourly":
            week_ago = today - timedelta(days=7)
            now_orders = list(fetch_orders(gql, created_from=_midnight(today, zone), created_to=end, line_items=1))
            then_orders = list(fetch_orders(gql, created_from=_midnight(week_ago, zone),
                                            created_to=_midnight(week_ago + timedelta(days=1), zone), line_items=1))
            return hourly_chart(now_orders, then_orders, end), None
        first = today - timedelta(days=6)
        orders = list(fetch_orders(gql, created_from=_midnight(first, zone), created_to=end, line_items=1))
        return daily7_chart(orders, end), None
    except (ShopifyError, requests.RequestException, ValueError) as exc:
        return None, f"{job_name}: no chart: the orders for it could not be read ({type(exc).__name__}: {exc})"


def hourly_chart(today_orders: list[dict], week_ago_orders: list[dict], end: datetime) -> dict[str, Any]:
    """Today's sales per local hour (0–23) until `end`, and a week ago's, as a chart spec."""
    currency = _currency(today_orders + week_ago_orders)
    zone = end.tzinfo
    week_ago = end.date() - timedelta(days=7)
    now_values, then_values = [0.0] * 24, [0.0] * 24
    for values, orders in ((now_values, today_orders), (then_values, week_ago_orders)):
        for when, amount in _sales(orders, currency, zone):
            values[when.hour] += float(amount)
    return {
        "kind": "hourly",
        "title": f"오늘 시간대별 매출 · {_day(end.date())} {end:%H:%M}까지",
        "labels": [f"{hour}시" for hour in range(24)],
        "currency": currency or "",
        "series": [{"name": "오늘", "values": now_values},
                   {"name": f"지난주 {WEEKDAYS[week_ago.weekday()]}요일", "values": then_values}],
    }


def daily7_chart(orders: list[dict], end: datetime) -> dict[str, Any]:
    """The sales of each of the 7 local days ending with `end`'s day, as a chart spec."""
    currency = _currency(orders)
    days = [end.date() - timedelta(days=back) for back in range(6, -1, -1)]
    totals = dict.fromkeys(days, 0.0)
    for when, amount in _sales(orders, currency, end.tzinfo):
        if when.date() in totals:
            totals[when.date()] += float(amount)
    return {
        "kind": "daily7",
        "title": f"최근 7일 매출 · {_day(days[0])}–{_day(days[-1])}",
        "labels": [_day(day) for day in days],
        "currency": currency or "",
        "series": [{"name": "", "values": [totals[day] for day in days]}],
    }


def feed_message(job: JobConfig, outcome: Outcome, *, audience: str, web_domain: str,
                 default_link: str) -> dict[str, Any]:
    """The digest as a Kakao feed: the uploaded chart, the digest's text, its figures, a button."""
    text = message_for(job, outcome, audience=audience, web_domain=web_domain, default_link=default_link)["text"]
    context = outcome.context
    title = f"📊 {context.get('store') or job.name} 매출 · {context.get('period', '')}".strip(" ·")
    link = outcome.link or default_link
    template = feed_template(title, text, link=link, web_domain=web_domain, items=figures(context),
                             image_url=outcome.image_url if _http(outcome.image_url) else None,
                             buttons=[Button(ORDERS_BUTTON, link)])
    if outcome.image_url and outcome.image_url.startswith("file:"):
        # A dry run: the chart was drawn to a local file and not uploaded; shown, never sent.
        template["content"]["image_url"] = outcome.image_url
    return template


def figures(context: dict[str, Any]) -> list[tuple[str, str]]:
    """The feed's item rows: 매출, 주문, 객단가, 취소, 환불 (Kakao shows 5 at most)."""
    revenue = context.get("revenue") or []
    currency = context.get("currency") or "KRW"
    amount = revenue[0]["amount"] if revenue else Decimal(0)
    count = int(context.get("count") or 0)
    cancelled, refunded = int(context.get("cancelled") or 0), int(context.get("refunded") or 0)
    paid = count - cancelled - refunded
    refunds = context.get("refunded_amounts") or []
    refund_text = f"{refunded}건" + (f" · {won(refunds[0]['amount'], refunds[0]['currency'])}" if refunds else "")
    return [
        ("매출", won(amount, currency)),
        ("주문", f"{count}건"),
        ("객단가", won(Decimal(amount) / paid, currency) if paid > 0 else "-"),
        ("취소", f"{cancelled}건"),
        ("환불", refund_text),
    ]


def _sales(orders: list[dict], currency: str | None, zone: Any) -> list[tuple[datetime, Decimal]]:
    """(local creation time, total) of the orders that count as sales, in `currency`."""
    out = []
    for order in orders:
        if order.get("cancelledAt") or order.get("displayFinancialStatus") in _REFUNDED:
            continue
        money = _money(order)
        created = _created(order)
        if money is None or created is None or money[0] != currency:
            continue
        out.append((created.astimezone(zone), money[1]))
    return out


def _currency(orders: list[dict]) -> str | None:
    """The currency most orders are in (the shop's), as the digest ranks them."""
    counts = Counter(money[0] for money in map(_money, orders) if money is not None)
    return min(counts, key=lambda code: (-counts[code], code)) if counts else None


def _money(order: dict) -> tuple[str, Decimal] | None:
    shop_money = ((order.get("totalPriceSet") or {}).get("shopMoney") or {})
    try:
        amount = Decimal(str(shop_money.get("amount")))
    except ArithmeticError:
        return None
    code = shop_money.get("currencyCode")
    return (code.upper(), amount) if isinstance(code, str) and code and amount.is_finite() else None


def _created(order: dict) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(order.get("createdAt")))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _midnight(day: date, zone: Any) -> datetime:
    """Local midnight of `day` (a zone's own midnight, also on a DST day)."""
    return datetime.combine(day, time(0), tzinfo=zone)


def _day(day: date) -> str:
    return f"{day.month}/{day.day}({WEEKDAYS[day.weekday()]})"


def _http(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0] in ("http", "https")
