"""Delivering order alerts (`shopify-order-alert` jobs) through the ordinary delivery machinery.

The webhook worker and the reconciliation both call `AlertSender.deliver(job, slot_key,
outcome)`; like `bot.delivery.runner` it resolves the recipients, renders once per audience and hands
the rest to `bot.delivery.fanout.Fanout`, whose (job, slot_key, recipient) rows make each alert exactly
once per recipient — across the two paths, restarts and instances. Nothing here decides
*whether* to alert: that is the caller's business.

Quiet hours (a job's `quiet = "22:00-07:00"`): an alert raised while the job's window holds the
local time is not sent but held — one job-memory row per alert, under the job-memory name
`quiet:<job>` and the alert's slot key, so the webhook and the reconciliation raising the same
order hold it once. When the window ends the scheduler calls `send_quiet_summary(job, end)`:
ONE message per recipient lists the held alerts (a Kakao list message when there are several,
`bot.delivery.alert_summary`; every alert kind supplies its own summary line), delivered under the slot key
`quiet:<job>:<end ISO>` (exactly once, however often it is called for that end). An alert that
was held is never sent on its own afterwards, even when raised again after the window.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Iterable

from sqlalchemy import delete, select, update

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.alert_summary import held_record, quiet_summary_template
from bot.delivery.audience import FriendsLookup, app_fanout, audience_messages
from bot.delivery.fanout import FanoutReport, RecipientResult
from bot.delivery.unknown_sends import report_refusals, report_unknown_sends
from bot.kakao.errors import KakaoLoginRequired
from bot.kakao.recipients import Target, resolve
from bot.store.db import insert_for
from bot.store.models import JobMemory
from bot.store.order_names import remember as remember_order_name
from bot.util.keys import MEMORY_NAME_MAX, SLOT_KEY_MAX, fit_key
from bot.util.quiet_hours import QuietWindow
from bot.util.times import parse_instant, slot_instant
from jobs.base import Outcome
from jobs.shopify_order_alert import KIND, alert_outcome, below_min_total

log = logging.getLogger(__name__)

# Kakao's policy: friend lists are not kept beyond their purpose. A burst of orders reuses one
# list for this long, then it is fetched again.
FRIENDS_TTL = 60.0
# Held alerts already summarised are remembered this long, so that the reconciliation (which looks
# back up to a day) or a late webhook raising one again does not send it on its own.
QUIET_KEEP = timedelta(days=2)


class AlertFailed(Exception):
    """Some recipient's alert failed (and may succeed later: those rows are retaken on a retry)."""


def alert_jobs(app: App, shop: str | None = None) -> list[JobConfig]:
    """The `shopify-order-alert` jobs, config.toml's and the merchants' (of `shop`, when given)."""
    return [job for job in app.jobs()
            if job.kind == KIND and (shop is None or job.params.shop == shop)]


