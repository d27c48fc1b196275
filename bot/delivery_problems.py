"""Deliveries a person must hear about, told through bot.problems (log, /healthz, one message to "me").

- An `unknown` send (the request went out, and no outcome could be had or recorded: the message
  may or may not have arrived, and it is never repeated) is a problem of its own, keyed
  "unknown-send:<delivery id>", that needs a person: /healthz answers 503, and one KakaoTalk
  message to "me" names the job, the recipient and the slot. A person can only check with the
  recipient; nothing in the bot can clear it, so it resolves itself UNKNOWN_LASTS after it was
  raised (the row stays `unknown` in `history`). `report_unknown_sends` finds every such row, from
  a fan-out, a re-run that found a dead process's `sending`, or the sweep (bot.delivery_sweep).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.models import Delivery, Problem
from bot.problems import NEEDS_PERSON, ProblemReporter, open_problems
from bot.schedule import parse_instant

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

UNKNOWN_PREFIX = "unknown-send:"
UNKNOWN_LASTS = timedelta(hours=24)  # an unknown send stays a problem (503) this long, then resolves itself


def report_unknown_sends(app: "App", now: datetime | None = None) -> int:
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


def unknown_summary(app: "App", row: Delivery) -> str:
    """One line naming the job, the recipient and the slot, and what a person can do."""
    who = row.label or row.recipient
    instant = parse_instant(row.slot_key)
    slot = (f"the slot of {instant.astimezone(app.config.timezone):%Y-%m-%d %H:%M %Z}" if instant is not None
            else f"{row.slot_key}")
    return (f"{row.job}: the message to {who} for {slot} may or may not have been delivered (outcome unknown), "
            f"and it is not sent again: ask {who} whether it arrived")
