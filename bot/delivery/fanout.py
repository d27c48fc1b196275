"""Delivering one job's message to its recipients: claim, quota, send in calls of ≤ 5, record.

Each recipient's row moves to `sending` (committed) before its request goes out, so a
crash leaves an honest `unknown` rather than a silent repeat; every outcome is recorded
per recipient, and one recipient's failure never stops the others.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from bot.kakao.client import MAX_RECEIVERS, KakaoApi
from bot.kakao.errors import KakaoError, KakaoOAuthError, KakaoSendUnknown
from bot.kakao.quota import ME_RESERVE, quota_day
from bot.kakao.recipients import Recipient, Target, Unreachable
from bot.store.deliveries import Claim, DeliveryLog
from bot.store.quota_counts import load_quota_book
from bot.util.progress import QUIET, Progress
from bot.util.report_logging import IN_REPORT

log = logging.getLogger(__name__)

# A stop (SIGTERM) between two calls: the rest are released, retakeable by a re-run (skipped).
STOPPED_REASON = ("stopped before sending: the service was shutting down; a re-run or the next start "
                  "within grace sends it")


@dataclass
class RecipientResult:
    key: str
    label: str
    status: str  # sent | failed | unknown | skipped | already-sent | elsewhere (another instance sends)
    reason: str = ""
    code: int | None = None
    retryable: bool = False  # failed for a reason that can pass (Kakao -1/-9798, 5xx, unreachable): try later


@dataclass
class FanoutReport:
    job: str
    slot_key: str
    results: list[RecipientResult] = field(default_factory=list)
    token_error: str | None = None  # no access token could be had: nothing could be sent
    stopped: bool = False  # the service began stopping mid-fan-out: some recipients were left for a re-run

    @property
    def problems(self) -> list[RecipientResult]:
        return [r for r in self.results if r.status in ("failed", "unknown", "skipped")]

    @property
    def failed(self) -> bool:
        return any(r.status in ("failed", "unknown") for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


@dataclass
class Fanout:
    """Everything one delivery needs; `message_for` gives each target its template object."""

    log: DeliveryLog
    api: KakaoApi
    db_session: Callable  # Database.session, for the quota counts
    job: str
    slot_key: str
    sender: str
    now: datetime
    late: bool = False
    alert: bool = False  # a problem report to "me": may use the reserved quota
    reserve: int = ME_RESERVE  # of the sender's daily quota, kept for problem reports
    # Set when the service is stopping: the call in flight finishes and is recorded, the rest are
    # recorded `skipped` (STOPPED_REASON) without being sent, so a re-run takes them over.
    stopping: threading.Event | None = None
    progress: Progress = QUIET  # recipients sent so far, for a person at a terminal (bot.util.progress)

    def deliver(self, targets: Sequence[Target], unreachable: Sequence[Unreachable],
                message_for: Callable[[Target], dict]) -> FanoutReport:
        report = FanoutReport(self.job, self.slot_key)
        day = quota_day(self.now)
        for problem in unreachable:
            self._skip(report, problem.key, problem.label, problem.reason, day)
        claimed: list[tuple[Target, int]] = []
        claims = self.log.claim_many(job=self.job, slot_key=self.slot_key, sender=self.sender, quota_day=day,
                                     recipients=[(t.key, t.label) for t in targets], late=self.late)
        by_key = {target.key: target for target in targets}
        for claim in claims:
            target = by_key[claim.recipient]
            if claim.row_id is None:
                report.results.append(_not_claimed(target, claim))
            else:
                claimed.append((target, claim.row_id))
        with self.db_session() as session:
            book = load_quota_book(session, self.sender, day, [t.key for t, _ in claimed], self.reserve)
        allowed = []
        for target, row_id in claimed:
            refusal = book.take(target.key, alert=self.alert)
            if refusal:
                self.log.mark([row_id], "skipped", reason=refusal)
                report.results.append(RecipientResult(target.key, target.label, "skipped", refusal))
            else:
                allowed.append((target, row_id))
        self._send_all(allowed, message_for, report)
        for result in report.problems:
            if result.reason != STOPPED_REASON:  # those are summed up in one line (_send_all)
                log.warning("%s → %s: %s %s", self.job, result.label, result.status, result.reason, extra=IN_REPORT)
        return report

    def _send_all(self, allowed: list[tuple[Target, int]], message_for: Callable[[Target], dict],
                  report: FanoutReport) -> None:
        me = [(t, r) for t, r in allowed if t.uuid is None]
        friends = [(t, r) for t, r in allowed if t.uuid is not None]
        batches = [friends[i:i + MAX_RECEIVERS] for i in range(0, len(friends), MAX_RECEIVERS)]
        pending = [me] if me else []
        pending += batches
        for index, batch in enumerate(pending):
            if self.stopping is not None and self.stopping.is_set():
                report.stopped = True
                log.info("%s: stopping: %d recipient(s) left for a re-run", self.job,
                         sum(len(rest) for rest in pending[index:]))
                for rest in pending[index:]:
                    self._record(rest, report, "skipped", STOPPED_REASON, None)
                return
            try:
                self._send_batch(batch, message_for, report)
                self.progress.recipients(self.job, sum(map(len, pending[:index + 1])), len(allowed))
            except KakaoOAuthError as exc:
                # No access token to be had (dead login, issuance rate limit, bad client secret):
                # no send can succeed and every try asks Kakao's token endpoint again, so the
                # rest are recorded as failed, by name.
                report.token_error = str(exc)
                for rest in pending[index + 1:]:
                    self._record(rest, report, "failed", str(exc), None, retryable=exc.retryable)
                return

    def _send_batch(self, batch: list[tuple[Target, int]], message_for: Callable[[Target], dict],
                    report: FanoutReport) -> None:
        template = message_for(batch[0][0])
        try:
            # Minted (refreshed, if due) before `sending` is committed: the window in which a crash
            # leaves an `unknown` holds the POST alone, no token request or database lock.
            api = self.api.minted()
        except KakaoOAuthError as exc:
            self._record(batch, report, "failed", str(exc), None, retryable=exc.retryable)
            raise
        except KakaoError as exc:
            self._record(batch, report, "failed", str(exc), _int_code(exc), retryable=exc.retryable)
            return
        with self.log.in_flight(row for _, row in batch):
            self._post(batch, template, api, report)

    def _post(self, batch: list[tuple[Target, int]], template: dict, api: KakaoApi, report: FanoutReport) -> None:
        """`sending` committed, the request, its outcome recorded (a failure to record it leaves `sending`
        for the sweep to resolve as `unknown`: DeliveryLog.resolve_stuck)."""
        moved = self.log.mark([row for _, row in batch], "sending")
        for target, row in batch:
            if row not in moved:
                # Our claim went stale and another instance took the row over: it sends, we don't.
                report.results.append(RecipientResult(target.key, target.label, "elsewhere",
                                                      "taken over by another instance"))
        batch = [(target, row) for target, row in batch if row in moved]
        if not batch:
            return
        try:
            if batch[0][0].uuid is None:
                api.send_to_me(template)
                self._record(batch, report, "sent", "", None)
                return
            result = api.send_to_friends([t.uuid for t, _ in batch], template)
        except KakaoSendUnknown as exc:
            self._record(batch, report, "unknown", str(exc), None)
            return
        except KakaoOAuthError as exc:
            self._record(batch, report, "failed", str(exc), None, retryable=exc.retryable)
            raise
        except KakaoError as exc:
            self._record(batch, report, "failed", str(exc), _int_code(exc), retryable=exc.retryable)
            return
        self._record([(t, row) for t, row in batch if t.uuid in result.sent], report, "sent", "", None)
        for target, row in batch:
            if target.uuid not in result.sent:
                error = result.failed[target.uuid]
                status = "unknown" if isinstance(error, KakaoSendUnknown) else "failed"
                self._record([(target, row)], report, status, str(error), _int_code(error),
                             retryable=status == "failed" and error.retryable)

    def _record(self, batch: list[tuple[Target, int]], report: FanoutReport, status: str, reason: str,
                code: int | None, *, retryable: bool = False) -> None:
        self.log.mark([row for _, row in batch], status, code=code, reason=reason or None)
        for target, _ in batch:
            report.results.append(RecipientResult(target.key, target.label, status, reason, code, retryable))

    def fail_all(self, recipients: Sequence[Recipient], reason: str) -> FanoutReport:
        """Record every configured recipient as failed for `reason`, without sending (e.g. dead login:
        friends cannot even be looked up, so each is keyed as configured, "friend:<nickname>")."""
        report = FanoutReport(self.job, self.slot_key, token_error=reason)
        day = quota_day(self.now)
        for recipient in recipients:
            key, label = str(recipient), "me" if recipient.kind == "me" else recipient.value
            target = Target(key, label)
            claim = self.log.claim(job=self.job, slot_key=self.slot_key, recipient=key, label=label,
                                   sender=self.sender, quota_day=day, late=self.late)
            if claim.row_id is None:
                report.results.append(_not_claimed(target, claim))
            else:
                self._record([(target, claim.row_id)], report, "failed", reason, None)
        for result in report.problems:
            log.warning("%s → %s: %s %s", self.job, result.label, result.status, result.reason, extra=IN_REPORT)
        return report

    def _skip(self, report: FanoutReport, key: str, label: str, reason: str, day: str) -> None:
        claim = self.log.skip(job=self.job, slot_key=self.slot_key, recipient=key, label=label,
                              sender=self.sender, quota_day=day, reason=reason)
        if claim.row_id is None and claim.previous_status == "sent":
            report.results.append(RecipientResult(key, label, "already-sent"))
        else:
            report.results.append(RecipientResult(key, label, "skipped", reason))


def _not_claimed(target: Target, claim: Claim) -> RecipientResult:
    if claim.previous_status == "sent":
        return RecipientResult(target.key, target.label, "already-sent")
    if claim.previous_status == "unknown":
        return RecipientResult(target.key, target.label, "unknown",
                               claim.previous_reason or "an earlier send's outcome is unknown; not repeated")
    # Another instance holds this recipient (it claimed or retook the row first): not a problem
    # to report, it sends; `elsewhere` keeps it out of the problem report to "me".
    return RecipientResult(target.key, target.label, "elsewhere", f"being sent by another instance ({claim.previous_status})")


def _int_code(error: KakaoError) -> int | None:
    return error.code if isinstance(error.code, int) else None
