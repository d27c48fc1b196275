"""Wall-clock triggers: a job's `at` (slot names, cron strings) as APScheduler triggers in one zone.

Each local wall time fires at most once: on the autumn DST change a repeated time fires at its
first occurrence only; a time skipped in spring fires when it would have been (an hour later on
the clock), the same instant `send-now --slot` uses. `latest()` finds a job's previous slot
without asking the scheduler, so `send-now` and the scheduler agree on every window.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Iterable, Iterator

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from bot.config.model import Config
from bot.util.times import parse_cron

UTC = timezone.utc
HORIZON = timedelta(days=8)  # how far back the previous slot of a job is looked for
WINDOWS = (timedelta(hours=1), timedelta(days=1), HORIZON)  # widening searches: cheap for frequent crons
TICK = timedelta(microseconds=1)


def to_utc(moment: datetime) -> datetime:
    """The same instant in UTC: arithmetic there is real time, in a zone Python uses wall time."""
    return moment.astimezone(UTC)


class WallClockTrigger(BaseTrigger):
    """Cron triggers of one zone combined; each local wall time fires at most once (see module doc)."""

    def __init__(self, triggers: Iterable[CronTrigger], zone: tzinfo):
        self.triggers = tuple(triggers)
        self.timezone = zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        best = None
        for trigger in self.triggers:
            instant = trigger.get_next_fire_time(previous_fire_time, now)
            while instant is not None and repeated_wall_time(instant, self.timezone):
                instant = trigger.get_next_fire_time(instant, to_utc(instant) + TICK)
            if instant is not None:
                instant = instant.astimezone(UTC).astimezone(self.timezone)  # a skipped wall time → real instant
                if best is None or instant < best:
                    best = instant
        return best

    def fires(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """The fire instants in [start, end], in order."""
        instant = self.get_next_fire_time(None, to_utc(start))
        while instant is not None and instant <= end:
            yield instant
            instant = self.get_next_fire_time(instant, to_utc(instant) + TICK)

    def latest(self, end: datetime, *, before: bool = False) -> datetime | None:
        """The last fire instant ≤ `end` (< `end` with before=True), looked for up to HORIZON back."""
        end = to_utc(end)  # arithmetic in UTC: in a zone, Python adds and subtracts wall-clock time
        limit = end - TICK if before else end
        for window in WINDOWS:
            found = None
            for found in self.fires(end - window, limit):
                pass
            if found is not None:
                return found
        return None

    def __str__(self) -> str:
        return "wall[" + ", ".join(str(trigger) for trigger in self.triggers) + f", tz={self.timezone}]"

    def __repr__(self) -> str:
        return f"<WallClockTrigger {self}>"


def repeated_wall_time(instant: datetime, zone: tzinfo) -> bool:
    """True for the second occurrence of a local time the autumn DST change repeats."""
    local = instant.astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def job_trigger(at: Iterable[str], config: Config) -> WallClockTrigger:
    """The trigger of a job's `at`: slot names and cron expressions, all in the configured zone."""
    zone = config.timezone
    triggers = []
    for entry in at:
        if entry in config.slots:
            slot = config.slots[entry]
            triggers.append(CronTrigger(hour=slot.hour, minute=slot.minute, timezone=zone))
        else:
            triggers.append(parse_cron(entry, zone))
    return WallClockTrigger(triggers, zone)
