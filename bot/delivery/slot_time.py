"""When `send-now --slot NAME` may deliver: today's occurrence of the slot, once its time has come.

Claiming an occurrence that lies in the future would use it up: the digest would cover a
backwards window, and the scheduler's real run at the slot would find every recipient
`already-sent`. So a slot still ahead is refused, naming when it comes and which occurrence was
the latest — except within EARLY_TOLERANCE: a cron or a systemd timer may fire a little early
(clock skew, `AccuracySec=`), so then the command waits until the slot's instant and runs.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from datetime import time as wall_time
from typing import Callable

from bot.delivery.triggers import to_utc
from bot.util.times import local_time, slot_instant

EARLY_TOLERANCE = timedelta(minutes=2)  # a slot at most this far ahead is waited for, not refused
MAX_WAITS = 1000  # a bound on the waiting loop, whatever a clock does


class SlotNotYet(Exception):
    """The slot's occurrence today lies more than EARLY_TOLERANCE ahead: nothing may be claimed."""


def pause(seconds: float) -> None:
    """Wait; tests replace it by one that moves their fake clock."""
    time.sleep(seconds)


def due_occurrence(name: str, slot: wall_time, clock: Callable[[], datetime], zone: tzinfo) -> datetime:
    """Today's occurrence of slot `name` once it has come (waiting for it when it is at most
    EARLY_TOLERANCE ahead); SlotNotYet when it is further ahead."""
    now = clock()
    today = now.astimezone(zone).date()
    instant = slot_instant(slot, today, zone)
    ahead = to_utc(instant) - to_utc(now)
    if ahead > EARLY_TOLERANCE:
        latest = slot_instant(slot, today - timedelta(days=1), zone)
        comes, was = local_time(instant, zone, offset=True), local_time(latest, zone, offset=True)
        raise SlotNotYet(f"slot {name!r} has not come yet: it comes at {comes}; its latest occurrence "
                         f"was {was} — run `send-now --slot {name}` at or after {comes}")
    for _ in range(MAX_WAITS):
        left = (to_utc(instant) - to_utc(clock())).total_seconds()
        if left <= 0:
            break
        pause(left)
    return instant
