"""Config parsing and rendering shared by the webhook-driven alert kinds.

Each kind is a module of its own (`jobs.shopify_order_alert`, `jobs.shopify_refund_alert`,
`jobs.shopify_stock_alert`, `jobs.shopify_risk_alert`, `jobs.shopify_unfulfilled_alert`); none is
scheduled, each takes `shop`, `to` and an optional `quiet = "HH:MM-HH:MM"`, and sends through
`bot.delivery.alerts.AlertSender.deliver`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from bot.config.model import ConfigError, JobConfig
from bot.util.quiet_hours import QuietWindow, parse_quiet
from bot.util.urls import same_origin
from jobs.base import Outcome
from jobs.render import message_for

SHOP_SUFFIX = ".myshopify.com"


def parse_quiet_param(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> QuietWindow | None:
    """The optional `quiet` window ("22:00-07:00")."""
    if "quiet" not in raw:
        return None
    if not isinstance(raw["quiet"], str):
        raise fail("quiet", f"must be a string \"HH:MM-HH:MM\", got {type(raw['quiet']).__name__}")
    try:
        return parse_quiet(raw["quiet"])
    except ValueError as exc:
        raise fail("quiet", str(exc)) from None


def parse_int(raw: dict[str, Any], key: str, default: int, low: int, high: int,
              fail: Callable[[str, str], ConfigError]) -> int:
    """An integer option within [low, high]."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(key, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise fail(key, f"must be between {low} and {high}, got {value}")
    return value


def store_name(shop: str) -> str:
    """`my-store.myshopify.com` → "my-store" (the store's handle in admin.shopify.com URLs)."""
    return shop[: -len(SHOP_SUFFIX)] if shop.endswith(SHOP_SUFFIX) else shop


def render_alert(job: JobConfig, outcome: Outcome, *, audience: str, web_domain: str,
                 default_link: str) -> dict[str, Any]:
    """Kakao template_object for one recipient; a link off the registered domain becomes the default one."""
    link = outcome.link if outcome.link and same_origin(outcome.link, web_domain) else None
    return message_for(job, replace(outcome, link=link), audience=audience, web_domain=web_domain,
                       default_link=default_link)
