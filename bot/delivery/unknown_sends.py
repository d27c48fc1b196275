"""Deliveries a person must hear about, told through bot.delivery.problems (log, /healthz, one message to "me").

- An `unknown` send (the request went out, and no outcome could be had or recorded: the message
  may or may not have arrived, and it is never repeated) is a problem of its own, keyed
  "unknown-send:<delivery id>", that needs a person: /healthz answers 503, and one KakaoTalk
  message to "me" names the job, the recipient and the slot. A person can only check with the
  recipient; nothing in the bot can clear it, so it resolves itself UNKNOWN_LASTS after it was
  raised (the row stays `unknown` in `history`). `report_unknown_sends` finds every such row, from
  a fan-out, a re-run that found a dead process's `sending`, or the sweep (bot.delivery.sweep).
- A friend who refuses messages (Kakao -530, or `allowed_msg=false` in the friends list) is a
  lasting condition, not news of one delivery: a problem keyed "kakao-refused:<sender>:<recipient>",
  told once (not in each slot's report to "me", which would repeat it at every delivery and spend
  the sender's quota), resolved when a later send to that friend succeeds.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import select

from bot.app import App
from bot.delivery.fanout import RecipientResult
from bot.delivery.problems import INFO, NEEDS_PERSON, ProblemReporter, open_problems
from bot.kakao.recipients import REFUSES_MESSAGES
from bot.store.models import Delivery, Problem
from bot.util.times import local_time, parse_instant

log = logging.getLogger(__name__)

UNKNOWN_PREFIX = "unknown-send:"
REFUSED_PREFIX = "kakao-refused:"
REFUSED_CODE = -530  # Kakao: the receiver refuses messages (bot.kakao.errors.KakaoRecipientRefused)
UNKNOWN_LASTS = timedelta(hours=24)  # an unknown send stays a problem (503) this long, then resolves itself


def report_unknown_sends(app: App, now: datetime | None = None) -> int:
    """Raise a problem for each `unknown` delivery of the last UNKNOWN_LASTS not raised yet, resolve the
    ones raised longer ago; returns how many were raised now. Problem messages ("…!…" jobs) are left out:
    a report about a report would never end."""
    now = now or app.clock()
    since = now - UNKNOWN_LASTS
    with app.db.session() as session:
        rows = list(session.scalars(select(Delivery).where(
            Delivery.status == "unknown", Delivery.updated_at > since, ~Delivery.job.contains("!"))
            .order_by(Delivery.id)))
        keys = {f"{UNKNOWN_PREFIX}{row.id}": row for row in rows}
        raised = set(session.scalars(select(Problem.key).where(Problem.key.in_(list(keys))))) if keys else set()
        new = [(key, unknown_summary(app, row)) for key, row in keys.items() if key not in raised]
    reporter = ProblemReporter(app)
    for key, summary in new:
        reporter.raise_(key, summary, severity=NEEDS_PERSON, now=now)
    for problem in open_problems(app.db):
        if problem.key.startswith(UNKNOWN_PREFIX) and problem.since <= since:
            reporter.resolve(problem.key, now=now)
    return len(new)


def unknown_summary(app: App, row: Delivery) -> str:
    """One line naming the job, the recipient and the slot, and what a person can do."""
    who = row.label or row.recipient
    instant = parse_instant(row.slot_key)
    slot = (f"the slot of {local_time(instant, app.config.timezone)}" if instant is not None
            else f"{row.slot_key}")
    return (f"{row.job}: the message to {who} for {slot} may or may not have been delivered (outcome unknown), "
            f"and it is not sent again: ask {who} whether it arrived")


def refuses_messages(result: RecipientResult) -> bool:
    """Kakao said -530 for this recipient, or the friends list says it does not accept messages."""
    return (result.status == "failed" and result.code == REFUSED_CODE) or (
        result.status == "skipped" and result.reason == REFUSES_MESSAGES)


def report_refusals(app: App, job: str, sender: str, results: Sequence[RecipientResult],
                    now: datetime | None = None) -> list[RecipientResult]:
    """Raise "kakao-refused:<sender>:<recipient>" for each friend refusing messages (told once while it
    lasts), resolve it for each friend sent to; returns the other problems, for the slot's own report."""
    now = now or app.clock()
    reporter = ProblemReporter(app)
    prefix = f"{REFUSED_PREFIX}{sender}:"
    for result in results:
        if refuses_messages(result):
            reporter.raise_(prefix + result.key,
                            f"{result.label} does not accept KakaoTalk messages from {sender!r} (job {job}): ask them "
                            f"to allow messages from this app in KakaoTalk, or take them out of the job's `to`",
                            severity=INFO, now=now)
    sent = {prefix + result.key for result in results if result.status == "sent"}
    for problem in open_problems(app.db) if sent else []:
        if problem.key in sent:
            reporter.resolve(problem.key, now=now)
    return [result for result in results
            if result.status in ("failed", "unknown", "skipped") and not refuses_messages(result)]
