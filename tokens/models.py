"""Tables that hold secrets and the OAuth state around them. Token columns hold Fernet ciphertext
only (see tokens.vault)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.db import Base, UTCDateTime, utcnow


class KakaoLogin(Base):
    """One stored Kakao login (`kakao login --account NAME`)."""

    __tablename__ = "kakao_logins"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token_enc: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    refresh_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scopes: Mapped[str] = mapped_column(Text, default="")  # space-separated, as Kakao grants them
    # Set when the refresh token was refused: a person must run `kakao login` again.
    needs_login_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ShopifyInstall(Base):
    """One shop connected to one Shopify app, by OAuth, client credentials or a legacy token."""

    __tablename__ = "shopify_installs"
    __table_args__ = (UniqueConstraint("app", "shop", name="uq_shopify_install"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(100))
    shop: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(20))  # oauth | client_credentials | legacy
    access_token_enc: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # None: no expiry
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    scopes: Mapped[str] = mapped_column(Text, default="")  # comma-separated, as Shopify grants them
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | invalid | needs_reauth | uninstalled
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class OAuthState(Base):
    """A single-use OAuth `state`, stored as its SHA-256 so a database leak reveals no live state."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(120))  # e.g. "shopify:default"
    subject: Mapped[str] = mapped_column(String(255))  # the shop (or Kakao account) it was issued for
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
