"""The `shopify-stock-alert` job kind: a KakaoTalk alert when a variant runs low or out of stock.

Not scheduled: raised by the webhook worker from `inventory_levels/update`
(`bot.webhooks.stock`). The stock that counts is the variant's `available` quantity SUMMED over
all its locations (read with GraphQL when the webhook comes: what can still be sold, wherever it
is). A variant is *low* when that sum is at or below its threshold — `thresholds[SKU]`, else
`thresholds[product title]`, else the job's `threshold` — and *out of stock* at 0 or less.

One alert when a variant crosses from above to low, none while it stays low, and again after it
was restocked above the threshold and falls again (each crossing `n` has the slot key
`stock:<inventory item gid>:<n>`). An out-of-stock variant that was already alerted as low is not
alerted again until restocked. Items whose inventory Shopify does not track are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from bot.config.model import ConfigError, JobConfig
from bot.util.quiet_hours import QuietWindow
from jobs.alert_params import parse_int, parse_quiet_param, render_alert, store_name
from jobs.base import JobContext, JobFailed, Outcome
from jobs.shopify_orders import parse_shop

KIND = "shopify-stock-alert"
SCHEDULED = False
PARAM_KEYS = frozenset({"shop", "threshold", "thresholds", "quiet"})
WEBHOOK_TOPICS = ("inventory_levels/update",)
SCOPES = ("read_inventory", "read_products")

THRESHOLD_MAX = 1_000_000
INVENTORY_URL = "https://admin.shopify.com/store/{store}/products/inventory"


@dataclass(frozen=True)
class ShopifyStockAlertParams:
    shop: str
    threshold: int = 5  # low at or below this many available (summed over locations)
    thresholds: dict[str, int] = field(default_factory=dict)  # SKU or product title → its own threshold
    quiet: QuietWindow | None = None

    def threshold_for(self, sku: str, product_title: str) -> int:
        if sku and sku in self.thresholds:
            return self.thresholds[sku]
        if product_title and product_title in self.thresholds:
            return self.thresholds[product_title]
        return self.threshold


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ShopifyStockAlertParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    shop = parse_shop(raw, fail)
    threshold = parse_int(raw, "threshold", 5, 0, THRESHOLD_MAX, fail)
    given = raw.get("thresholds", {})
    if not isinstance(given, dict):
        raise fail("thresholds", "must be a table: SKU or product title = threshold")
    thresholds = {}
    for key, value in given.items():
        if not str(key).strip():
            raise fail("thresholds", "an empty SKU or product title")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= THRESHOLD_MAX:
            raise fail(f"thresholds.{key}", f"must be an integer between 0 and {THRESHOLD_MAX}")
        thresholds[str(key)] = value
    return ShopifyStockAlertParams(shop, threshold, thresholds, parse_quiet_param(raw, fail))


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """Stock alerts are not collected on a schedule: they come from Shopify webhooks."""
    raise JobFailed(f"{job.name}: a {KIND} job is not scheduled; its alerts come from Shopify webhooks")


render = render_alert


def stock_outcome(job: JobConfig, *, name: str, sku: str, available: int, threshold: int,
                  locations: int) -> Outcome:
    """What one low/out-of-stock alert says."""
    out = available <= 0
    state = "품절" if out else f"재고 {available}개"
    context = {
        "event": "stock", "name": name, "sku": sku, "available": available, "threshold": threshold,
        "out_of_stock": out, "locations": locations, "total": None, "currency": None,
        "summary_group": "품절" if out else "재고 부족",
        "summary_line": f"{'🚫' if out else '📦'} {name} {state}",
    }
    return Outcome(context=context, link=INVENTORY_URL.format(store=store_name(job.params.shop)))
