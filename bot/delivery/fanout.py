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

from bot.kakao.client import MAX_RECEIVERS, KakaoApi, template_json
from bot.kakao.errors import KakaoError, KakaoOAuthError, KakaoSendUnknown
from bot.kakao.quota import ME_RESERVE, quota_day
from bot.kakao.recipients import Recipient, Target, Unreachable
from bot.store.deliveries import Claim, DeliveryLog, Outcome
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


Batch = list[tuple[Target, int]]  # the recipients of one Kakao call, with their rows


class _Outcomes:
    """The outcomes of a fan-out: in the report at once, written with the fan-out's next commit (the
    next call's `sending`, or `flush`), so one call costs one commit, not two."""

    def __init__(self, log: DeliveryLog, report: FanoutReport):
        self.log, self.report = log, report
        self.pending: list[Outcome] = []

    def add(self, batch: Batch, status: str, reason: str, code: int | None, *, retryable: bool = False) -> None:
        if not batch:
            return
        self.pending.append(Outcome(tuple(row for _, row in batch), status, code, reason or None))
        for target, _ in batch:
            self.report.results.append(RecipientResult(target.key, target.label, status, reason, code, retryable))

    def flush(self, *, sending: Sequence[int] = ()) -> set[int]:
        """Write the pending outcomes, and move `sending` to `sending`, in one commit; the ids moved."""
        pending, self.pending = self.pending, []
        return self.log.record(pending, sending=sending)


