"""Example events for `preview`: what an alert job's message looks like before any event came.

Alert kinds are not scheduled — their messages exist only when Shopify sends an event — so a
merchant tuning a template could not see one without a real order, refund or stock change.
`sample_outcome(job, now)` builds the outcome of one made-up event of the job's kind through the
kind's own outcome function (the same code a real event goes through), so the preview shows
exactly the values a template gets. The shop, its currency and the order are invented; nothing is
fetched. Scheduled kinds preview with real data (`send-now --dry-run`) and have no sample.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bot.config.model import JobConfig
from jobs import (
    shopify_order_alert,
    shopify_refund_alert,
    shopify_risk_alert,
    shopify_stock_alert,
    shopify_unfulfilled_alert,
)
from jobs.base import Outcome

SAMPLE_ORDER_ID = 5_550_001_024
SAMPLE_CURRENCY = "KRW"


def sample_order(now: datetime, *, hours_ago: float = 0.2) -> dict[str, Any]:
    """A made-up order as Shopify's GraphQL answers it (the kinds read REST bodies the same way)."""
    return {
        "id": f"gid://shopify/Order/{SAMPLE_ORDER_ID}",
        "name": "#1024",
        "createdAt": (now - timedelta(hours=hours_ago)).isoformat(),
        "displayFinancialStatus": "PAID",
        "totalPriceSet": {"shopMoney": {"amount": "89000", "currencyCode": SAMPLE_CURRENCY}},
        "lineItems": {"nodes": [
            {"name": "제주 감귤 5kg", "sku": "TANGERINE-5", "quantity": 2},
            {"name": "참기름 350ml", "sku": "OIL-350", "quantity": 1},
        ]},
    }


def _order_alert(job: JobConfig, now: datetime) -> list[tuple[str, Outcome]]:
    order = sample_order(now)
    return [("새 주문", shopify_order_alert.alert_outcome(job, order, timezone=_zone(now)))]


def _refund_alert(job: JobConfig, now: datetime) -> list[tuple[str, Outcome]]:
    order = {**sample_order(now, hours_ago=3), "cancelReason": "CUSTOMER"}
    refund = {"id": "gid://shopify/Refund/7770001", "createdAt": now.isoformat(),
              "totalRefundedSet": {"shopMoney": {"amount": "24000", "currencyCode": SAMPLE_CURRENCY}}}
    events = {"cancelled": ("주문 취소", lambda: shopify_refund_alert.cancel_outcome(job, order, timezone=_zone(now))),
              "refund": ("환불", lambda: shopify_refund_alert.refund_outcome(job, refund, order=order,
                                                                          timezone=_zone(now)))}
    return [(label, build()) for event, (label, build) in events.items() if event in job.params.events]


def _stock_alert(job: JobConfig, now: datetime) -> list[tuple[str, Outcome]]:
    threshold = job.params.threshold
    low = shopify_stock_alert.stock_outcome(job, name="티셔츠 - 블랙 / M", sku="TS-BK-M",
                                            available=max(threshold - 1, 1), threshold=threshold, locations=1)
    out = shopify_stock_alert.stock_outcome(job, name="티셔츠 - 블랙 / M", sku="TS-BK-M", available=0,
                                            threshold=threshold, locations=1)
    return [("재고 부족", low), ("품절", out)]


def _risk_alert(job: JobConfig, now: datetime) -> list[tuple[str, Outcome]]:
    facts = ("결제 카드의 청구지와 배송지가 다른 나라입니다", "짧은 시간에 같은 카드로 여러 번 결제가 시도되었습니다")
    return [("위험 주문", shopify_risk_alert.risk_outcome(job, sample_order(now), recommendation="CANCEL",
                                                    level="HIGH", facts=facts))]


def _unfulfilled_alert(job: JobConfig, now: datetime) -> list[tuple[str, Outcome]]:
    order = sample_order(now, hours_ago=job.params.hours + 2)
    return [("미발송 주문", shopify_unfulfilled_alert.unfulfilled_outcome(job, order, now, timezone=_zone(now)))]


_SAMPLES: dict[str, Callable[[JobConfig, datetime], list[tuple[str, Outcome]]]] = {
    shopify_order_alert.KIND: _order_alert,
    shopify_refund_alert.KIND: _refund_alert,
    shopify_stock_alert.KIND: _stock_alert,
    shopify_risk_alert.KIND: _risk_alert,
    shopify_unfulfilled_alert.KIND: _unfulfilled_alert,
}


def has_sample(kind: str) -> bool:
    return kind in _SAMPLES


def sample_outcomes(job: JobConfig, now: datetime) -> list[tuple[str, Outcome]]:
    """(what the event is, its outcome) for each made-up event of the job's kind; `now` is aware, local."""
    return _SAMPLES[job.kind](job, now)


def _zone(now: datetime) -> ZoneInfo | None:
    return now.tzinfo if isinstance(now.tzinfo, ZoneInfo) else None
