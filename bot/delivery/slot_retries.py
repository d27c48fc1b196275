"""Retrying a scheduled slot whose run failed for a reason that can pass, within [delivery].grace.

The service's scheduler runs each slot once (bot.service.scheduler). When that run fails — the job, or
some recipient — for a reason that can pass (bot.util.retry.can_pass: the database unavailable, a
network error, an upstream 5xx, Kakao -1 / -9798 maintenance), the same slot runs again after
FIRST_DELAY, the wait doubling up to MAX_DELAY, until the slot is [delivery].grace late (the last
attempt just before that). Each attempt is an ordinary run of the same slot key, so the
deliveries table still sends each recipient at most once: a retry reaches only those not reached.
Still failing when the grace runs out, the slot is given up: recipients without a row are
recorded `skipped`, and a person is told as for a slot missed while the bot was down
(bot.delivery.problems `missed_slot`). A failure that cannot pass (a refusal, a dead login, a bug) is
reported by the run itself and not retried.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func, select

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.problems import ProblemReporter
from bot.delivery.run_report import RunReport
from bot.delivery.triggers import to_utc
from bot.kakao.quota import quota_day
from bot.store.models import Delivery
from bot.util.retry import can_pass
from bot.util.times import local_time

log = logging.getLogger(__name__)

FIRST_DELAY = timedelta(seconds=15)
MAX_DELAY = timedelta(minutes=5)
LAST_MARGIN = timedelta(seconds=5)  # the last attempt this long before the grace ends: it must not count as missed
WHY_MAX = 200  # characters of the last error kept in the skipped rows' reason


class SlotRetries:
    """Decides, after each run of a slot, whether and when it runs again (see the module doc)."""

    def __init__(self, app: App, grace: timedelta, *, fire: Callable[[str, datetime], object],
                 schedule: Callable[[str, datetime, Callable[[], object]], None]):
        self.app, self.grace = app, grace
        self.fire = fire  # fire(job name, slot instant): one more run of that slot
        self.schedule = schedule  # schedule(name, at, fn): fn() once at `at` (BotScheduler.once)
        self._attempts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def settled(self, job: JobConfig, instant: datetime, now: datetime,
                outcome: RunReport | BaseException) -> RunReport | None:
        """After a run of `job` for `instant` at `now` — its report, or the exception it raised: schedule
        the next attempt, or give the slot up, as the module doc says. Returns `outcome` if it is a
        report (None for an exception); never raises."""
        try:
            self._settle(job, instant, now, outcome)
        except Exception:  # noqa: BLE001 — the scheduler must go on; the log says what was lost
            log.exception("%s: could not decide on a retry of the slot at %s", job.name, instant.isoformat())
        return None if isinstance(outcome, BaseException) else outcome

    def _settle(self, job: JobConfig, instant: datetime, now: datetime, outcome: RunReport | BaseException) -> None:
        key = (job.name, to_utc(instant).isoformat())
        passing = can_pass(outcome) if isinstance(outcome, BaseException) else outcome.can_pass
        with self._lock:
            if not passing:
                self._attempts.pop(key, None)
                return
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        last = to_utc(instant) + self.grace - LAST_MARGIN
        at = min(to_utc(now) + min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)), last)
        if at <= to_utc(now):
            with self._lock:
                self._attempts.pop(key, None)
            self._give_up(job, instant, now, _why(outcome))
            return
        log.warning("%s: the run for the slot at %s failed for a reason that can pass (%s); attempt %d at %s",
                    job.name, local_time(instant, self.app.config.timezone, seconds=True), _why(outcome), attempt + 1,
                    local_time(at, self.app.config.timezone, seconds=True))
        self.schedule(f"retry:{job.name}", at, lambda: self.fire(job.name, instant))

    def _give_up(self, job: JobConfig, instant: datetime, now: datetime, why: str) -> None:
        """Past the grace: skipped rows for a slot that recorded none, and a person told."""
        slot_key = instant.isoformat()
        reason = f"not sent: the run kept failing ({why[:WHY_MAX]}) until the slot was more than the grace late"
        log.error("%s: the slot at %s %s", job.name, local_time(instant, self.app.config.timezone, seconds=True),
                  reason)
        with self.app.db.session() as session:
            started = session.scalar(select(func.count()).where(Delivery.job == job.name,
                                                                Delivery.slot_key == slot_key)) or 0
        if not started:
            for recipient in job.to:
                key, label = ("me", "me") if recipient.kind == "me" else (str(recipient), recipient.value)
                self.app.deliveries.skip(job=job.name, slot_key=slot_key, recipient=key, label=label,
                                         sender=job.sender, quota_day=quota_day(now), reason=reason)
        ProblemReporter(self.app).missed_slot(job.name, instant, reason=reason, now=now)


def _why(outcome: RunReport | BaseException) -> str:
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}: {outcome}".splitlines()[0]
    results = outcome.fanout.results if outcome.fanout is not None else []
    failed = [r for r in results if r.status == "failed" and r.retryable]
    return outcome.error or (f"{failed[0].label}: {failed[0].reason}" if failed else "failed")
