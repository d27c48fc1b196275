"""The last run of each scheduled job in this process, with its outcome, for /healthz.

The scheduler (bot.service.scheduler) calls `record` after each run, `missed` for a slot that was
skipped as too late, `crashed` when a run raised. Kept in memory: it tells what this process
did since it started; `history` has the deliveries of every run ever.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from bot.delivery.run_report import RunReport

REASON_MAX = 200  # a short reason: the full text is in the log and in `history`


@dataclass(frozen=True)
class LastRun:
    """One run: the slot it was for, when it ran, ok or failed and why."""

    job: str
    slot: datetime
    ran_at: datetime
    outcome: str  # "ok" | "failed"
    reason: str | None = None

    def as_json(self, zone: tzinfo) -> dict[str, Any]:
        body: dict[str, Any] = {"slot": self.slot.astimezone(zone).isoformat(),
                                "ran_at": self.ran_at.astimezone(zone).isoformat(), "outcome": self.outcome}
        if self.reason:
            body["reason"] = self.reason
        return body


class LastRuns:
    """Thread-safe: the scheduler's pool threads record, the HTTP threads read."""

    def __init__(self) -> None:
        self._runs: dict[str, LastRun] = {}
        self._lock = threading.Lock()

    def record(self, job: str, slot: datetime, ran_at: datetime, report: RunReport) -> None:
        """After a run: a RunReport (bot.delivery.run_report) or None (nothing ran)."""
        outcome, reason = _judge(report)
        self._put(LastRun(job, slot, ran_at, outcome, reason))

    def missed(self, job: str, slot: datetime, ran_at: datetime, reason: str) -> None:
        self._put(LastRun(job, slot, ran_at, "failed", _short(reason)))

    def crashed(self, job: str, slot: datetime, ran_at: datetime, exc: BaseException | None = None) -> None:
        what = f"{type(exc).__name__}: {exc}" if exc is not None else "the run raised"
        self._put(LastRun(job, slot, ran_at, "failed", _short(f"{what} (see the log)")))

    def get(self, job: str) -> LastRun | None:
        with self._lock:
            return self._runs.get(job)

    def _put(self, run: LastRun) -> None:
        with self._lock:
            self._runs[run.job] = run


def _judge(report: RunReport) -> tuple[str, str | None]:
    if report.status == "failed":
        return "failed", _short(report.error or "failed")
    fanout = report.fanout
    if fanout is not None and fanout.failed:
        bad = [result for result in fanout.results if result.status in ("failed", "unknown")]
        first = bad[0]
        return "failed", _short(f"{len(bad)} of {len(fanout.results)} recipient(s) {first.status}: "
                                f"{first.label}: {first.reason or first.status}")
    if report.chart_error:  # the message went out, as text: a partial failure, shown in /healthz
        return "ok", _short(f"sent without its chart: {report.chart_error}")
    return "ok", None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 1] + "…"
