"""Comparison windows of the `shopify-orders` digest: the same hours one day and one week earlier.

The digest's window [start, end) is shifted back by calendar days in the configured zone
(`shifted`): the same local wall-clock hours, so a window that crosses a DST change on either
side still covers 08:00–12:00 local time, even though it is an hour longer or shorter in UTC.
Each comparison window is fetched with the same orders query as the digest itself (one more
paginated window per comparison, through the same client so its cost throttle holds), never
from numbers the bot stored: a fresh install compares from its first digest.

Figures, each in the digest's main currency (`currency`, the shop's):
  revenue   the revenue the digest counts (orders neither cancelled nor refunded)
  count     every order created in the window, cancelled ones included (the digest's `count`)
  aov       average order value: revenue ÷ the orders that count toward revenue; None without any

A change is a whole percentage, rounded half away from zero: "+12%", "−3%" (a real minus sign,
U+2212), "±0%" when it rounds to nothing. A comparison window with nothing to compare with
(no orders, zero revenue, no order counting toward revenue) reads "어제 없음" / "지난주 없음",
never a division by zero. A comparison fetch that fails (Shopify down, a refused token, an
answer not shaped as the schema says) leaves the digest as it is and reads "어제 비교 불가";
the reason goes to the log. The digest's own fetch still fails the job as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from bot.config.model import ConfigError
from jobs.base import JobContext, JobFailed

log = logging.getLogger(__name__)

__all__ = ["COMPARE_DEFAULT", "COMPARISONS", "Comparison", "compare_context", "parse_compare", "percent_change",
           "shared_client", "shifted"]

MINUS = "\u2212"


@dataclass(frozen=True)
class Comparison:
    """One comparison window: its name in the config, how far back, and its Korean labels."""

    name: str
    days: int
    short: str  # "어제": in "어제 +5%", "어제 없음", "어제 비교 불가"
    long: str  # "어제 같은 시간": in "어제 같은 시간 대비 +12%"


COMPARISONS = {c.name: c for c in (Comparison("day", 1, "어제", "어제 같은 시간"),
                                   Comparison("week", 7, "지난주", "지난주"))}
COMPARE_DEFAULT = ("day", "week")

# A window's summary: `shopify_orders.summarize` of its orders (count, cancelled, refunded, revenue, …).
Summarize = Callable[[datetime, datetime], dict[str, Any]]


def parse_compare(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    """The job's `compare` key: a list of "day" / "week" (default both; [] turns comparisons off)."""
    value = raw.get("compare", list(COMPARE_DEFAULT))
    choices = ", ".join(f'"{name}"' for name in COMPARISONS)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise fail("compare", f'must be a list of {choices}, like ["day", "week"] (or [] for none)')
    for item in value:
        if item not in COMPARISONS:
            raise fail("compare", f"unknown comparison {item!r}: choose from {choices}")
    if len(set(value)) != len(value):
        raise fail("compare", "names a comparison twice")
    return tuple(value)


def shifted(moment: datetime, days: int) -> datetime:
    """The same local wall-clock time `days` calendar days earlier, in `moment`'s zone.

    Arithmetic on an aware datetime keeps its tzinfo and works on the wall clock, so the offset
    is the one in force on the earlier day; a time that does not exist there (inside a spring-
    forward gap) is normalised through UTC to the wall-clock time it stands for.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment must carry a time zone, got {moment.isoformat()}")
    earlier = moment - timedelta(days=days)
    return earlier.astimezone(timezone.utc).astimezone(moment.tzinfo)


def percent_change(current: Decimal | int, base: Decimal | int | None) -> str | None:
    """"+12%", "−3%", "±0%"; None when there is nothing to compare with (no base, or a zero one)."""
    if base is None or base == 0:
        return None
    change = ((Decimal(current) - Decimal(base)) * 100 / Decimal(base)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if change == 0:
        return "±0%"
    return f"+{change:,}%" if change > 0 else f"{MINUS}{-change:,}%"


def shared_client(ctx: JobContext) -> JobContext:
    """`ctx` whose Shopify factory makes one client per shop, so every window of a digest goes
    through the same client and its view of the cost bucket (a new client would start blind)."""
    factory = ctx.shopify
    if factory is None:
        return ctx
    clients: dict[str, Any] = {}

    def shopify(shop: str) -> Any:
        if shop not in clients:
            clients[shop] = factory(shop)
        return clients[shop]

    return replace(ctx, shopify=shopify)


def compare_context(names: tuple[str, ...], start: datetime, end: datetime, main: dict[str, Any],
                    summarize: Summarize, *, job: str = "") -> dict[str, Any]:
    """The template values the comparisons add to `main` (the digest's own summary):

    aov           the digest's average order value (Decimal, or None without an order counting)
    compare       one entry per comparison, in the configured order: name ("day"/"week"), label
                  ("어제"/"지난주"), period_start, period_end (ISO), available (False when its fetch
                  failed), count, revenue, aov, and changes {revenue, count, aov} ("+12%", or None
                  when there is nothing to compare with or it is unavailable)
    compare_text  {revenue, count, aov}: the ready-made parentheses, e.g. revenue "어제 같은 시간
                  대비 +12%, 지난주 대비 −3%", count "어제 +5%, 지난주 없음", aov "어제 비교 불가,
                  지난주 ±0%"; empty strings when `compare = []`
    """
    currency = main.get("currency")
    mine = _figures(main, currency)
    windows: list[dict[str, Any]] = []
    for name in names:
        comparison = COMPARISONS[name]
        since, until = shifted(start, comparison.days), shifted(end, comparison.days)
        entry: dict[str, Any] = {"name": name, "label": comparison.short, "period_start": since.isoformat(),
                                 "period_end": until.isoformat(), "available": True}
        try:
            theirs = _figures(summarize(since, until), currency)
        except JobFailed as exc:
            log.warning("%s: comparison with %s (%s–%s) unavailable, sent without it: %s", job, comparison.long,
                        since.isoformat(), until.isoformat(), exc)
            entry.update(available=False, count=None, revenue=None, aov=None,
                         changes={"revenue": None, "count": None, "aov": None})
            windows.append(entry)
            continue
        entry.update(theirs)
        entry["changes"] = {
            "revenue": percent_change(mine["revenue"], theirs["revenue"]),
            "count": percent_change(mine["count"], theirs["count"]),
            "aov": percent_change(mine["aov"], theirs["aov"]) if mine["aov"] is not None else None,
        }
        windows.append(entry)
    return {
        "aov": mine["aov"],
        "compare": windows,
        "compare_text": {figure: _text(windows, figure) for figure in ("revenue", "count", "aov")},
    }


def _figures(summary: dict[str, Any], currency: str | None) -> dict[str, Any]:
    revenue = next((r["amount"] for r in summary.get("revenue", []) if r["currency"] == currency), Decimal(0))
    counted = summary["count"] - summary["cancelled"] - summary["refunded"]
    aov = (revenue / counted).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if counted > 0 else None
    return {"count": summary["count"], "revenue": revenue, "aov": aov}


def _text(windows: list[dict[str, Any]], figure: str) -> str:
    parts = []
    for window in windows:
        comparison = COMPARISONS[window["name"]]
        change = window["changes"][figure]
        if not window["available"]:
            parts.append(f"{comparison.short} 비교 불가")
        elif change is None:
            parts.append(f"{comparison.short} 없음")
        elif figure == "revenue":
            parts.append(f"{comparison.long} 대비 {change}")
        else:
            parts.append(f"{comparison.short} {change}")
    return ", ".join(parts)
