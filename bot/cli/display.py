"""How a delivery's key reads to a person: a slot as a local time with its zone, an order as its number.

The keys themselves (`bot.store.deliveries`) stay what they are — ISO instants, `run:<stamp>-<id>`,
`order:<gid>` — because exactly-once hangs on them; only the tables a person reads translate them.
`--json` keeps the raw key for scripts.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Mapping

from bot.util.times import local_time

_RUN = re.compile(r"^run:(\d{8}T\d{6})-([0-9a-f]+)$")
_GID = re.compile(r"gid://shopify/(\w+)/(\d+)")


def delivery_label(slot_key: str, zone: tzinfo, order_names: Mapping[str, str] | None = None) -> str:
    """`2026-12-03T12:00:00+09:00` → `2026-12-03 12:00 KST`; `run:20261203T014242-5d3ceec7` →
    `send-now 2026-12-03 01:42 KST #5d3c`; `order:gid://shopify/Order/123` → `order #1001` with its name
    in `order_names` (gid → name, bot.store.order_names), else `order 123`; others unchanged."""
    key, _, suffix = slot_key.partition("#")
    forced = " (forced)" if suffix.startswith("force-") else ""
    instant = _instant(key)
    if instant is not None:
        return local_time(instant, zone) + forced
    run = _RUN.match(slot_key)
    if run:
        # send-now stamps its runs in the configured zone (bot.cli.main): read them back in it.
        started = datetime.strptime(run.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=zone)
        return f"send-now {local_time(started, zone)} #{run.group(2)[:4]}"
    kind, _, rest = slot_key.partition(":")
    if kind in ("order", "order-update", "cancel", "refund"):  # refund:<refund gid> is named after its order
        gid = _GID.search(rest)
        name = (order_names or {}).get(gid.group(0)) if gid else None
        number = name or (gid.group(2) if gid else rest)
        label = {"cancel": "cancelled order", "refund": "refund of order" if name else "refund"}.get(kind, "order")
        return f"{label} {number}" + (" (changed)" if kind == "order-update" else "")
    if kind == "quiet":  # quiet:<job>:<window end ISO> (bot.delivery.alerts.quiet_slot_key)
        stamp = re.search(r"\d{4}-\d\d-\d\dT\S+$", rest)
        end = _instant(stamp.group(0)) if stamp else None
        if end is not None:
            return f"quiet-hours summary {local_time(end, zone)}"
    return slot_key


def _instant(text: str) -> datetime | None:
    if not re.match(r"^\d{4}-\d\d-\d\dT", text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
