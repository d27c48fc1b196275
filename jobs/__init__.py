"""The job kinds: each module collects data and renders messages (see `jobs.base`)."""

from __future__ import annotations

from types import ModuleType

from jobs import scrape, shopify_order_alert, shopify_orders

_KINDS: dict[str, ModuleType] = {module.KIND: module for module in (scrape, shopify_orders, shopify_order_alert)}


def job_kind(kind: str) -> ModuleType:
    return _KINDS[kind]


def known_kinds() -> list[str]:
    return sorted(_KINDS)
