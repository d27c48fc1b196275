"""The `shopify-risk-alert` job kind: a KakaoTalk alert for an order Shopify rates risky.

Not scheduled: on `orders/create` and `orders/risk_assessment_changed` the webhook worker
(`bot.webhooks.risk`) reads the order's risk summary with GraphQL (`order.risk { recommendation
assessments { riskLevel facts } }`). `level = "high"` (default) alerts when Shopify recommends
cancelling or an assessment is HIGH; `level = "medium"` also when it says to investigate or an
assessment is MEDIUM. One alert per order, ever (slot key `risk:<order gid>`); test and cancelled
orders are not alerted. The recommendation is given in Korean (취소 권장, 확인 필요, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bot.config.model import ConfigError, JobConfig
from bot.util.quiet_hours import QuietWindow
from jobs.alert_params import parse_quiet_param, render_alert, store_name
from jobs.base import JobContext, JobFailed, Outcome
from jobs.shopify_order_alert import order_context
from jobs.shopify_orders import parse_shop

KIND = "shopify-risk-alert"
SCHEDULED = False
PARAM_KEYS = frozenset({"shop", "level", "quiet"})
WEBHOOK_TOPICS = ("orders/create", "orders/risk_assessment_changed")
SCOPES = ("read_orders",)

LEVELS = ("high", "medium")
RECOMMENDATION_TEXT = {"CANCEL": "취소 권장", "INVESTIGATE": "확인 필요", "ACCEPT": "진행 가능", "NONE": "판단 없음"}
LEVEL_TEXT = {"HIGH": "높음", "MEDIUM": "중간", "LOW": "낮음", "NONE": "없음", "PENDING": "평가 중"}
FACTS_SHOWN = 3


@dataclass(frozen=True)
class ShopifyRiskAlertParams:
    shop: str
    level: str = "high"  # "high": cancel/HIGH only; "medium": also investigate/MEDIUM
    quiet: QuietWindow | None = None


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ShopifyRiskAlertParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    shop = parse_shop(raw, fail)
    level = raw.get("level", "high")
    if level not in LEVELS:
        raise fail("level", f"must be \"high\" or \"medium\", got {level!r}")
    return ShopifyRiskAlertParams(shop, level, parse_quiet_param(raw, fail))


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """Risk alerts are not collected on a schedule: they come from Shopify webhooks."""
    raise JobFailed(f"{job.name}: a {KIND} job is not scheduled; its alerts come from Shopify webhooks")


render = render_alert


def is_risky(level_option: str, recommendation: str, level: str) -> bool:
    """Whether an order with this recommendation and highest assessed level is alerted at `level_option`."""
    if recommendation == "CANCEL" or level == "HIGH":
        return True
    return level_option == "medium" and (recommendation == "INVESTIGATE" or level == "MEDIUM")


def risk_outcome(job: JobConfig, order: dict[str, Any], *, recommendation: str, level: str,
                 facts: tuple[str, ...] | list[str]) -> Outcome:
    """What one risk alert about `order` (a GraphQL node) says."""
    context = order_context(order, shop=job.params.shop, top_items=1)
    advice = RECOMMENDATION_TEXT.get(recommendation, recommendation)
    context.update(event="risk", recommendation=recommendation, recommendation_text=advice,
                   level=level, level_text=LEVEL_TEXT.get(level, level), facts=list(facts)[:FACTS_SHOWN],
                   more_facts=max(len(facts) - FACTS_SHOWN, 0),
                   summary_group="위험 주문", summary_line=f"⚠️ {context['name']} 위험 주문: {advice}")
    context["store"] = store_name(job.params.shop)
    return Outcome(context=context, link=context["admin_url"])
