"""Kakao's quotas counted from the deliveries table: what was sent (or may have been) this Korean day."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from sqlalchemy import Connection, func, select
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
    app_total = session.scalar(select(func.count()).where(counted)) or 0
    sender_total = session.scalar(select(func.count()).where(counted, Delivery.sender == sender)) or 0
    friend_keys = [key for key in recipients if key != "me"]
    per_recipient = Counter(dict(session.execute(
        select(Delivery.recipient, func.count()).where(counted, Delivery.recipient.in_(friend_keys))
        .group_by(Delivery.recipient)).all()))
    per_pair = Counter(dict(session.execute(
        select(Delivery.recipient, func.count()).where(counted, Delivery.sender == sender,
                                                       Delivery.recipient.in_(recipients))
        .group_by(Delivery.recipient)).all()))
    # "me" is the sender itself: what it received from itself is its recipient count.
    per_recipient["me"] = per_pair["me"]
    return QuotaBook(sender, day, app_total, sender_total, per_recipient, per_pair, reserve)
