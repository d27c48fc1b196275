"""Tables of the bot's own bookkeeping: deliveries and per-job memory."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow


class Delivery(Base):
    """One message to one recipient for one (job, slot); the unique key makes it exactly once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("job", "slot_key", "recipient", name="uq_delivery"),
        Index("ix_deliveries_sender_day", "sender", "quota_day"),
        Index("ix_deliveries_recipient_day", "recipient", "quota_day"),
        Index("ix_deliveries_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100))
    slot_key: Mapped[str] = mapped_column(String(80))  # scheduled instant (ISO) or "run:<id>"
    recipient: Mapped[str] = mapped_column(String(200))  # "me", "uuid:…", or the configured spec
    label: Mapped[str] = mapped_column(String(200), default="")
    sender: Mapped[str] = mapped_column(String(64))
    # claimed → sending → sent | failed | unknown;  or skipped
    status: Mapped[str] = mapped_column(String(16))
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    quota_day: Mapped[str] = mapped_column(String(10))  # Korean calendar day Kakao counts quotas by
    claimed_by: Mapped[str] = mapped_column(String(120), default="")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class JobMemory(Base):
    """Small JSON memory of a job between runs (ETag, fingerprint of what was sent last)."""

    __tablename__ = "job_memory"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
