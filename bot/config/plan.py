"""Plan checks at load time: would the configured jobs, on their busiest day, exceed a Kakao quota?"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from bot.config.model import Config, JobConfig
from bot.kakao.quota import APP_DAILY, PAIR_DAILY, RECIPIENT_DAILY, SENDER_DAILY
from bot.util.times import parse_cron


def plan_warnings(config: Config) -> list[str]:
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


def app_quota_warning(jobs: Iterable[JobConfig], config: Config) -> str | None:
    """Whether the scheduled jobs of the whole app — config.toml's and every merchant's — plan more
    messages on their busiest day than Kakao's 30,000 per app: what to tell the operator, or None.
    (Alerts come from orders and cannot be planned; the send-time quota book still stops at 30,000.)"""
    planned = sum(max_runs_per_day(job.at, config) * len(job.to) for job in jobs if job.at)
    if planned <= APP_DAILY:
        return None
    return (f"the scheduled jobs of all shops plan {planned:,} KakaoTalk messages on their busiest day; Kakao "
            f"allows {APP_DAILY:,} per app a day, so the latest slots will be skipped: ask merchants to send "
            "fewer digests, or serve them from another Kakao app")


def max_runs_per_day(at: Iterable[str], config: Config) -> int:
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
