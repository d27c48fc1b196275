"""Running one job for one slot: collect → resolve recipients → render → deliver → remember.

Used by `send-now` (and later the scheduler). A job's failure is reported and never stops
the other jobs; problems with recipients are summarised in one message to "me".
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.app import App
from bot.config.model import ConfigError, JobConfig
from bot.config.secrets import MissingSecret
from bot.delivery.audience import FriendsLookup, app_fanout, audience_messages
from bot.delivery.charts import attach_chart
from bot.delivery.fanout import Fanout, FanoutReport
from bot.delivery.problems import record_job_outcome
from bot.delivery.run_report import RunReport
from bot.delivery.unknown_sends import report_refusals, report_unknown_sends
from bot.kakao.errors import KakaoError, KakaoLoginRequired
from bot.kakao.recipients import Target, resolve
from bot.kakao.templates import TemplateError, text_template
from bot.store.job_memory import StoredJobState
from bot.util.logs import redact
from bot.util.progress import QUIET, Progress
from bot.util.report_logging import IN_REPORT
from bot.util.retry import can_pass
from jobs import job_kind
from jobs.base import JobContext, JobFailed, Outcome
from tokens.vault import VaultError

log = logging.getLogger(__name__)

LAST_FAILED_KEY = "last_failed_slot"  # job memory: the slot key of the latest failed run


class _PendingState:
    """The job's memory while it collects: reads see its writes at once; `store` writes them together,
    in one transaction (one commit, not one per key, and no half-updated memory — new validators with
    old items — if the process dies in between). A dry run never stores: it records nothing."""

    def __init__(self, stored: StoredJobState):
        self.stored, self.written = stored, {}
        self._read: dict[str, str] | None = None  # the stored memory, read once on first use, as JSON texts

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.written:
            return self.written[key]
        if self._read is None:
            self._read = self.stored.stored_json()
        # Decoded on each read: a caller changing what it got never changes what the next one gets.
        return json.loads(self._read[key]) if key in self._read else default

    def set(self, key: str, value: Any) -> None:
        self.written[key] = value

    def store(self) -> None:
        if self.written:
            self.stored.set_many(self.written)
            if self._read is not None:  # reads after this one see what was stored
                self._read.update((key, json.dumps(value, ensure_ascii=False)) for key, value in self.written.items())
            self.written = {}


class Runner:
    def __init__(self, app: App, *, stopping: threading.Event | None = None, retried: bool = False,
                 progress: Progress = QUIET, chart_dir: Path | None = None):
        self.app = app
        self.chart_dir = chart_dir  # where a dry run writes its charts (bot.delivery.charts); None: a temp folder
        # Set by the service's scheduler: a failure that can pass is retried (bot.delivery.slot_retries), so it is
        # left out of the slot's report to "me"; past the grace it is reported as a missed slot.
        self.retried = retried
        self.progress = progress  # handed to the Shopify client and the fan-out (bot.util.progress)
        # Set by `run` on SIGTERM: a fan-out finishes its Kakao call in flight and leaves the rest (Fanout).
        self.stopping = stopping
        self._friends = FriendsLookup(app)  # per sender, for this run only (Kakao policy)

    def run(self, job: JobConfig, slot_key: str, *, dry_run: bool = False, late: bool = False,
            since: datetime | None = None, until: datetime | None = None) -> RunReport:
        try:
            report = self._run(job, slot_key, dry_run=dry_run, late=late, since=since, until=until)
        except (ConfigError, MissingSecret, VaultError):
            raise  # the setup is wrong, not this job: every job would fail the same way (exit 2)
        except Exception as exc:  # noqa: BLE001 — one job's bug must not stop the other jobs
            log.exception("%s failed unexpectedly", job.name)
            report = self._failed(job, slot_key, redact(f"{type(exc).__name__}: {exc}"), retryable=can_pass(exc))
        if not dry_run and self._counts(job, report):
            # Failing twice in a row is a problem told to "me" once (bot.delivery.problems); a success ends it.
            record_job_outcome(self.app, job.name, report)
        return report

    def _counts(self, job: JobConfig, report: RunReport) -> bool:
        """Whether this run counts towards "failing N times in a row": a slot failing again when it is
        retried (bot.delivery.slot_retries, or cron running `send-now --slot` again) is one failure, not one per try."""
        if not report.failed:
            return True
        try:
            state = StoredJobState(self.app.db, job.name)
            if state.get(LAST_FAILED_KEY) == report.slot_key:
                return False
            state.set(LAST_FAILED_KEY, report.slot_key)
        except Exception:  # noqa: BLE001 — the database is away: record_job_outcome logs that itself
            log.debug("%s: cannot read the last failed slot", job.name, exc_info=True)
        return True

    def _run(self, job: JobConfig, slot_key: str, *, dry_run: bool, late: bool,
             since: datetime | None, until: datetime | None) -> RunReport:
        kind = job_kind(job.kind)
        stored = StoredJobState(self.app.db, job.name)
        now = self.app.clock().astimezone(self.app.config.timezone)
        state = _PendingState(stored)
        ctx = JobContext(state=state, http=self.app.http, now=now,
                         since=since, until=until, link_url=self.app.config.kakao.web_domain,
                         shopify=lambda shop: self.app.shopify_graphql(shop, progress=self.progress))
        try:
            try:
                outcome = kind.collect(job, ctx)
            finally:
                if not dry_run:
                    state.store()
        except JobFailed as exc:
            return self._failed(job, slot_key, str(exc), retryable=exc.retryable)
        if outcome.empty and (job.skip_if_empty or outcome.context.get("unchanged")):
            log.info("%s: nothing to report", job.name)
            return RunReport(job.name, slot_key, "nothing")
        try:
            targets, unreachable = resolve(job.to, self._friends.for_job(job))
        except KakaoLoginRequired as exc:
            if dry_run:
                return self._failed(job, slot_key, str(exc))
            return self._login_dead(job, slot_key, now, late, exc)

        # One chart per delivery, drawn and uploaded once for every recipient; without it the text goes out.
        # A re-run of a slot everybody already has (a retry, cron calling twice) draws and uploads nothing.
        # (Asked only when there is a chart: a query less per run of every other job.)
        has_chart = outcome.chart is not None or outcome.chart_error is not None
        if has_chart and not dry_run and targets and self.app.deliveries.settled(
                job=job.name, slot_key=slot_key, recipients=[target.key for target in targets]) >= {
                target.key for target in targets}:
            outcome = replace(outcome, chart=None, chart_error=None)
        chart = attach_chart(self.app, job, outcome, dry_run=dry_run, chart_dir=self.chart_dir)
        outcome = chart.outcome
        try:
            message_for = audience_messages(job, outcome, targets, self.app.config.kakao.web_domain)
        except (JobFailed, TemplateError) as exc:
            return self._failed(job, slot_key, f"{job.name}: cannot render the message: {exc}")
        if dry_run:
            previews = [(target.label, message_for(target)) for target in targets]
            previews += [(f"{problem.label} (skipped: {problem.reason})", {}) for problem in unreachable]
            return RunReport(job.name, slot_key, "dry-run", previews=previews, chart_path=chart.path,
                             chart_error=chart.error)
        report = self._fanout(job.name, slot_key, job.sender, now, late=late).deliver(targets, unreachable, message_for)
        # A fan-out cut short by a stop is not "delivered" yet: remembering it (only_if_changed) would
        # make the re-run of this slot find nothing new and never reach the recipients left over.
        if report.count("sent") and not report.stopped:
            self._remember(stored, outcome)
        self._report_problems(job, slot_key, report, now)
        return RunReport(job.name, slot_key, "delivered", fanout=report, chart_error=chart.error,
                         retryable=job.sender in self._friends.passing)

    def _login_dead(self, job: JobConfig, slot_key: str, now: datetime, late: bool,
                    exc: KakaoLoginRequired) -> RunReport:
        """No login, no message: every recipient is recorded as failed, naming the fix."""
        report = self._fanout(job.name, slot_key, job.sender, now, late=late).fail_all(job.to, str(exc))
        log.error("%s failed: %s", job.name, exc, extra=IN_REPORT)
        return RunReport(job.name, slot_key, "failed", error=str(exc), fanout=report)

    def _fanout(self, job_name: str, slot_key: str, sender: str, now: datetime, *, late: bool = False,
                alert: bool = False) -> Fanout:
        return app_fanout(self.app, sender, job_name, slot_key, now, late=late, alert=alert,
                          stopping=self.stopping, progress=self.progress)

    def _remember(self, stored: StoredJobState, outcome: Outcome) -> None:
        for key, value in outcome.on_delivered:
            stored.set(key, value)

    def _failed(self, job: JobConfig, slot_key: str, why: str, *, retryable: bool = False) -> RunReport:
        log.error("%s failed: %s", job.name, why, extra=IN_REPORT)
        return RunReport(job.name, slot_key, "failed", error=why, retryable=retryable)

    def _report_problems(self, job: JobConfig, slot_key: str, report: FanoutReport, now: datetime) -> None:
        """One message to "me" per job and slot naming who did not get the message, and why; each
        `unknown` send and each friend refusing messages is a problem of its own (bot.delivery.unknown_sends),
        told once by name, not in this list."""
        if report.count("unknown"):
            try:
                report_unknown_sends(self.app, now)
            except Exception:  # noqa: BLE001 — best effort: the service's sweep raises it at its next round
                log.exception("%s: could not report the unknown send(s)", job.name)
        try:  # a friend refusing messages is a lasting problem of its own, told once (bot.delivery.unknown_sends)
            problems = report_refusals(self.app, job.name, job.sender, report.results, now)
        except Exception:  # noqa: BLE001 — then it is at least in this slot's report
            log.exception("%s: could not record the friends refusing messages", job.name)
            problems = report.problems
        problems = [result for result in problems if result.status != "unknown"
                    and not (self.retried and result.status == "failed" and result.retryable)]
        if not problems or report.token_error:
            return  # without an access token, the report could not be sent either
        if self.stopping is not None and self.stopping.is_set():
            # No new Kakao call while stopping; the re-run that takes the rest over reports what still fails.
            log.info("%s: stopping: the problem report to me is left to the re-run", job.name)
            return
        lines = [f"⚠️ {job.name}: {len(problems)}명에게 보내지 못했습니다"]
        lines += [f"• {r.label}: {r.status} — {r.reason}" for r in problems]
        template = text_template("\n".join(lines), link=self.app.config.kakao.web_domain,
                                 web_domain=self.app.config.kakao.web_domain)
        alert = self._fanout(f"{job.name}!problems", slot_key, job.sender, now, alert=True)
        try:
            alert.deliver([Target("me", "me")], [], lambda _target: template)
        except KakaoError as exc:  # the report is best effort; the problems are already logged
            log.error("%s: could not report problems to me: %s", job.name, exc)