@dataclass
class Fanout:
    """Everything one delivery needs; `message_for` gives each target its template object."""

    log: DeliveryLog
    api: KakaoApi
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
        claims, book = self.log.claim_counted(job=self.job, slot_key=self.slot_key, sender=self.sender, quota_day=day,
                                              recipients=[(t.key, t.label) for t in targets], late=self.late,
                                              reserve=self.reserve)
        by_key = {target.key: target for target in targets}
        outcomes = _Outcomes(self.log, report)
        allowed: Batch = []
        for claim in claims:
            target = by_key[claim.recipient]
            if claim.row_id is None:
                report.results.append(_not_claimed(target, claim))
            elif refusal := book.take(target.key, alert=self.alert):
                outcomes.add([(target, claim.row_id)], "skipped", refusal, None)
            else:
                allowed.append((target, claim.row_id))
        # Registered for the whole fan-out: a row's outcome is written with the next call's commit, so
        # it stays `sending` a little after its request; the sweep must leave it to this fan-out meanwhile.
        with self.log.in_flight(row for _, row in allowed):
            try:
                self._send_all(allowed, message_for, outcomes)
            except BaseException:
                _flush_known(outcomes)
                raise
            outcomes.flush()
        for result in report.problems:
            if result.reason != STOPPED_REASON:  # those are summed up in one line (_send_all)
                log.warning("%s → %s: %s %s", self.job, result.label, result.status, result.reason, extra=IN_REPORT)
        return report

    def _send_all(self, allowed: Batch, message_for: Callable[[Target], dict], outcomes: _Outcomes) -> None:
        me = [(t, r) for t, r in allowed if t.uuid is None]
        friends = [(t, r) for t, r in allowed if t.uuid is not None]
        pending = [me] if me else []
        pending += [friends[i:i + MAX_RECEIVERS] for i in range(0, len(friends), MAX_RECEIVERS)]
        # Each template object's JSON, serialised once per fan-out; keyed by id(), the object kept alive
        # with it so that its id cannot be reused by another template meanwhile.
        texts: dict[int, tuple[dict, str]] = {}
        api: KakaoApi | None = None
        for index, batch in enumerate(pending):
            if self.stopping is not None and self.stopping.is_set():
                outcomes.report.stopped = True
                log.info("%s: stopping: %d recipient(s) left for a re-run", self.job,
                         sum(len(rest) for rest in pending[index:]))
                for rest in pending[index:]:
                    outcomes.add(rest, "skipped", STOPPED_REASON, None)
                return
            template = message_for(batch[0][0])
            if id(template) not in texts:
                texts[id(template)] = (template, template_json(template))
            text = texts[id(template)][1]
            try:
                api = self._send_batch(batch, text, api, outcomes)
            except KakaoOAuthError as exc:
                # No access token to be had (dead login, issuance rate limit, bad client secret):
                # no send can succeed and every try asks Kakao's token endpoint again, so the
                # rest are recorded as failed, by name.
                outcomes.report.token_error = str(exc)
                for rest in pending[index + 1:]:
                    outcomes.add(rest, "failed", str(exc), None, retryable=exc.retryable)
                return
            self.progress.recipients(self.job, sum(map(len, pending[:index + 1])), len(allowed))

    def _send_batch(self, batch: Batch, text: str, api: KakaoApi | None, outcomes: _Outcomes) -> KakaoApi | None:
        """One Kakao call, with the API of the previous one while its token is valid; the API for the next."""
        if api is None or not api.fresh():
            # Minted (refreshed, if due) before `sending` is committed: the window in which a crash
            # leaves an `unknown` holds the POST alone, no token request or database lock. For the same
            # reason the outcomes known so far are written first, not after a token request.
            outcomes.flush()
            try:
                api = self.api.minted()
            except KakaoOAuthError as exc:
                outcomes.add(batch, "failed", str(exc), None, retryable=exc.retryable)
                raise
            except KakaoError as exc:
                outcomes.add(batch, "failed", str(exc), _int_code(exc), retryable=exc.retryable)
                return None
        self._post(batch, text, api, outcomes)
        return api

    def _post(self, batch: Batch, text: str, api: KakaoApi, outcomes: _Outcomes) -> None:
        """`sending` committed (with the outcome of the call before), the request, its outcome noted for the
        next commit (a failure to write it leaves `sending` for the sweep to resolve as `unknown`:
        DeliveryLog.resolve_stuck)."""
        moved = outcomes.flush(sending=[row for _, row in batch])
        for target, row in batch:
            if row not in moved:
                # Our claim went stale and another instance took the row over: it sends, we don't.
                outcomes.report.results.append(RecipientResult(target.key, target.label, "elsewhere",
                                                               "taken over by another instance"))
        batch = [(target, row) for target, row in batch if row in moved]
        if not batch:
            return
        try:
            if batch[0][0].uuid is None:
                api.send_to_me(text)
                outcomes.add(batch, "sent", "", None)
                return
            result = api.send_to_friends([t.uuid for t, _ in batch], text)
        except KakaoSendUnknown as exc:
            outcomes.add(batch, "unknown", str(exc), None)
            return
        except KakaoOAuthError as exc:
            outcomes.add(batch, "failed", str(exc), None, retryable=exc.retryable)
            raise
        except KakaoError as exc:
            outcomes.add(batch, "failed", str(exc), _int_code(exc), retryable=exc.retryable)
            return
        outcomes.add([(t, row) for t, row in batch if t.uuid in result.sent], "sent", "", None)
        for target, row in batch:
            if target.uuid not in result.sent:
                error = result.failed[target.uuid]
                status = "unknown" if isinstance(error, KakaoSendUnknown) else "failed"
                outcomes.add([(target, row)], status, str(error), _int_code(error),
                             retryable=status == "failed" and error.retryable)

    def fail_all(self, recipients: Sequence[Recipient], reason: str) -> FanoutReport:
        """Record every configured recipient as failed for `reason`, without sending (e.g. dead login:
        friends cannot even be looked up, so each is keyed as configured, "friend:<nickname>")."""
        report = FanoutReport(self.job, self.slot_key, token_error=reason)
        targets = {str(r): Target(str(r), "me" if r.kind == "me" else r.value) for r in recipients}
        claims = self.log.claim_many(job=self.job, slot_key=self.slot_key, sender=self.sender,
                                     quota_day=quota_day(self.now), late=self.late,
                                     recipients=[(t.key, t.label) for t in targets.values()])
        outcomes = _Outcomes(self.log, report)
        for claim in claims:
            if claim.row_id is None:
                report.results.append(_not_claimed(targets[claim.recipient], claim))
            else:
                outcomes.add([(targets[claim.recipient], claim.row_id)], "failed", reason, None)
        outcomes.flush()
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


def _flush_known(outcomes: _Outcomes) -> None:
    """On the way out of a fan-out cut short by an exception: write the outcomes already known, so that a
    call that went through is not left `sending` (and later reported unknown) for want of its commit."""
    try:
        outcomes.flush()
    except Exception:  # noqa: BLE001 — the first exception is the one to raise; the sweep resolves these rows
        log.warning("%s: could not record the outcome of the last Kakao call", outcomes.report.job, exc_info=True)


def _int_code(error: KakaoError) -> int | None:
    return error.code if isinstance(error.code, int) else None
