"""The refresh skeleton both minters share: one lock per login, and a dead login's mark kept."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.sql.dml import Update

from bot.store.db import Database
from tokens.minting import DeadLogin, MintLocks
from tokens.models import KakaoLogin

LOG = logging.getLogger("tests.minting")
MOMENT = datetime(2026, 12, 3, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'minting.sqlite3'}")
    db.migrate()
    with db.session() as session:
        session.add(KakaoLogin(account="me", access_token_enc="a", access_expires_at=MOMENT,
                               refresh_token_enc="r", refresh_expires_at=MOMENT))
    return db


def lock_row() -> Update:
    return update(KakaoLogin).where(KakaoLogin.account == "me").values(account=KakaoLogin.account)


def test_one_lock_per_login(db: Database) -> None:
    locks = MintLocks(db)
    assert locks.held("me") is locks.held("me")
    assert locks.held(("app", "shop")) is not locks.held("me")


def test_a_dead_login_is_marked_logged_and_raised(db: Database, caplog) -> None:
    def step(session) -> DeadLogin:  # noqa: ANN001
        session.get(KakaoLogin, "me").needs_login_reason = "refused"
        return DeadLogin(RuntimeError("dead"), LOG, "login %r needs a person: %s", ("me", "refused"))

    with pytest.raises(RuntimeError, match="dead"):
        MintLocks(db).refresh("me", lock_row(), step)
    with db.session() as session:
        assert session.get(KakaoLogin, "me").needs_login_reason == "refused"
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("tests.minting", "ERROR", "login 'me' needs a person: refused")]


def test_a_step_that_raises_stores_nothing(db: Database) -> None:
    def step(session) -> str:  # noqa: ANN001
        session.get(KakaoLogin, "me").access_token_enc = "changed"
        raise LookupError("gone")

    with pytest.raises(LookupError):
        MintLocks(db).refresh("me", lock_row(), step)
    with db.session() as session:
        assert session.get(KakaoLogin, "me").access_token_enc == "a"
    assert MintLocks(db).refresh("me", lock_row(), lambda session: "token") == "token"
