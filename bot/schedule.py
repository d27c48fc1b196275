"""When jobs run: slot times, cron expressions with weekday names, and durations.

Cron weekdays are accepted only as names (`mon-fri`): numbers mean Sunday=0 in cron but
Monday=0 in APScheduler, so a number would silently shift every weekday by one.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo

from apscheduler.triggers.cron import CronTrigger

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'30m' → 1800 seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"must be a duration like \"30m\", \"2h\", \"45s\", got {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_cron(expression: str, zone: tzinfo | None = None) -> CronTrigger:
    """A five-field crontab line (minute hour day month weekday) as a trigger in `zone`."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("needs 5 fields: minute hour day-of-month month day-of-week")
    weekday = fields[4]
    if re.search(r"\d", weekday.replace("*/", "")) and weekday != "*":
        raise ValueError("write weekdays as names (mon-fri, sat,sun): numbers differ between cron and APScheduler")
    try:
        return CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3],
                           day_of_week=weekday, timezone=zone or "UTC")
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def slot_instant(slot_time: time, day: date, zone: tzinfo) -> datetime:
    """The aware instant of a slot on a local calendar day."""
    return datetime.combine(day, slot_time, tzinfo=zone)
