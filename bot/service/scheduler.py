"""The scheduler of `run`: configured jobs at their slots and cron times, in the configured zone.

APScheduler 3 (a BackgroundScheduler) does the waiting; everything around it is ours, so no
APScheduler object leaks out of this module:

- Jobs are rebuilt at every start, in a memory job store (nothing pickled, nothing stale): the
  config's and the embedded app merchants' (`App.jobs`); the merchants' follow their settings
  while running (`sync_merchant_jobs`, every SETTINGS_POLL seconds).
- Every trigger is given the configured zone explicitly, never the host's. Slot names become
  `CronTrigger(hour, minute)` (bot.delivery.triggers), cron strings go through `bot.util.times.parse_cron` (weekday
  names only: in cron 1-5 is Monday-Friday, in APScheduler Tuesday-Saturday). Each local wall
  time fires at most once: on the autumn DST change a repeated time fires at its first
  occurrence only; a time skipped in spring fires when it would have been (an hour later on the
  clock), the same instant `send-now --slot` uses.
- coalesce, max_instances=1, misfire_grace_time = [delivery].grace (APScheduler's default of one
  second would silently drop a run delayed by a busy thread pool or a suspended host).
- The APScheduler callback is `_fire(job_name)`: it finds the SCHEDULED instant (the latest
  fire time ≤ now) and calls `fire_at`; the delivery's slot key is that instant's ISO text (as
  `send-now --slot` computes it), never the wall clock at which the thread happened to run. So
  two instances, a restart and a `send-now --slot` all meet in the deliveries table, which sends
  each (job, slot, recipient) once.
- `catch_up(now)`, run by `start()`: per job only its latest slot is considered. Missed by at
  most the grace → delivered now (late); missed by more → recorded as skipped ("missed: …") for
  each recipient and never sent. A slot is "missed" only if the scheduler knew the job before
  it (a job added to the config is not owed its past slots). Never a burst of stale digests.
- Alert jobs with quiet hours get a trigger at the window's end: `AlertSender.send_quiet_summary`.
- Every outbound call has a timeout, and max_instances=1 keeps a slow job from piling up runs.

Tests drive it without waiting: `due(start, end)` lists what fires in a span, `fire_at(name,
instant, now)` runs one firing as the APScheduler callback would.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alerts import AlertSender
from bot.delivery.app_quota import check_app_quota
from bot.delivery.fanout import FanoutReport
from bot.delivery.problems import ProblemReporter
from bot.delivery.run_report import RunReport
from bot.delivery.runner import Runner
from bot.delivery.slot_retries import SlotRetries
from bot.delivery.triggers import TICK, WallClockTrigger, job_trigger, to_utc
from bot.kakao.quota import quota_day
from bot.service.last_runs import LastRuns
from bot.service.slot_marks import mark_slots, slot_marks
from bot.service.scheduler_text import JobSchedule, log_report, schedule_text
from bot.store.merchant_settings import MERCHANT_PREFIX
from bot.store.models import Delivery
from bot.util.native_memory import trim
from bot.util.times import duration_text, local_time, parse_instant
from jobs import job_kind

log = logging.getLogger(__name__)

UTC = timezone.utc
# Slot runs, alerts' quiet-hour summaries and housekeeping (health checks, the order reconciliation,
# watchdog pings) share this pool; each job has at most one run at a time, so a slow reconciliation
# or digest holds one thread and leaves the others to the rest. Slot runs mostly wait on Shopify and
# Kakao: 16 threads deliver 1,000 shops' digests in 40 s where 6 took 65 s (bench/tenants.py).
THREADS = 16
LATE_AFTER = timedelta(minutes=1)  # a run this long after its slot is marked late in history
SETTINGS_POLL = 2.0  # seconds between looks at the settings clock: a merchant's change applies within this


@dataclass(frozen=True)
class CatchUp:
    """What `catch_up` did about one job's latest slot: "sent" (late) or "missed"."""

    job: str
    instant: datetime
    action: str


def is_scheduled(job: JobConfig) -> bool:
    return bool(getattr(job_kind(job.kind), "SCHEDULED", True))


@dataclass(frozen=True)
class _Entry:
    job: JobConfig
    kind: str  # "slots" (a scheduled job) | "quiet" (the end of an alert job's quiet hours)
    trigger: WallClockTrigger


