"""Single-use OAuth `state` values, kept in the database (table `oauth_states`).

Any OAuth flow served by `run` uses these: the Kakao login (`purpose="kakao:<account>"`,
subject the account) and the Shopify install (e.g. `purpose="shopify:<app>"`, subject the shop).

    state = issue(app.db, "shopify:default", shop, clock=app.clock)   # put it in the authorize URL
    ...
    shop = consume(app.db, "shopify:default", request.args.get("state"), clock=app.clock)
    # raises StateInvalid(reason) — reason is "missing", "unknown", "used" or "expired"

- Only the SHA-256 of a state is stored: a database leak reveals no live state.
- `consume` is atomic: one conditional UPDATE (`… WHERE used_at IS NULL AND expires_at > now`)
  whose row count decides, so two callbacks racing with one state (threads, processes, several
  instances on one PostgreSQL) succeed exactly once.
- A state is bound to its purpose: a state issued for one app or flow is "unknown" to another.
- `consume_prefixed` is for callbacks that learn the purpose from the state itself (the Kakao
  callback cannot know the account: `consume_prefixed(db, "kakao:", state)`).
- Expired rows are kept a day (so that a late callback is told "expired", not "unknown"),
  then deleted by later `issue` calls (`prune`). Of the unused states of one purpose at most
  MAX_PENDING are kept, the newest: a flood of install starts cannot grow the table without bound
  (the routes that issue states also limit each client's rate: bot.web.rate_limit).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.store.db import Database, utcnow
from tokens.models import OAuthState

DEFAULT_TTL = timedelta(minutes=10)
KEEP_EXPIRED = timedelta(days=1)
MAX_PENDING = 1000  # unused, unexpired states kept per purpose; far more than people log in at once

_REASONS = {
    "missing": "no state in the request",
    "unknown": "the state is unknown here (not issued by this server, or for another purpose)",
    "used": "the state was already used: start again",
    "expired": "the state expired: start again",
}


def new_state() -> str:
    """32 random bytes, hex: URL-safe, so no encoding can change what is signed."""
    return secrets.token_hex(32)


def state_hash(state: str) -> str:
    """What is stored of a state (the primary key of its row)."""
    return hashlib.sha256(state.encode()).hexdigest()


class StateInvalid(Exception):
    """A state that cannot be consumed; `reason` is "missing", "unknown", "used" or "expired"."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(_REASONS.get(reason, reason))


class Consumed(NamedTuple):
    purpose: str
    subject: str


@dataclass(frozen=True)
class StateInfo:
    """What is stored about one state (never the state itself)."""

    purpose: str
    subject: str
    expires_at: datetime
    used_at: datetime | None
    created_at: datetime


def issue(db: Database, purpose: str, subject: str, ttl: timedelta = DEFAULT_TTL,
          clock: Callable[[], datetime] = utcnow) -> str:
    """A new random state for `purpose`/`subject`, valid `ttl`; only its hash is stored."""
    if not purpose or len(purpose) > 120 or len(subject) > 255:
        raise ValueError("purpose must be 1-120 characters, subject at most 255")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    now = clock()
    state = new_state()
    with db.session() as session:
        session.add(OAuthState(state_hash=state_hash(state), purpose=purpose, subject=subject,
                               expires_at=now + ttl, used_at=None, created_at=now))
        session.flush()
        prune(session, purpose, now)
    return state


def prune(session: Session, purpose: str, now: datetime) -> None:
    """Delete states expired more than KEEP_EXPIRED ago, and the oldest unused states of `purpose`
    beyond the newest MAX_PENDING."""
    session.execute(delete(OAuthState).where(OAuthState.expires_at < now - KEEP_EXPIRED))
    pending = (select(OAuthState.state_hash)
               .where(OAuthState.purpose == purpose, OAuthState.used_at.is_(None), OAuthState.expires_at > now)
               .order_by(OAuthState.created_at.desc(), OAuthState.state_hash)
               .offset(MAX_PENDING))
    stale = list(session.scalars(pending))
    if stale:
        session.execute(delete(OAuthState).where(OAuthState.state_hash.in_(stale))
                        .execution_options(synchronize_session=False))


def discard(db: Database, purpose: str) -> int:
    """Delete every state of `purpose`, used or not: a flow that must never complete any more."""
    with db.session() as session:
        return session.execute(delete(OAuthState).where(OAuthState.purpose == purpose)
                               .execution_options(synchronize_session=False)).rowcount


def consume(db: Database, purpose: str, state: str | None, clock: Callable[[], datetime] = utcnow) -> str:
    """Use `state` (issued for exactly `purpose`) once; returns its subject or raises StateInvalid."""
    return _consume(db, state, clock, lambda stored: stored == purpose).subject


def consume_prefixed(db: Database, purpose_prefix: str, state: str | None,
                     clock: Callable[[], datetime] = utcnow) -> Consumed:
    """Use `state` (issued for a purpose starting with `purpose_prefix`) once; raises StateInvalid."""
    if not purpose_prefix:
        raise ValueError("purpose_prefix must not be empty")
    return _consume(db, state, clock, lambda stored: stored.startswith(purpose_prefix))


def lookup(db: Database, state: str) -> StateInfo | None:
    """What is stored about `state` (for a client waiting on someone else to consume it)."""
    with db.session() as session:
        row = session.get(OAuthState, state_hash(state))
        if row is None:
            return None
        return StateInfo(row.purpose, row.subject, row.expires_at, row.used_at, row.created_at)


def _consume(db: Database, state: str | None, clock: Callable[[], datetime],
             purpose_ok: Callable[[str], bool]) -> Consumed:
    if not state:
        raise StateInvalid("missing")
    if len(state) > 512:
        raise StateInvalid("unknown")
    key = state_hash(state)
    now = clock()
    with db.session() as session:
        row = session.execute(select(OAuthState.purpose, OAuthState.subject)
                              .where(OAuthState.state_hash == key)).one_or_none()
        if row is None or not purpose_ok(row.purpose):
            raise StateInvalid("unknown")
        # The single decision: only one UPDATE can flip used_at from NULL.
        result = session.execute(update(OAuthState)
                                 .where(OAuthState.state_hash == key, OAuthState.purpose == row.purpose,
                                        OAuthState.used_at.is_(None), OAuthState.expires_at > now)
                                 .values(used_at=now)
                                 .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            return Consumed(row.purpose, row.subject)
    # Not consumed: say why (read after the failed UPDATE; only the message depends on it).
    info = lookup(db, state)
    if info is None:
        raise StateInvalid("unknown")
    if info.used_at is not None:
        raise StateInvalid("used")
    raise StateInvalid("expired")
