"""bot.connect.oauth_states: single-use OAuth states, stored as hashes, bound to a purpose, atomic to consume."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from typing import Iterator

import pytest
from sqlalchemy import select

from bot.connect import oauth_states
from bot.connect.oauth_states import StateInvalid, consume, consume_prefixed, issue, lookup, new_state, state_hash
from bot.store.db import Database
from tokens.models import OAuthState

SHOP = "my-store.myshopify.com"


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'states.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


def reason(call) -> str:  # noqa: ANN001
    with pytest.raises(StateInvalid) as caught:
        call()
    return caught.value.reason


def test_only_the_hash_is_stored_and_the_state_is_long_and_url_safe(db, clock):
    state = issue(db, "shopify:default", SHOP, clock=clock)
    assert len(state) >= 64 and state.isalnum()
    with db.session() as session:
        (row,) = session.scalars(select(OAuthState))
        assert row.state_hash == state_hash(state) and state not in (row.state_hash, row.purpose, row.subject)
        assert row.expires_at == clock() + oauth_states.DEFAULT_TTL and row.used_at is None


def test_states_are_32_random_bytes_hex_and_stored_only_hashed():
    first, second = new_state(), new_state()
    assert len(first) == 64 and int(first, 16) >= 0 and first != second
    assert state_hash(first) == hashlib.sha256(first.encode()).hexdigest() and first not in state_hash(first)


def test_a_state_is_consumed_once(db, clock):
    state = issue(db, "shopify:default", SHOP, clock=clock)
    assert consume(db, "shopify:default", state, clock=clock) == SHOP
    assert lookup(db, state).used_at == clock()
    assert reason(lambda: consume(db, "shopify:default", state, clock=clock)) == "used"


def test_racing_consumers_succeed_exactly_once(db, clock):
    state = issue(db, "kakao:default", "default", clock=clock)
    start, results = threading.Barrier(8), []

    def race() -> None:
        start.wait(10)
        try:
            results.append(consume(db, "kakao:default", state, clock=clock))
        except StateInvalid as exc:
            results.append(exc.reason)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["default"] + ["used"] * 7


def test_expired_unknown_missing_and_other_purposes(db, clock):
    state = issue(db, "shopify:default", SHOP, ttl=timedelta(minutes=5), clock=clock)
    assert reason(lambda: consume(db, "shopify:other", state, clock=clock)) == "unknown"
    assert reason(lambda: consume(db, "shopify:default", "f" * 64, clock=clock)) == "unknown"
    assert reason(lambda: consume(db, "shopify:default", None, clock=clock)) == "missing"
    assert reason(lambda: consume(db, "shopify:default", "", clock=clock)) == "missing"
    clock.advance(minutes=5)
    assert reason(lambda: consume(db, "shopify:default", state, clock=clock)) == "expired"
    assert lookup(db, state).used_at is None


def test_consume_prefixed_returns_the_purpose_and_subject(db, clock):
    state = issue(db, "kakao:staff", "staff", clock=clock)
    assert reason(lambda: consume_prefixed(db, "shopify:", state, clock=clock)) == "unknown"
    assert consume_prefixed(db, "kakao:", state, clock=clock) == ("kakao:staff", "staff")
    assert reason(lambda: consume_prefixed(db, "kakao:", state, clock=clock)) == "used"


def test_long_expired_states_are_deleted_by_later_issues(db, clock):
    old = issue(db, "shopify:default", SHOP, clock=clock)
    clock.advance(days=1, minutes=11)
    recent = issue(db, "shopify:default", SHOP, clock=clock)
    assert lookup(db, old) is None and lookup(db, recent) is not None
