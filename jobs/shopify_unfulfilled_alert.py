"""The `shopify-unfulfilled-alert` job kind: a KakaoTalk alert for an order not fulfilled after `hours`.

Not scheduled by slots: the service checks every CHECK_EVERY (30 minutes, `bot.webhooks.unfulfilled`)
with the GraphQL orders query `fulfillment_status:unfulfilled status:open created_at:<=now-hours`,
looking back at most `max_age_days` (older orders are history, not news). One alert per order,
ever (slot key `unfulfilled:<order gid>`); cancelled and test orders are never alerted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bot.config.model import ConfigError, JobConfig
from bot.util.quiet_hours import QuietWindow
from bot.util.times import parse_instant
from jobs.alert_params import parse_int, parse_quiet_param, render_alert
from jobs.base import JobContext, JobFailed, Outcome
from jobs.shopify_order_alert import order_context
from jobs.shopify_orders import parse_shop

KIND = "shopify-unfulfilled-alert"
SCHEDULED = False
PARAM_KEYS = frozenset({"shop", "hours", "max_age_days", "quiet"})
WEBHOOK_TOPICS: tuple[str, ...] = ()
SCOPES = ("read_orders",)

HOURS_MAX = 24 * 30
MAX_AGE_DAYS_MAX = 60  # `read_orders` sees 60 days


@dataclass(frozen=True)
class ShopifyUnfulfilledAlertParams:
    shop: str
    hours: int = 48  # alert an order still unfulfilled this long after it was created
    max_age_days: int = 7  # orders created longer ago than this are not looked at
    quiet: QuietWindow | None = None


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ShopifyUnfulfilledAlertParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    shop = parse_shop(raw, fail)
    hours = parse_int(raw, "hours", 48, 1, HOURS_MAX, fail)
    max_age_days = parse_int(raw, "max_age_days", 7, 1, MAX_AGE_DAYS_MAX, fail)
    if max_age_days * 24 <= hours:
        raise fail("max_age_days", f"must be longer than `hours` ({hours} h), got {max_age_days} day(s)")
    return ShopifyUnfulfilledAlertParams(shop, hours, max_age_days, parse_quiet_param(raw, fail))


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """Checked by the service, not collected at slots."""
    raise JobFailed(f"{job.name}: a {KIND} job is not scheduled; the service checks it every 30 minutes")


render = render_alert


def is_alertable(order: dict[str, Any]) -> bool:
    """Not cancelled, not a test, still unfulfilled (the search is re-checked on each node)."""
    return (not order.get("cancelledAt") and order.get("test") is not True
            and order.get("displayFulfillmentStatus") in (None, "UNFULFILLED"))


def unfulfilled_outcome(job: JobConfig, order: dict[str, Any], now: datetime,
                        timezone: ZoneInfo | None = None) -> Outcome:
    """What one alert about a long-unfulfilled `order` (a GraphQL node) says, at `now`."""
    context = order_context(order, shop=job.params.shop, top_items=1, timezone=timezone)
    created = parse_instant(order.get("createdAt"))
    waited = int((now - created).total_seconds() // 3600) if created else job.params.hours
    context.update(event="unfulfilled", hours=job.params.hours, hours_waiting=waited,
                   summary_group="미발송", summary_line=f"⏰ {context['name']} {waited}시간째 미발송")
    return Outcome(context=context, link=context["admin_url"])
