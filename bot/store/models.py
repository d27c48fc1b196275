"""Tables of the bot's own bookkeeping: deliveries, per-job memory, webhook events, order snapshots."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.db import Base, UTCDateTime, utcnow
from bot.util.keys import MEMORY_NAME_MAX, SLOT_KEY_MAX


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
    slot_key: Mapped[str] = mapped_column(String(SLOT_KEY_MAX))  # scheduled instant (ISO) or "run:<id>"
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

    job: Mapped[str] = mapped_column(String(MEMORY_NAME_MAX), primary_key=True)
    key: Mapped[str] = mapped_column(String(MEMORY_NAME_MAX), primary_key=True)
    value_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """One Shopify webhook delivery, stored before it is answered and processed after.

    (app, webhook_id) is unique: a redelivery (Shopify keeps X-Shopify-Webhook-Id on retries)
    finds the row and is answered 200 without being stored or processed again.
    status: pending → processing → done | ignored | failed (retried while next_attempt_at is set).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("app", "webhook_id", name="uq_webhook_event"),
        Index("ix_webhook_events_due", "status", "next_attempt_at", "id"),  # the claim reads pending rows in id order
        Index("ix_webhook_events_shop", "shop"),
        Index("ix_webhook_events_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(100))  # the configured Shopify app it came to
    shop: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(255))  # X-Shopify-Webhook-Id
    event_id: Mapped[str | None] = mapped_column(String(255), nullable=True)  # X-Shopify-Event-Id
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    api_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    body: Mapped[str] = mapped_column(Text)  # the raw JSON; emptied once processed (personal data)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    claimed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # failed: retry then
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # what was done, or why ignored
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the last attempt failed


class OrderSnapshot(Base):
    """What an order looked like when last seen, for `orders/updated` change alerts.

    Only what the comparison needs: a digest of the shipping address (never the address
    itself) and the line items' (sku, quantity). `updated_at` is the order's own time at
    Shopify, `last_event_at` the X-Shopify-Triggered-At of the event that wrote it: an older
    event never overwrites a newer snapshot.
    """

    __tablename__ = "order_snapshots"
    __table_args__ = (UniqueConstraint("shop", "order_id", name="uq_order_snapshot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop: Mapped[str] = mapped_column(String(255))
    order_id: Mapped[str] = mapped_column(String(100))  # gid://shopify/Order/…
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    snapshot_json: Mapped[str] = mapped_column(Text)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Problem(Base):
    """Something wrong that a person should hear about once (bot.delivery.problems), not once per check.

    One row per `key` ("kakao-login:default", "shopify:default:my-store.myshopify.com",
    "job-failing:orders", …). A row is open while `resolved_at` is NULL; raising a resolved
    key opens a new episode (`episode` + 1, `first_seen` = now), which is reported anew.
    `notified_at` is set once KakaoTalk took the message for this episode;
    `notify_attempted_at` paces retries of a message that could not be sent.
    severity: needs_person (→ /healthz 503) | info | event (a one-off: missed slot).
    """

    __tablename__ = "problems"
    __table_args__ = (
        UniqueConstraint("key", name="uq_problem_key"),
        Index("ix_problems_resolved", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    severity: Mapped[str] = mapped_column(String(16), default="needs_person")
    summary: Mapped[str] = mapped_column(Text)
    episode: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    notify_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    notify_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MerchantSettings(Base):
    """An embedded app merchant's own settings (bot.store.merchant_settings): recipients, digest
    times, alert options, as one validated JSON document; `version` counts its saves."""

    __tablename__ = "merchant_settings"

    app: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop: Mapped[str] = mapped_column(String(255), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SettingsClock(Base):
    """One row (id 1) whose `version` goes up with every change of any merchant's settings: each
    instance polls it to learn, within seconds, that its merchant jobs must be built again."""

    __tablename__ = "settings_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
