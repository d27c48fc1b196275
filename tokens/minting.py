"""The locking skeleton both token minters (tokens.kakao, tokens.shopify) refresh under.

Concurrent callers refresh a login once: they queue on a lock per login in this process, then,
across processes sharing the database, on the login's row. Whoever gets both re-reads the
stored token and refreshes only if it is still due. What the upstream answers is committed —
a rotated refresh token, or the mark of a login that needs a person — before the new access
token is handed out or the error is raised.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Hashable, TypeVar

from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from bot.store.db import Database

T = TypeVar("T")


@dataclass(frozen=True)
class DeadLogin:
    """What a refresh step returns when the login is dead: the mark it made on the row is
    committed, then `message % args` is logged as an error on `log` and `error` is raised."""

    error: Exception
    log: logging.Logger
    message: str
    args: tuple[object, ...]


class MintLocks:
    """The in-process lock of each login, and the refresh done under it and the row lock."""

    def __init__(self, db: Database):
        self.db = db
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def held(self, login: Hashable) -> threading.Lock:
        """The lock of `login` in this process (created on first use)."""
        with self._guard:
            return self._locks.setdefault(login, threading.Lock())

    def refresh(self, login: Hashable, lock_row: Update, step: Callable[[Session], T | DeadLogin]) -> T:
        """`step`'s result, run in a transaction that holds both locks of `login`.

        `lock_row` is a no-op UPDATE of the login's row: it takes the row's write lock on
        PostgreSQL and SQLite alike, so a second process waits there, then reads what the
        first one stored. `step` re-reads the row (populate_existing), refreshes if due and
        returns the token, or a DeadLogin once it has marked the row."""
        with self.held(login):
            with self.db.session() as session:
                session.execute(lock_row)
                outcome = step(session)
            # Committed here, before anyone uses the new access token or hears of a dead login.
            if isinstance(outcome, DeadLogin):
                outcome.log.error(outcome.message, *outcome.args)
                raise outcome.error
            return outcome
