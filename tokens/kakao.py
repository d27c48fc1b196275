"""Kakao access tokens on demand, from stored (encrypted) refresh tokens.

The life cycle peers get wrong, done right:
- the access token is reused until shortly before it expires (Kakao caps issuance per user);
- a refresh answer with a `refresh_token` (sent only in the refresh token's last month, when
  the old one dies) replaces the stored one, committed before the new access token is used;
  an answer without one keeps the old refresh token;
- concurrent callers refresh once: a lock per login in this process, a row lock across
  processes sharing the database (tokens.minting);
- a dead refresh token marks the login as needing a person, so nothing retries in a loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.orm import Session

from bot.kakao.client import AccessLease, KakaoAuth, TokenAnswer
from bot.kakao.errors import KakaoLoginRequired, KakaoNoLogin
from bot.store.db import Database, utcnow
from tokens.minting import DeadLogin, MintLocks
from tokens.models import KakaoLogin
from tokens.vault import Vault

log = logging.getLogger(__name__)

# Refresh this long before expiry, so a token never dies between minting and use.
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class LoginStatus:
    """Token health for people and /healthz: expiry instants and scopes, never token values."""

    account: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    scopes: tuple[str, ...]
    needs_login_reason: str | None
    refreshed_at: datetime | None


def forget_login(db: Database, account: str) -> bool:
    """Delete the login `account` and its tokens (a merchant who left); True if there was one. No call
    to Kakao, so no Kakao credentials needed: the tokens are simply gone from here."""
    with db.write_session() as session:
        return session.execute(delete(KakaoLogin).where(KakaoLogin.account == account)).rowcount > 0


# What a lease reads of a login: built once (only the account changes per call).
LEASE_READ = select(KakaoLogin.access_token_enc, KakaoLogin.access_expires_at, KakaoLogin.needs_login_reason).where(
    KakaoLogin.account == bindparam("account"))


def _check_usable(row: KakaoLogin | Row | None, account: str) -> None:
    """Raise if there is no login `account` (row None) or it needs a person (a dead refresh token)."""
    if row is None:
        raise KakaoNoLogin(None, "login_required", f"no Kakao login named {account!r} is stored", None,
                           f"run `python -m bot kakao login --account {account}`")
    if row.needs_login_reason:
        raise login_required(account, row.needs_login_reason)


def login_required(account: str, why: str) -> KakaoLoginRequired:
    return KakaoLoginRequired(None, "login_required", why, None,
                              f"Run `python -m bot kakao login --account {account}`.")


class KakaoTokens:
    """Stores Kakao logins and mints their access tokens."""

    def __init__(self, db: Database, vault: Vault, auth: KakaoAuth, *,
                 clock: Callable[[], datetime] = utcnow, margin: timedelta = REFRESH_MARGIN):
        self.db, self.vault, self.auth = db, vault, auth
        self.clock, self.margin = clock, margin
        self._locks = MintLocks(db)

    # -- storing ---------------------------------------------------------------------
    def store_login(self, account: str, answer: TokenAnswer) -> LoginStatus:
        """Keep the tokens of a fresh code exchange (replacing an older login of that name)."""
        if not answer.refresh_token or not answer.refresh_token_expires_in:
            raise ValueError("a login answer must carry a refresh token")
        now = self.clock()
        with self.db.session() as session:
            row = session.get(KakaoLogin, account) or KakaoLogin(account=account)
            row.access_token_enc = self.vault.encrypt(answer.access_token)
            row.access_expires_at = now + timedelta(seconds=answer.expires_in)
            row.refresh_token_enc = self.vault.encrypt(answer.refresh_token)
            row.refresh_expires_at = now + timedelta(seconds=answer.refresh_token_expires_in)
            row.scopes = answer.scope or ""
            row.needs_login_reason = None
            row.refreshed_at = now
            session.add(row)
        return self.status(account)

    # -- minting ---------------------------------------------------------------------
    def access_token(self, account: str) -> str:
        return self.lease(account).token

    def lease(self, account: str) -> AccessLease:
        """A valid access token of `account` (refreshed first if due) and until when it may be used
        without asking again: its expiry less the refresh margin."""
        # Every fan-out and friends list mints first: a Core read of three columns, not an ORM Session
        # (whose set-up costs more than the read) loading the whole login.
        with self.db.engine.connect() as connection:
            row = connection.execute(LEASE_READ, {"account": account}).one_or_none()
        _check_usable(row, account)
        if self._fresh(row):
            return self._lease(row)
        return self._refresh(account, rejected=None)

    def _lease(self, row: KakaoLogin | Row) -> AccessLease:
        return AccessLease(self.vault.decrypt(row.access_token_enc), row.access_expires_at - self.margin, self.clock)

    def renew(self, account: str, rejected: str) -> str:
        """Kakao refused `rejected` (-401): refresh, unless another caller already did."""
        return self._refresh(account, rejected=rejected).token

    def source(self, account: str) -> "BoundTokens":
        return BoundTokens(self, account)

    def _refresh(self, account: str, rejected: str | None) -> AccessLease:
        lock_row = update(KakaoLogin).where(KakaoLogin.account == account).values(account=KakaoLogin.account)
        return self._locks.refresh(account, lock_row, lambda session: self._refresh_row(session, account, rejected))

    def _refresh_row(self, session: Session, account: str, rejected: str | None) -> AccessLease | DeadLogin:
        row = self._row(session, account, populate_existing=True)
        current = self._lease(row)
        if self._fresh(row) and current.token != rejected:
            return current
        try:
            answer = self._ask_kakao(row, account)
        except KakaoLoginRequired as exc:
            # Kept short: it is wrapped in "Kakao login failed (…)" whenever it is reported.
            row.needs_login_reason = f"{exc.code or exc.error}: {exc.description or exc.error}"
            return DeadLogin(exc, log, "Kakao login %r needs a person: %s", (account, exc))
        self._apply(row, answer)
        return AccessLease(answer.access_token, row.access_expires_at - self.margin, self.clock)

    def _ask_kakao(self, row: KakaoLogin, account: str) -> TokenAnswer:
        if row.refresh_expires_at <= self.clock():
            raise login_required(account, f"the refresh token expired at {row.refresh_expires_at:%Y-%m-%d %H:%M} UTC")
        return self.auth.refresh(self.vault.decrypt(row.refresh_token_enc), account=account)

    def _apply(self, row: KakaoLogin, answer: TokenAnswer) -> None:
        now = self.clock()
        row.access_token_enc = self.vault.encrypt(answer.access_token)
        row.access_expires_at = now + timedelta(seconds=answer.expires_in)
        row.refreshed_at = now
        if answer.refresh_token:
            # Kakao rotated: the old refresh token is dead from this moment on.
            row.refresh_token_enc = self.vault.encrypt(answer.refresh_token)
            row.refresh_expires_at = now + timedelta(seconds=answer.refresh_token_expires_in or 0)
            log.info("Kakao login %r: refresh token rotated, valid until %s", row.account,
                     row.refresh_expires_at.strftime("%Y-%m-%d"))
        if answer.scope:
            row.scopes = answer.scope

    def _row(self, session, account: str, populate_existing: bool = False) -> KakaoLogin:  # noqa: ANN001
        options = {"populate_existing": True} if populate_existing else {}
        row = session.execute(select(KakaoLogin).where(KakaoLogin.account == account)
                              .execution_options(**options)).scalar_one_or_none()
        _check_usable(row, account)
        return row

    def _fresh(self, row: KakaoLogin | Row) -> bool:
        return row.access_expires_at - self.margin > self.clock()

    # -- reporting -------------------------------------------------------------------
    def status(self, account: str) -> LoginStatus | None:
        with self.db.session() as session:
            row = session.get(KakaoLogin, account)
            return _status(row) if row else None

    def all_status(self) -> list[LoginStatus]:
        with self.db.session() as session:
            return [_status(row) for row in session.scalars(select(KakaoLogin).order_by(KakaoLogin.account))]


def _status(row: KakaoLogin) -> LoginStatus:
    return LoginStatus(row.account, row.access_expires_at, row.refresh_expires_at,
                       tuple(row.scopes.split()), row.needs_login_reason, row.refreshed_at)


@dataclass(frozen=True)
class BoundTokens:
    """The TokenSource of one login, handed to a KakaoApi."""

    tokens: KakaoTokens
    account: str

    def access_token(self) -> str:
        return self.tokens.access_token(self.account)

    def lease(self) -> AccessLease:
        return self.tokens.lease(self.account)

    def renew(self, rejected: str) -> str:
        return self.tokens.renew(self.account, rejected)
