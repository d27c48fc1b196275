"""An embedded app merchant's settings, and the jobs they make.

The document the app's page edits (stored by bot.store.merchant_settings):

    {"recipients": ["me", "uuid:…"],                  1-20; "me" needs no Kakao permission
     "digest": {"at": ["08:00", "18:00"]} | null,     the order digest at these local times (≤ 6)
     "new_orders": {"min_total": 50000,               an alert per new order (above min_total if set),
                    "on_update": true,                and when an order's address or items change,
                    "quiet": "22:00-08:00"} | null,   held during quiet hours and summed up after
     "refunds": {…} | null, "low_stock": {…} | null,   the other alert kinds, each with the options of
     "high_risk": {…} | null, "unfulfilled": {…} | null}   its config.toml job (ALERTS)

`validate(document, shop)` checks it the way config.toml jobs are checked — each alert's options by
the very `parse_params` of its kind — and answers the normalised document, or SettingsInvalid naming
the key. `jobs_of(document, …)` builds ordinary JobConfig objects: named `<account>:digest`,
`<account>:new-orders`, `<account>:refunds`, … (stable, so the exactly-once keys of deliveries survive
every edit), sending from the merchant's own Kakao login.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.config.model import ConfigError, JobConfig
from bot.kakao.recipients import parse_recipient
from bot.store.merchant_settings import MerchantSettingsStore, merchant_account
from jobs import (
    shopify_order_alert,
    shopify_orders,
    shopify_refund_alert,
    shopify_risk_alert,
    shopify_stock_alert,
    shopify_unfulfilled_alert,
)

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_DIGEST_TIMES = 6
# A setting per alert kind the bot supports; its options are the kind's config.toml keys but `shop`.
ALERTS = {"new_orders": shopify_order_alert, "refunds": shopify_refund_alert, "low_stock": shopify_stock_alert,
          "high_risk": shopify_risk_alert, "unfulfilled": shopify_unfulfilled_alert}
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_WHERE = Path("merchant settings")


class SettingsInvalid(Exception):
    """The document cannot be kept: `key` says where, `reason` why (both safe to show)."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def empty() -> dict[str, Any]:
    """A shop that saved nothing yet: "me" and nothing scheduled."""
    return {"recipients": ["me"], "digest": None, **{key: None for key in ALERTS}}


def validate(document: Any, shop: str) -> dict[str, Any]:
    """The normalised document, or SettingsInvalid."""
    if not isinstance(document, dict):
        raise SettingsInvalid("settings", "must be an object")
    unknown = sorted(set(document) - {"recipients", "digest", *ALERTS})
    if unknown:
        raise SettingsInvalid(unknown[0], "unknown setting")
    digest = document.get("digest")
    normalised = {"recipients": _recipients(document.get("recipients", ["me"])),
                  "digest": None if digest is None else {"at": _times(digest)}}
    for key in ALERTS:
        options = document.get(key)
        normalised[key] = None if options is None else _alert_options(key, options)
        _alert_params(key, normalised[key], shop)  # the kind's own checks, as for config.toml
    return normalised


def jobs_of(document: dict[str, Any], *, shop: str, account: str) -> list[JobConfig]:
    """The jobs of a validated document: the digest (scheduled) and the alerts (webhooks, checks)."""
    to = tuple(parse_recipient(item) for item in document["recipients"])
    made = []
    if document.get("digest"):
        at = tuple(_cron(text) for text in document["digest"]["at"])
        params = shopify_orders.parse_params({"shop": shop}, _config_error)
        made.append(JobConfig(name=f"{account}:digest", kind=shopify_orders.KIND, at=at, to=to, sender=account,
                              params=params))
    for key, kind in ALERTS.items():
        if document.get(key) is not None:
            made.append(JobConfig(name=f"{account}:{key.replace('_', '-')}", kind=kind.KIND, at=(), to=to,
                                  sender=account, params=_alert_params(key, document[key], shop)))
    return made


def _recipients(value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RECIPIENTS:
        raise SettingsInvalid("recipients", f"must be a list of 1 to {MAX_RECIPIENTS} recipients")
    for item in value:
        if not isinstance(item, str) or not (item == "me" or item.startswith("uuid:")):
            raise SettingsInvalid("recipients", 'each must be "me" or "uuid:…" (from the friends list)')
        try:
            parse_recipient(item)
        except ValueError as exc:
            raise SettingsInvalid("recipients", str(exc)) from None
    return list(dict.fromkeys(value))


def _times(digest: Any) -> list[str]:
    times = digest.get("at") if isinstance(digest, dict) and set(digest) <= {"at"} else None
    if not isinstance(times, list) or not 1 <= len(times) <= MAX_DIGEST_TIMES:
        raise SettingsInvalid("digest.at", f"must be a list of 1 to {MAX_DIGEST_TIMES} times \"HH:MM\"")
    if not all(isinstance(text, str) and _TIME.fullmatch(text) for text in times):
        raise SettingsInvalid("digest.at", 'each time must be "HH:MM" (00:00-23:59)')
    return sorted(set(times))


def _alert_options(key: str, options: Any) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise SettingsInvalid(key, "must be an object or null")
    unknown = sorted(set(options) - (ALERTS[key].PARAM_KEYS - {"shop"}))
    if unknown:
        raise SettingsInvalid(f"{key}.{unknown[0]}", "unknown option")
    return dict(options)


def _alert_params(key: str, options: dict[str, Any] | None, shop: str) -> Any:
    if options is None:
        return None
    try:
        return ALERTS[key].parse_params({"shop": shop, **options}, _config_error)
    except ConfigError as exc:
        raise SettingsInvalid(f"{key}.{exc.key}", exc.reason) from None


def _config_error(key: str, reason: str) -> ConfigError:
    return ConfigError(_WHERE, key, reason)


def _cron(text: str) -> str:
    hour, minute = text.split(":")
    return f"{int(minute)} {int(hour)} * * *"


class MerchantJobs:
    """Every merchant's jobs, as of the settings clock last read: `current()` (read at first use),
    `refresh()` (True if the clock moved and the jobs were built again). The list is swapped whole, so
    threads reading `current()` while another refreshes see the old jobs or the new, never a mix."""

    def __init__(self, store: MerchantSettingsStore):
        self.store = store
        self._jobs: list[JobConfig] | None = None
        self._seen = -1
        self._lock = threading.Lock()

    def current(self) -> list[JobConfig]:
        """The jobs as last built; read now if never yet. A database that cannot be read leaves the
        last known jobs (or none) in place: config.toml's jobs never wait on the merchants'."""
        if self._jobs is None:
            try:
                self.refresh()
            except SQLAlchemyError as exc:
                log.error("merchant settings cannot be read (%s): their jobs wait for the next look",
                          type(exc).__name__)
        return self._jobs or []

    def refresh(self) -> bool:
        with self._lock:
            version = self.store.clock_version()
            if version == self._seen and self._jobs is not None:
                return False
            built: list[JobConfig] = []
            for stored in self.store.all():
                try:
                    document = validate(stored.document, stored.shop)
                except SettingsInvalid as exc:  # stored by an older version of these rules: skipped, said
                    log.error("settings of %s (app %r) no longer valid, its jobs not run: %s", stored.shop,
                              stored.app, exc)
                    continue
                built += jobs_of(document, shop=stored.shop, account=merchant_account(stored.app, stored.shop))
            self._jobs, self._seen = built, version
            return True