class AlertSender:
    def __init__(self, app: App, *, friends_ttl: float = FRIENDS_TTL):
        self.app = app
        self._friends = FriendsLookup(app, ttl=friends_ttl)

    def alert_order(self, jobs: list[JobConfig], slot_key: str, order: dict[str, Any], *, event: str = "new",
                    changes: Iterable[str] = ()) -> tuple[int, list[str]]:
        """One order's alert for each of `jobs` (the webhook and the reconciliation both come here):
        (messages sent, what failed). One job's failure does not stop the others; each is logged."""
        sent, problems = 0, []
        remember_order_name(self.app.db, slot_key, order)  # `history` shows "#1001", not the gid
        for job in jobs:
            try:
                outcome = alert_outcome(job, order, event=event, changes=changes, timezone=self.app.config.timezone)
                if below_min_total(job.params.min_total, outcome.context.get("total")):
                    log.info("%s: %s is below min_total %s: not alerted", job.name, slot_key, job.params.min_total)
                    continue
                report = self.deliver(job, slot_key, outcome)
            except Exception as exc:  # noqa: BLE001 — one job's problem must not stop the others
                log.exception("%s: alert %s failed", job.name, slot_key)
                problems.append(f"{job.name}: {type(exc).__name__}: {exc}")
                continue
            sent += report.count("sent")
            problems += [f"{job.name} → {problem}" for problem in problems_of(report)]
        return sent, problems

    def deliver(self, job: JobConfig, slot_key: str, outcome: Outcome) -> FanoutReport:
        """Send `outcome` to the job's recipients under `slot_key` (each at most once, ever).

        Inside the job's quiet hours the alert is held for the summary instead (status "held").
        """
        now = self.app.clock().astimezone(self.app.config.timezone)
        quiet: QuietWindow | None = getattr(job.params, "quiet", None)
        if quiet is not None:
            if quiet.contains(now):
                return self._hold(job, slot_key, outcome, now, quiet)
            held = self._held_row(job, slot_key)
            if held is not None:
                log.info("%s: %s was held in quiet hours; it is in the summary, not sent on its own",
                         job.name, slot_key)
                until = parse_instant(held.get("until"))
                return self._held_report(job, slot_key, "held in quiet hours: in the summary at "
                                         + (f"{until.astimezone(self.app.config.timezone):%H:%M}" if until else "?"))
        web_domain = self.app.config.kakao.web_domain
        return self._send(job, slot_key, now, lambda targets: audience_messages(job, outcome, targets, web_domain))

    def _send(self, job: JobConfig, slot_key: str, now: datetime,
              messages_for: Callable[[list[Target]], Callable[[Target], dict]], what: str = "") -> FanoutReport:
        """Fan out to the job's recipients under `slot_key`. The messages are made once the recipients
        are known and before anything is claimed: a template that fails leaves no half-made delivery.
        A Kakao login needing a person fails every recipient, naming why."""
        fanout = app_fanout(self.app, job.sender, job.name, slot_key, now)
        try:
            targets, unreachable = resolve(job.to, self._friends.for_job(job))
        except KakaoLoginRequired as exc:
            log.error("%s: %s%s", job.name, what, exc)
            return fanout.fail_all(job.to, str(exc))
        report = fanout.deliver(targets, unreachable, messages_for(targets))
        try:
            report_refusals(self.app, job.name, job.sender, report.results, now)  # told once, not per alert
            if report.count("unknown"):
                report_unknown_sends(self.app, now)  # at once; the service's sweep would within a minute
        except Exception:  # noqa: BLE001 — bookkeeping: the alert's own outcome is recorded already
            log.exception("%s: could not report the alert's problems", job.name)
        return report

    # -- quiet hours -----------------------------------------------------------------------
    def _hold(self, job: JobConfig, slot_key: str, outcome: Outcome, now: datetime,
              quiet: QuietWindow) -> FanoutReport:
        until = quiet_window_end(quiet, now, self.app.config.timezone)
        value = held_record(outcome.context, until, now)
        with self.app.db.session() as session:
            # One row per alert: the webhook and the reconciliation holding the same order meet here.
            session.execute(insert_for(session.bind.dialect.name, JobMemory).values(
                job=quiet_memory_name(job.name), key=slot_key, value_json=json.dumps(value, ensure_ascii=False),
                updated_at=self.app.clock()).on_conflict_do_nothing(index_elements=["job", "key"]))
        log.info("%s: %s held (quiet hours %s) for the summary at %s", job.name, slot_key, quiet,
                 f"{until:%H:%M}")
        return self._held_report(job, slot_key, f"quiet hours {quiet}: in the summary at {until:%H:%M}")

    def _held_row(self, job: JobConfig, slot_key: str) -> dict[str, Any] | None:
        with self.app.db.session() as session:
            row = session.get(JobMemory, (quiet_memory_name(job.name), slot_key))
            return json.loads(row.value_json) if row else None

    @staticmethod
    def _held_report(job: JobConfig, slot_key: str, reason: str) -> FanoutReport:
        results = [RecipientResult(str(r), "me" if r.kind == "me" else r.value, "held", reason) for r in job.to]
        return FanoutReport(job.name, slot_key, results)

    def held(self, job: JobConfig) -> list[tuple[str, dict[str, Any]]]:
        """(slot key, stored alert) of the alerts held for `job` and not yet in a summary."""
        return [(key, value) for key, value, _ in self._quiet_rows(job) if not value.get("summary")]

    def _quiet_rows(self, job: JobConfig) -> list[tuple[str, dict[str, Any], str]]:
        with self.app.db.session() as session:
            rows = session.execute(select(JobMemory.key, JobMemory.value_json)
                                   .where(JobMemory.job == quiet_memory_name(job.name))).all()
        loaded = [(key, json.loads(text), text) for key, text in rows]
        return sorted(loaded, key=lambda row: (row[1].get("held_at") or "", row[0]))

    def send_quiet_summary(self, job: JobConfig, end: datetime, now: datetime | None = None) -> FanoutReport | None:
        """One message listing the alerts held until the window that ends at `end`; None if none were.

        Exactly once per recipient for a given `end`: the held alerts are first assigned to this
        summary, then delivered under `quiet:<job>:<end>`. Called again for the same `end` (a
        second firing, a catch-up after a restart) it finds them assigned, and the deliveries
        table sends only to recipients who have not had it (after a failure), never twice.
        """
        quiet: QuietWindow | None = getattr(job.params, "quiet", None)
        if quiet is None:
            return None
        zone = self.app.config.timezone
        end = end.astimezone(zone)
        now = (now or self.app.clock()).astimezone(zone)
        summary_id = end.astimezone(timezone.utc).isoformat()
        name = quiet_memory_name(job.name)
        chosen: list[tuple[str, dict[str, Any]]] = []
        stale: list[str] = []
        for key, value, text in self._quiet_rows(job):
            assigned, until = value.get("summary"), parse_instant(value.get("until"))
            if assigned == summary_id and not value.get("told"):
                chosen.append((key, value))  # assigned by an earlier call that did not reach everyone
            elif not assigned and (until is None or until <= end):
                value = {**value, "summary": summary_id}
                with self.app.db.session() as session:
                    # Conditional on the row as read: of two summaries racing for an alert, one takes it.
                    taken = session.execute(
                        update(JobMemory).where(JobMemory.job == name, JobMemory.key == key,
                                                JobMemory.value_json == text)
                        .values(value_json=json.dumps(value, ensure_ascii=False), updated_at=self.app.clock())
                        .execution_options(synchronize_session=False)).rowcount
                if taken:
                    chosen.append((key, value))
            elif assigned and (parse_instant(assigned) or end) < now - QUIET_KEEP:
                stale.append(key)
        if stale:
            with self.app.db.session() as session:
                session.execute(delete(JobMemory).where(JobMemory.job == name, JobMemory.key.in_(stale))
                                .execution_options(synchronize_session=False))
        if not chosen:
            return None
        web_domain = self.app.config.kakao.web_domain
        template = quiet_summary_template(quiet, [value for _, value in chosen], web_domain=web_domain)
        slot_key = quiet_slot_key(job.name, end)
        report = self._send(job, slot_key, now, lambda _targets: lambda _target: template, "quiet-hours summary: ")
        if not report.failed:
            # Done: later calls for this end find nothing to do. Otherwise the next call (a second
            # firing, the catch-up) retries, and the deliveries table skips whoever has it already.
            with self.app.db.session() as session:
                for key, value in chosen:
                    session.execute(update(JobMemory).where(JobMemory.job == name, JobMemory.key == key)
                                    .values(value_json=json.dumps({**value, "told": True}, ensure_ascii=False))
                                    .execution_options(synchronize_session=False))
        log.info("%s: quiet-hours summary of %d alert(s) [%s]: %d sent", job.name, len(chosen), slot_key,
                 report.count("sent"))
        return report


def quiet_memory_name(job_name: str) -> str:
    """The job-memory name holding a job's held alerts (hashed when it would not fit the column)."""
    return fit_key(job_name, MEMORY_NAME_MAX, prefix="quiet:")


def quiet_slot_key(job_name: str, end: datetime) -> str:
    """`quiet:<job>:<window end ISO>`: the delivery key of one summary (hashed when too long)."""
    return fit_key(f"quiet:{job_name}:{end.isoformat()}", SLOT_KEY_MAX, digest_chars=16, keep_head=True)


def quiet_window_end(quiet: QuietWindow, now: datetime, zone: tzinfo) -> datetime:
    """When the window holding `now` ends: the first local `quiet.end` after `now` (DST-safe)."""
    local = now.astimezone(zone)
    for offset in (0, 1, 2):
        end = slot_instant(quiet.end, local.date() + timedelta(days=offset), zone)
        if end.astimezone(timezone.utc) > now.astimezone(timezone.utc):
            return end
    raise AssertionError("unreachable: a wall time comes back every day")


def problems_of(report: FanoutReport) -> list[str]:
    """The recipients whose alert failed (worth another try later), for an error message."""
    return [f"{r.label}: {r.reason or r.status}" for r in report.results if r.status == "failed"]
