"""Kakao's quotas counted from the deliveries table: what was sent (or may have been) this Korean day."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from sqlalchemy import Connection, bindparam, case, func, select
from sqlalchemy.orm import Session

from bot.kakao.quota import ME_RESERVE, QuotaBook
from bot.store.models import Delivery

COUNTED = ("sending", "sent", "unknown")  # an unknown send may have been delivered: count it

# Two queries, not four: the totals together, then both per-recipient counts in one pass over the
# recipients' rows (a fan-out's bookkeeping before its first call). Built once: only the day, the
# sender and the recipients change per call.
_COUNTED = (Delivery.quota_day == bindparam("day")) & Delivery.status.in_(COUNTED)
_BY_SENDER = case((Delivery.sender == bindparam("sender"), 1), else_=0)
TOTALS = select(func.count(), func.sum(_BY_SENDER)).where(_COUNTED)
PER_RECIPIENT = (select(Delivery.recipient, func.count(), func.sum(_BY_SENDER))
                 .where(_COUNTED, Delivery.recipient.in_(bindparam("recipients", expanding=True)))
                 .group_by(Delivery.recipient))


def load_quota_book(session: Session | Connection, sender: str, day: str, recipients: Iterable[str],
                    reserve: int = ME_RESERVE) -> QuotaBook:
    """Today's counts of `sender` (and of `recipients`, and of the app) from the deliveries table, read
    with `session` (an ORM Session, or a Core Connection in the middle of a transaction)."""
    recipients = list(recipients)
    app_total, sender_total = session.execute(TOTALS, {"day": day, "sender": sender}).one()
    per_recipient: Counter = Counter()
    per_pair: Counter = Counter()
    if recipients:
        for recipient, any_sender, this_sender in session.execute(
                PER_RECIPIENT, {"day": day, "sender": sender, "recipients": recipients}):
            if recipient != "me":
                per_recipient[recipient] = any_sender
            if this_sender:
                per_pair[recipient] = this_sender
    # "me" is the sender itself: what it received from itself is its recipient count.
    per_recipient["me"] = per_pair["me"]
    return QuotaBook(sender, day, app_total or 0, sender_total or 0, per_recipient, per_pair, reserve)
