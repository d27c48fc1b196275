"""Shopify Admin API versions: when each one's support ends, and one warning at start when the
configured `[shopify].api_version` is close to that end or past it.

Shopify releases a version each quarter — `YYYY-01`, `-04`, `-07`, `-10`, on the 1st of that
month — and supports it for 12 months from its release. A request for a version past its
window is not refused: Shopify silently answers with the oldest supported version, whose
fields may differ. So the bot says so at start (`run`, `send-now`) — when the end is at most
WARN_BEFORE away, or already past — naming the newest released version to move to.
`unstable` has no window and gets no warning.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["WARN_BEFORE", "end_of_support", "newest_released", "support_warning", "warn_if_ending"]

WARN_BEFORE = timedelta(days=90)
SUPPORT_MONTHS = 12
_VERSION = re.compile(r"(\d{4})-(01|04|07|10)")


def released(version: str) -> date | None:
    """The day `version` ("2026-07") was released; None for "unstable" or anything else."""
    match = _VERSION.fullmatch(version)
    return date(int(match.group(1)), int(match.group(2)), 1) if match else None


def end_of_support(version: str) -> date | None:
    """The first day `version` is no longer supported: 12 months after its release."""
    start = released(version)
    if start is None:
        return None
    months = start.month - 1 + SUPPORT_MONTHS
    return date(start.year + months // 12, months % 12 + 1, 1)


def newest_released(today: date) -> str:
    """The newest quarterly version released on or before `today`."""
    quarter_month = (today.month - 1) // 3 * 3 + 1
    return f"{today.year}-{quarter_month:02d}"


def support_warning(version: str, today: date, config_path: Path | str = "config.toml") -> str | None:
    """One line telling what to do when `version` is within WARN_BEFORE of its end or past it; else None."""
    end = end_of_support(version)
    if end is None:
        return None
    move = f'set api_version = "{newest_released(today)}" under [shopify] in {config_path}'
    if today >= end:
        return (f"Shopify API version {version} ([shopify].api_version) has been unsupported since {end:%Y-%m-%d}: "
                f"Shopify answers with its oldest supported version instead — {move}")
    left = (end - today).days
    if end - today <= WARN_BEFORE:
        return (f"Shopify API version {version} ([shopify].api_version) is supported until {end:%Y-%m-%d} "
                f"({left} days left): {move}")
    return None


def warn_if_ending(version: str, now: datetime, config_path: Path | str = "config.toml") -> bool:
    """Logs the warning of `support_warning` (one line); True if there was one."""
    warning = support_warning(version, now.date(), config_path)
    if warning:
        log.warning("%s", warning)
    return warning is not None
