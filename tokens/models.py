"""Tables that hold secrets. Token columns hold Fernet ciphertext only (see tokens.vault)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow


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
