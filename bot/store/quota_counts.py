"""Kakao's quotas counted from the deliveries table: what was sent (or may have been) this Korean day."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from sqlalchemy import Connection, case, func, select
from sqlalchemy.orm import Session

from bot.kakao.quota import ME_RESERVE, QuotaBook
from bot.store.models import Delivery

COUNTED = ("sending", "sent", "unknown")  # an unknown send may have been delivered: count it


def load_quota_book(session: Session | Connection, sender: str, day: str, recipients: Iterable[str],
                    reserve: int = ME_RESERVE) -> QuotaBook:
    """Today's counts of `sender` (and of `recipients`, and of the app) from the deliveries table, read
    with `session` (an ORM Session, or a Core Connection in the middle of a transaction)."""
    recipients = list(recipients)
    counted = (Delivery.quota_day == day) & Delivery.status.in_(COUNTED)
    by_sender = case((Delivery.sender == sender, 1), else_=0)
    # Two queries, not four: the totals together, then both per-recipient counts in one pass over the
    # recipients' rows (a fan-out's bookkeeping before its first call; each query was ~0.5 ms of CPU).
    app_total, sender_total = session.execute(select(func.count(), func.sum(by_sender)).where(counted)).one()
    per_recipient: Counter = Counter()
    per_pair: Counter = Counter()
    if recipients:
        for recipient, any_sender, this_sender in session.execute(
                select(Delivery.recipient, func.count(), func.sum(by_sender))
                .where(counted, Delivery.recipient.in_(recipients)).group_by(Delivery.recipient)):
            if recipient != "me":
                per_recipient[recipient] = any_sender
            if this_sender:
                per_pair[recipient] = this_sender
    # "me" is the sender itself: what it received from itself is its recipient count.
    per_recipient["me"] = per_pair["me"]
    return QuotaBook(sender, day, app_total or 0, sender_total or 0, per_recipient, per_pair, reserve)
