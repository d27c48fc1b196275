"""The one rule of whether a stored Kakao login (or Shopify install) can be used, for every place
that judges it: /healthz (bot.web.health), the periodic checks (bot.delivery.problems), `kakao status`, and the
start of `run`.

A login needs a person when Kakao refused its refresh token, when that token expired, or when its
stored tokens cannot be decrypted with BOT_SECRET_KEY — a valid key, just not the one that
encrypted them: every send would fail, so it is found by decrypting, not assumed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select

from bot.store.db import Database
from tokens.models import KakaoLogin, ShopifyInstall
from tokens.vault import Vault

UNDECRYPTABLE = ("its stored tokens cannot be decrypted with BOT_SECRET_KEY (the key changed): put the old key "
                 "after the new one (BOT_SECRET_KEY=new,old) or log in again")


def utc_text(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M} UTC"


def login_problem(row: KakaoLogin, vault: Vault | None, now: datetime,
                  show: Callable[[datetime], str] = utc_text) -> str | None:
    """Why this login cannot send until a person logs in again; None if it can. `show` spells instants."""
    if row.needs_login_reason:
        return row.needs_login_reason
    if row.refresh_expires_at <= now:
        return f"the refresh token expired at {show(row.refresh_expires_at)}"
    if vault is not None and (vault.unreadable(row.refresh_token_enc) or vault.unreadable(row.access_token_enc)):
        return UNDECRYPTABLE
    return None


def account_problem(db: Database, vault: Vault | None, account: str, now: datetime,
                    show: Callable[[datetime], str] = utc_text) -> str | None:
    """Why the login `account` cannot send until a person logs in again; None if it can or is not stored."""
    with db.session() as session:
        row = session.get(KakaoLogin, account)
        return login_problem(row, vault, now, show) if row is not None else None


def login_problems(db: Database, vault: Vault | None, now: datetime,
                   show: Callable[[datetime], str] = utc_text) -> dict[str, str]:
    """{account: why it needs a person} of every stored login that does."""
    with db.session() as session:
        found = {row.account: login_problem(row, vault, now, show) for row in session.scalars(select(KakaoLogin))}
    return {account: why for account, why in found.items() if why}


def install_unreadable(row: ShopifyInstall, vault: Vault | None) -> bool:
    """True if an active install's stored tokens cannot be decrypted with BOT_SECRET_KEY."""
    return vault is not None and row.status == "active" and (
        vault.unreadable(row.access_token_enc) or vault.unreadable(row.refresh_token_enc))


def unreadable_tokens(db: Database, vault: Vault) -> list[str]:
    """What cannot be decrypted with BOT_SECRET_KEY, named for a person: "Kakao login 'default'", …"""
    with db.session() as session:
        logins = [f"Kakao login {row.account!r}"
                  for row in session.scalars(select(KakaoLogin).order_by(KakaoLogin.account))
                  if vault.unreadable(row.refresh_token_enc) or vault.unreadable(row.access_token_enc)]
        installs = [f"Shopify install {row.shop} (app {row.app})"
                    for row in session.scalars(select(ShopifyInstall).order_by(ShopifyInstall.shop))
                    if install_unreadable(row, vault)]
    return logins + installs