class BotScheduler:
    """The configured jobs on APScheduler; `start()`, `stop(timeout)`, `next_runs()`, `every()`."""

    def __init__(self, app: App, *, clock: Callable[[], datetime] | None = None,
                 stopping: threading.Event | None = None):
        self.app = app
        # Set by `stop()` (and by `run` at SIGTERM, when it passes its event): a fan-out in progress
        # finishes its Kakao call in flight and leaves the rest to a re-run (bot.delivery.fanout).
        self.stopping = stopping if stopping is not None else threading.Event()
        self.clock = clock or app.clock
        self.config = app.config
        self.zone = app.config.timezone
        self.grace = timedelta(seconds=app.config.grace_seconds)
        self.alerts = AlertSender(app)
        self.retries = SlotRetries(app, self.grace, fire=self.fire_at, schedule=self.once)  # failed runs: again
        self.last_catch_up: list[CatchUp] = []
        self.last_runs = LastRuns()  # for /healthz (bot.web.health)
        self._entries: dict[str, _Entry] = {}
        for job in app.config.jobs:  # the merchants' are added by start() (they live in the database)
            self._enter(job)
        if logging.getLogger("apscheduler").level == logging.NOTSET:
            # Its INFO lines ("Running job …") would repeat every housekeeping tick; ours say what ran.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(THREADS)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          # APScheduler takes None (no limit) or a positive number; grace 0 → 1 s.
                          "misfire_grace_time": max(1, app.config.grace_seconds)},
            timezone=self.zone,
        )
        # A run APScheduler drops as more than the grace late (host suspended, pool busy) is reported
        # like a slot missed while down, never dropped silently.
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._active = 0
        self._idle = threading.Condition()
        self._stopped = False

    # -- life cycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> "BotScheduler":
        """Catch up on slots missed while the bot was down, then schedule every job."""
        now = self.clock()
        for job in self.app.merchant_jobs.current():
            self._enter(job)
        check_app_quota(self.app)
        self.catch_up(now)
        for name, entry in self._entries.items():
            self._add(name, entry, now)  # first run after the catch-up's `now`: a slot passing meanwhile is kept
        self.every("merchant-settings", SETTINGS_POLL, self.sync_merchant_jobs)
        self._scheduler.start()
        log.info("scheduler started (%s): %s", self.zone,
                 "; ".join(schedule_text(item) for item in self.next_runs()) or "no scheduled jobs")
        return self

    def sync_merchant_jobs(self) -> None:
        """If a merchant's settings changed (the settings clock moved), their jobs as they now are:
        new ones scheduled, changed ones rescheduled, removed ones stopped; config.toml's untouched."""
        if not self.app.merchant_jobs.refresh():
            return
        check_app_quota(self.app)  # before a slot of all of them would run past Kakao's 30,000 a day
        wanted = {job.name: job for job in self.app.merchant_jobs.current()}
        for name, entry in list(self._entries.items()):
            if name.startswith(MERCHANT_PREFIX) and wanted.get(name) != entry.job:  # removed or changed
                del self._entries[name]
                self._scheduler.remove_job(f"job:{name}")
        for job in wanted.values():
            if job.name not in self._entries and self._enter(job):
                self._add(job.name, self._entries[job.name], self.clock())

    def _enter(self, job: JobConfig) -> bool:
        """Give `job` its entry: its slots, or the end of an alert kind's quiet hours; False if neither."""
        if is_scheduled(job):
            self._entries[job.name] = _Entry(job, "slots", job_trigger(job.at, self.config))
        elif getattr(job.params, "quiet", None) is not None:
            end = job.params.quiet.end
            self._entries[job.name] = _Entry(job, "quiet", WallClockTrigger(
                [CronTrigger(hour=end.hour, minute=end.minute, timezone=self.zone)], self.zone))
        return job.name in self._entries

    def _add(self, name: str, entry: _Entry, now: datetime) -> None:
        first = entry.trigger.get_next_fire_time(None, to_utc(now) + TICK)
        # Held alerts are owed their summary, however late.
        options: dict[str, Any] = {"misfire_grace_time": None} if entry.kind == "quiet" else {}
        self._scheduler.add_job(self._guarded(self._fire), trigger=entry.trigger, args=[name],
                                id=f"job:{name}", name=f"{entry.kind}:{name}", next_run_time=first, **options)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop firing; wait up to `timeout` s (None: for ever) for runs in progress; True if none is left."""
        self._stopped = True
        self.stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout)
            left = self._active
        if left:
            log.warning("scheduler: %d run(s) still in progress after %.0f s", left, timeout or 0)
        return not left

    def shutdown(self, wait: bool = True) -> bool:
        return self.stop(None if wait else 0)

    def every(self, name: str, seconds: float, fn: Callable[[], object], *, run_now: bool = False) -> None:
        """Run `fn()` every `seconds` (housekeeping: health checks, watchdog pings); errors are logged."""
        if seconds <= 0:
            raise ValueError("seconds must be positive")

        def run() -> None:
            try:
                fn()
            except Exception:  # noqa: BLE001 — one bad tick must not stop the next ones
                log.exception("scheduler: %s failed", name)

        options: dict[str, Any] = {"next_run_time": datetime.now(self.zone)} if run_now else {}
        self._scheduler.add_job(self._guarded(run), trigger=IntervalTrigger(seconds=seconds, timezone=self.zone),
                                id=f"every:{name}", name=f"every:{name}", replace_existing=True,
                                misfire_grace_time=max(1, int(seconds)), **options)

    def once(self, name: str, at: datetime, fn: Callable[[], object]) -> None:
        """Run `fn()` once at `at` (a slot's retry: bot.delivery.slot_retries); replaces a pending one of that name."""
        self._scheduler.add_job(self._guarded(fn), trigger="date", run_date=at, id=f"once:{name}", name=f"once:{name}",
                                replace_existing=True, misfire_grace_time=None)

    def _guarded(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Counts runs in progress, so that `stop(timeout)` can wait for them."""
        def run(*args: Any) -> None:
            with self._idle:
                if self._stopped:
                    return
                self._active += 1
            try:
                fn(*args)
            finally:
                with self._idle:
                    self._active -= 1
                    self._idle.notify_all()
        return run

    # -- what runs when --------------------------------------------------------------------
    def next_runs(self, now: datetime | None = None) -> list[JobSchedule]:
        """Every configured job with its next run (slots and crons) or its quiet window (alerts)."""
        now = to_utc(now or self.clock()) + TICK
        out = []
        for job in self.config.jobs:
            entry = self._entries.get(job.name)
            quiet = None if is_scheduled(job) else getattr(job.params, "quiet", None)
            next_run = next_summary = None
            if entry is not None and entry.kind == "slots":
                next_run = entry.trigger.get_next_fire_time(None, now)
            elif entry is not None:
                next_summary = entry.trigger.get_next_fire_time(None, now)
            out.append(JobSchedule(job.name, job.kind, next_run, job.at, len(job.to),
                                   str(quiet) if quiet else None, next_summary))
        return out

    def due(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        """(job name, scheduled instant) of every firing in (start, end], in time order."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be aware datetimes")
        found = [(name, instant) for name, entry in self._entries.items()
                 for instant in entry.trigger.fires(to_utc(start) + TICK, end)]
        return sorted(found, key=lambda item: (item[1].astimezone(UTC), item[0]))

    def previous_slot(self, job_name: str, instant: datetime) -> datetime | None:
        """The slot of this job before `instant` (up to 8 days back): the `since` of a digest."""
        return self._entries[job_name].trigger.latest(instant, before=True)

    # -- firing ------------------------------------------------------------------------------
    def _fire(self, job_name: str) -> None:
        """The APScheduler callback: run the slot that is due, identified by its scheduled instant."""
        now = self.clock()
        entry = self._entries.get(job_name)
        if entry is None:  # a merchant's job removed by their settings while this firing waited
            return
        instant = entry.trigger.latest(now)
        if instant is None:
            log.warning("%s: fired at %s with no slot due", job_name, now.astimezone(self.zone).isoformat())
            return
        self.fire_at(job_name, instant, now)

    def fire_at(self, job_name: str, instant: datetime, now: datetime | None = None
                ) -> RunReport | FanoutReport | None:
        """Run `job_name` for its slot at `instant`, as it happens at `now`; never raises."""
        now = now or self.clock()
        entry = self._entries[job_name]
        instant = instant.astimezone(UTC).astimezone(self.zone)  # one spelling of the instant, one slot key
        try:
            if entry.kind == "quiet":
                return self.alerts.send_quiet_summary(entry.job, instant, now)
            if now.astimezone(UTC) - instant.astimezone(UTC) > self.grace:
                self._missed(entry.job, instant, now)
                return None
            return self.retries.settled(entry.job, instant, now, self._run(entry.job, instant, now))
        except Exception as exc:  # noqa: BLE001 — a job's problem must never stop the scheduler
            log.exception("%s: the run for %s failed", job_name, instant.isoformat())
            self.last_runs.crashed(job_name, instant, now, exc)
            return self.retries.settled(entry.job, instant, now, exc)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        """APScheduler's EVENT_JOB_MISSED: a slot's run came more than the grace late."""
        entry = self._entries.get(event.job_id[len("job:"):]) if event.job_id.startswith("job:") else None
        if entry is None or entry.kind != "slots":
            return
        try:
            self._missed(entry.job, event.scheduled_run_time.astimezone(UTC).astimezone(self.zone), self.clock())
        except Exception:  # noqa: BLE001 — never in APScheduler's way
            log.exception("%s: could not record the missed run at %s", entry.job.name, event.scheduled_run_time)

    def _run(self, job: JobConfig, instant: datetime, now: datetime) -> RunReport:

        late = now.astimezone(UTC) - instant.astimezone(UTC) > LATE_AFTER
        since = self.previous_slot(job.name, instant)
        report = Runner(self.app, stopping=self.stopping, retried=True).run(
            job, instant.isoformat(), late=late, since=since, until=instant)
        if not (report.fanout is not None and report.fanout.stopped):
            # A run cut short by a stop is owed: the next start's catch-up retakes it.
            mark_slots(self.app.db, job.name, done=instant)
        log_report(report, late)
        self.last_runs.record(job.name, instant, now, report)
        trim()  # what the run freed goes back to the system, not into malloc's arenas (bot.util.native_memory)
        return report

    def _missed(self, job: JobConfig, instant: datetime, now: datetime) -> None:
        """Record a slot missed by more than the grace: a skipped row per recipient, nothing sent."""
        slot_key = instant.isoformat()
        local = instant.astimezone(self.zone)
        reason = f"missed: the bot was down at {local:%H:%M} (more than {duration_text(self.grace)} ago)"
        with self.app.db.session() as session:
            started = session.scalar(select(func.count()).where(Delivery.job == job.name,
                                                                Delivery.slot_key == slot_key)) or 0
        if started:
            # `send-now --slot`, or a run cut short: what it recorded stands; nothing more is sent.
            log.warning("%s: the slot at %s already has %d delivery row(s); it is more than %s late, so nothing "
                        "more is sent for it", job.name, local.isoformat(), started, duration_text(self.grace))
        else:
            for recipient in job.to:
                key, label = ("me", "me") if recipient.kind == "me" else (str(recipient), recipient.value)
                self.app.deliveries.skip(job=job.name, slot_key=slot_key, recipient=key, label=label,
                                         sender=job.sender, quota_day=quota_day(now), reason=reason)
            log.warning("%s: slot %s %s; not sent", job.name, local_time(instant, self.zone), reason)
            self.last_runs.missed(job.name, instant, now, reason)
            self._report_missed(job, instant, now)
        mark_slots(self.app.db, job.name, done=instant)

    def _report_missed(self, job: JobConfig, instant: datetime, now: datetime) -> None:
        """Tell a person (bot.delivery.problems: a log line and one KakaoTalk message to "me")."""
        try:
            ProblemReporter(self.app).missed_slot(job.name, instant, now=now, reason=(
                f"the bot was not running, and it is more than {duration_text(self.grace)} late: not sent"))
        except Exception:  # noqa: BLE001 — the report is best effort; the skipped rows and the log stand
            log.exception("%s: could not report the missed slot", job.name)

    # -- catching up -----------------------------------------------------------------------
    def catch_up(self, now: datetime | None = None) -> list[CatchUp]:
        """Per job, its latest slot ≤ now if it passed while the bot was down: sent (≤ grace) or missed.

        Held quiet-hours alerts whose window ended meanwhile are summarised (however late:
        they are one message, and otherwise lost).
        """
        now = now or self.clock()
        done: list[CatchUp] = []
        for name, entry in self._entries.items():
            try:
                if entry.kind == "quiet":
                    end = entry.trigger.latest(now)
                    if end is not None and self.alerts.send_quiet_summary(entry.job, end, now) is not None:
                        done.append(CatchUp(name, end, "summary"))
                    continue
                action = self._catch_up_job(entry, now)
                if action is not None:
                    done.append(action)
            except Exception:  # noqa: BLE001 — one job's problem must not stop the others
                log.exception("%s: catching up failed", name)
        self.last_catch_up = done
        return done

    def _catch_up_job(self, entry: _Entry, now: datetime) -> CatchUp | None:
        job = entry.job
        marks = slot_marks(self.app.db, job.name)
        seen = parse_instant(marks.get("seen"))
        if seen is None:
            mark_slots(self.app.db, job.name, seen=now)  # from now on this job's slots are owed
            return None
        instant = entry.trigger.latest(now)
        if instant is None or instant <= seen:
            return None
        last_done = parse_instant(marks.get("done"))
        if last_done is not None and last_done >= instant:
            return None
        if now.astimezone(UTC) - instant.astimezone(UTC) <= self.grace:
            log.info("%s: the slot at %s passed while the bot was down; sending it now (late)", job.name,
                     instant.isoformat())
            self.retries.settled(job, instant, now, self._run(job, instant.astimezone(self.zone), now))
            return CatchUp(job.name, instant, "sent")
        self._missed(job, instant.astimezone(self.zone), now)
        return CatchUp(job.name, instant, "missed")
