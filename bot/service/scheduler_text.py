"""What the scheduler tells: next runs as plain data (`JobSchedule`), and its log lines — run outcomes,
next runs and durations, one line each."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.delivery.run_report import RunReport

log = logging.getLogger("bot.scheduler")  # the scheduler's own lines, whichever module words them


@dataclass(frozen=True)
class JobSchedule:
    """What `next_runs()` tells about one configured job (plain data, no APScheduler object)."""

    name: str
    kind: str
    next_run: datetime | None  # aware, in the configured zone; None: not scheduled (webhook alerts)
    at: tuple[str, ...]
    recipients: int = 0
    quiet: str | None = None  # alert jobs: the quiet window "22:00-07:00"
    next_summary: datetime | None = None  # alert jobs with quiet hours: when the held alerts are sent


def log_report(report: RunReport, late: bool) -> None:
    """One log line per run: failed, nothing to report, or the count of each outcome."""
    when = f"{report.job} [{report.slot_key}]{' (late)' if late else ''}"
    if report.status == "failed":
        log.error("%s: failed: %s", when, report.error)
    elif report.status == "nothing":
        log.info("%s: nothing to report", when)
    elif report.fanout is not None:
        counts: dict[str, int] = {}
        for result in report.fanout.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        text = ", ".join(f"{count} {status}" for status, count in counts.items()) or "no recipients"
        (log.warning if report.fanout.failed else log.info)("%s: %s", when, text)


def schedule_text(item: JobSchedule) -> str:
    """"orders next at 2026-12-03 12:00 KST": one job's next run for the start-up log line."""
    if item.next_run is not None:
        return f"{item.name} next at {item.next_run:%Y-%m-%d %H:%M %Z}"
    if item.next_summary is not None:
        return f"{item.name} quiet {item.quiet}, summary at {item.next_summary:%Y-%m-%d %H:%M %Z}"
    return f"{item.name} on webhooks"
