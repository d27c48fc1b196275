"""Kakao's daily message quotas: planned at config time, counted at send time.

Kakao counts per Korean calendar day: 30,000 per app, 100 per sender, 100 per recipient,
20 per sender–recipient pair; they cannot be raised. The bot counts what it sent (from the
deliveries table) and skips, by name, the recipients a send would push over a quota —
keeping a reserve of the sender's quota for messages to "me" about problems.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.store.models import Delivery
from bot.util.times import parse_cron

if TYPE_CHECKING:
    from bot.config.model import Config

KAKAO_ZONE = ZoneInfo("Asia/Seoul")
APP_DAILY = 30_000
SENDER_DAILY = 100
RECIPIENT_DAILY = 100
PAIR_DAILY = 20
ME_RESERVE = 5  # default of [delivery].quota_reserve: of the sender's 100, kept for problem reports to "me"
COUNTED = ("sending", "sent", "unknown")  # an unknown send may have been delivered: count it


def quota_day(instant: datetime) -> str:
    return instant.astimezone(KAKAO_ZONE).date().isoformat()


@dataclass
class QuotaBook:
    """Today's counts for one sender; `take` reserves a send or says why not."""

    sender: str
    day: str
    app_total: int = 0
    sender_total: int = 0
    per_recipient: Counter = field(default_factory=Counter)
    per_pair: Counter = field(default_factory=Counter)
    reserve: int = ME_RESERVE

    @classmethod
    def load(cls, session, sender: str, day: str, recipients: Iterable[str],  # noqa: ANN001
             reserve: int = ME_RESERVE) -> "QuotaBook":
        recipients = list(recipients)
        counted = (Delivery.quota_day == day) & Delivery.status.in_(COUNTED)
        app_total = session.scalar(select(func.count()).where(counted)) or 0
        sender_total = session.scalar(select(func.count()).where(counted, Delivery.sender == sender)) or 0
        friend_keys = [key for key in recipients if key != "me"]
        per_recipient = Counter(dict(session.execute(
            select(Delivery.recipient, func.count()).where(counted, Delivery.recipient.in_(friend_keys))
            .group_by(Delivery.recipient)).all()))
        per_pair = Counter(dict(session.execute(
            select(Delivery.recipient, func.count()).where(counted, Delivery.sender == sender,
                                                           Delivery.recipient.in_(recipients))
            .group_by(Delivery.recipient)).all()))
        # "me" is the sender itself: what it received from itself is its recipient count.
        per_recipient["me"] = per_pair["me"]
        return cls(sender, day, app_total, sender_total, per_recipient, per_pair, reserve)

    def take(self, recipient: str, *, alert: bool = False) -> str | None:
        """Count one send to `recipient`; None if allowed, else the reason it is not."""
        sender_cap = SENDER_DAILY if alert and recipient == "me" else SENDER_DAILY - self.reserve
        if self.app_total >= APP_DAILY:
            return f"the app's daily quota ({APP_DAILY}) is used up"
        if self.sender_total >= sender_cap:
            kept = "" if sender_cap == SENDER_DAILY or not self.reserve else f", {self.reserve} kept for problem reports to me"
            return f"sender {self.sender!r} reached its daily quota ({self.sender_total}/{SENDER_DAILY}{kept})"
        if self.per_recipient[recipient] >= RECIPIENT_DAILY:
            return f"recipient reached its daily quota ({RECIPIENT_DAILY})"
        if recipient != "me" and self.per_pair[recipient] >= PAIR_DAILY:
            return f"sender–recipient pair reached its daily quota ({PAIR_DAILY})"
        self.app_total += 1
        self.sender_total += 1
        self.per_recipient[recipient] += 1
        self.per_pair[recipient] += 1
        return None


def plan_warnings(config: "Config") -> list[str]:
    """Warn when the configured jobs would, on their busiest day, exceed a quota."""
    sends_per_sender: Counter = Counter()
    sends_per_pair: Counter = Counter()
    sends_per_recipient: Counter = Counter()
    for job in config.jobs:
        runs = max_runs_per_day(job.at, config)
        if not runs:
            continue
        for recipient in job.to:
            sends_per_sender[job.sender] += runs
            sends_per_recipient[str(recipient)] += runs
            sends_per_pair[(job.sender, str(recipient))] += runs
    warnings = []
    for sender, count in sends_per_sender.items():
        if count > SENDER_DAILY - config.quota_reserve:
            warnings.append(f"jobs sent by {sender!r} plan {count} messages a day; Kakao allows {SENDER_DAILY} "
                            f"per sender ({config.quota_reserve} are kept for problem reports): some will be skipped")
    for recipient, count in sends_per_recipient.items():
        if recipient != "me" and count > RECIPIENT_DAILY:
            warnings.append(f"{recipient} would receive {count} messages a day; Kakao allows {RECIPIENT_DAILY}")
    for (sender, recipient), count in sends_per_pair.items():
        if recipient != "me" and count > PAIR_DAILY:
            warnings.append(f"{sender!r} → {recipient}: {count} messages a day; Kakao allows {PAIR_DAILY} per pair")
    return warnings


def max_runs_per_day(at: Iterable[str], config: "Config") -> int:
    """Fires on the busiest day (slots fire once a day each).

    The days looked at are the coming week plus, for each cron, the day it first fires: a
    cron of some days of the month ("*/10 * 1 * *") may not fire this week, and its warning
    must not depend on today's date.
    """
    at = list(dict.fromkeys(at))
    zone = config.timezone
    slots = [entry for entry in at if entry in config.slots]
    crons = [parse_cron(entry, zone) for entry in at if entry not in config.slots]
    if not crons:
        return len(slots)
    today = datetime.now(zone).date()
    days = {today + timedelta(days=offset) for offset in range(7)}
    for trigger in crons:
        first = trigger.get_next_fire_time(None, _midnight(today, zone))
        if first is not None:
            days.add(first.astimezone(zone).date())
    busiest = max(
        sum(_fires_between(trigger, _midnight(day, zone), _midnight(day + timedelta(days=1), zone))
            for trigger in crons)
        for day in days
    )
    return len(slots) + busiest


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=zone)


def _fires_between(trigger, start: datetime, end: datetime, cap: int = 2000) -> int:  # noqa: ANN001
    count, previous, instant = 0, None, start - timedelta(microseconds=1)
    while count < cap:
        instant = trigger.get_next_fire_time(previous, instant + timedelta(microseconds=1))
        if instant is None or instant >= end:
            break
        previous = instant
        count += 1
    return count
