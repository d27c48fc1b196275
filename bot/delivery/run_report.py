"""What one run of a job for one slot came to (bot.delivery.runner): read by the scheduler, the
retries, the problem reports, /healthz and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.delivery.fanout import FanoutReport


@dataclass
class RunReport:
    job: str
    slot_key: str
    status: str  # delivered | nothing | failed | dry-run
    error: str | None = None
    fanout: FanoutReport | None = None
    previews: list[tuple[str, dict]] = field(default_factory=list)  # (recipient label, template)
    retryable: bool = False  # the job, or the friends list, failed for a reason that can pass (bot.util.retry)
    chart_path: Path | None = None  # a dry run's chart, drawn to this file (bot.delivery.charts)
    chart_error: str | None = None  # why the job's chart is not in the message (the text went out without it)

    @property
    def failed(self) -> bool:
        return self.status == "failed" or bool(self.fanout and self.fanout.failed)

    @property
    def can_pass(self) -> bool:
        """It failed, the job or some recipient, for a reason that can pass: another run of the same
        slot may succeed (and sends only to whom it did not reach: the deliveries table)."""
        if self.fanout is not None and self.fanout.stopped:
            return False  # the service is stopping: the next start's catch-up takes the rest over
        return self.retryable or bool(self.fanout and any(r.status == "failed" and r.retryable
                                                          for r in self.fanout.results))
