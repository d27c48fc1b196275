"""The job kinds: each module collects data and renders messages (see `jobs.base`)."""

from __future__ import annotations

from types import ModuleType

from jobs import (
    scrape,
    shopify_order_alert,
    shopify_orders,
    shopify_refund_alert,
    shopify_risk_alert,
    shopify_stock_alert,
    shopify_unfulfilled_alert,
)
from jobs.render import template_syntax_error

_KINDS: dict[str, ModuleType] = {module.KIND: module for module in (
    scrape, shopify_orders, shopify_order_alert, shopify_refund_alert,
    shopify_stock_alert, shopify_risk_alert, shopify_unfulfilled_alert,
)}


def job_kind(kind: str) -> ModuleType:
    return _KINDS[kind]


def known_kinds() -> list[str]:
    return sorted(_KINDS)


class Catalog:
    """The job kinds as the config loader asks for them (bot.config.model.JobCatalog)."""

    def kind(self, name: str) -> ModuleType:
        return job_kind(name)

    def names(self) -> list[str]:
        return known_kinds()

    def template_error(self, source: str) -> str | None:
        return template_syntax_error(source)


CATALOG = Catalog()
