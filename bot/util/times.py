"""When jobs run: slot times, cron expressions with weekday names, durations, stored instants, local times.

Cron weekdays are accepted only as names (`mon-fri`): numbers mean Sunday=0 in cron but
Monday=0 in APScheduler, so a number would silently shift every weekday by one. For the
same reason a day of the month and a weekday are not accepted together: cron fires when
either matches, APScheduler only when both do.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'30m' → 1800 seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"must be a duration like \"30m\", \"2h\", \"45s\", got {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def duration_text(delta: timedelta) -> str:
    """"2 h", "30 min" or "45 s": a grace or a delay as a person reads it."""
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def parse_cron(expression: str, zone: tzinfo | None = None) -> CronTrigger:
    """A five-field crontab line (minute hour day month weekday) as a trigger in `zone`."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("needs 5 fields: minute hour day-of-month month day-of-week")
    day, weekday = fields[2], fields[4]
    # Any digit, also a step ("*/2" is sun,tue,… in cron but mon,wed,… in APScheduler).
    if re.search(r"\d", weekday):
        raise ValueError("write weekdays as names (mon-fri, sat,sun): numbers differ between cron and APScheduler")
    if day != "*" and weekday != "*":
        raise ValueError("give a day of the month or weekdays, not both: cron fires when either matches, "
                         "this scheduler only when both do")
    try:
        trigger = CronTrigger(minute=fields[0], hour=fields[1], day=day, month=fields[3],
                              day_of_week=weekday, timezone=zone or "UTC")
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is None:
        raise ValueError("never fires (no such day, e.g. 30 February)")
    return trigger


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset, in the offset it was written with; None for anything else
    (not a string, unreadable, or naive: a time without a zone is not an instant)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def slot_instant(slot_time: time, day: date, zone: tzinfo) -> datetime:
    """The aware instant of a slot on a local calendar day.

    A wall time that does not exist that day (skipped by a DST change) becomes the instant
    it would have been without the change, shown in the offset in force then (02:30 on the
    day Europe/Berlin springs forward → 03:30+02:00); an ambiguous one is its first occurrence.
    """
    local = datetime.combine(day, slot_time, tzinfo=zone)
    return local.astimezone(timezone.utc).astimezone(zone)


def local_time(instant: datetime, zone: tzinfo, *, seconds: bool = False, offset: bool = False) -> str:
    """An instant as a person in `zone` reads it: `2026-12-03 12:00 KST`; with `seconds`
    `2026-12-03 12:00:05 KST`, with `offset` `2026-12-03 12:00 KST (UTC+0900)`."""
    local = instant.astimezone(zone)
    text = f"{local:%Y-%m-%d %H:%M:%S %Z}" if seconds else f"{local:%Y-%m-%d %H:%M %Z}"
    return f"{text} (UTC{local:%z})" if offset else text
