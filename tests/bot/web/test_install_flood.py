"""A flood of unauthenticated install starts (issue 8, item 18): each client's rate is bounded
(429 + Retry-After, nothing stored), and the states kept per purpose are bounded and pruned."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from bot.app import App
from bot.connect import oauth_states
from bot.sandbox.server import RunningServer
from bot.store.db import Database
from bot.web.rate_limit import RateLimiter, client_address
from bot.web.shopify_routes import INSTALL_BURST, INSTALL_PER_MINUTE
from tokens.models import OAuthState

from webhook_helpers import SHOP

INSTALL = "/shopify/default/install?shop=" + SHOP


def state_rows(app: App) -> int:
    with app.db.session() as session:
        return session.scalar(select(func.count()).select_from(OAuthState)) or 0


def starts(server: RunningServer, count: int, **headers: str) -> list[requests.Response]:
    with requests.Session() as session:
        return [session.get(server.url + INSTALL, headers=headers, allow_redirects=False, timeout=30)
                for _ in range(count)]


def test_a_thousand_install_starts_from_one_client_store_only_a_burst_of_states(
        bot: App, bot_server: RunningServer, clock) -> None:
    answers = starts(bot_server, 1000)
    assert [a.status_code for a in answers[:INSTALL_BURST]] == [302] * INSTALL_BURST
    refused = answers[INSTALL_BURST:]
    assert {a.status_code for a in refused} == {429}
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in refused)
    assert refused[0].json()["error"] == "too_many_requests"
    assert state_rows(bot) == INSTALL_BURST

    clock.advance(seconds=60)  # a minute later the bucket holds INSTALL_PER_MINUTE again
    again = starts(bot_server, INSTALL_PER_MINUTE + 1)
    assert [a.status_code for a in again] == [302] * INSTALL_PER_MINUTE + [429]


def test_clients_behind_the_local_proxy_are_told_apart_by_x_forwarded_for(
        bot: App, bot_server: RunningServer) -> None:
    first = starts(bot_server, INSTALL_BURST + 1, **{"X-Forwarded-For": "203.0.113.7"})
    second = starts(bot_server, 1, **{"X-Forwarded-For": "1.2.3.4, 198.51.100.9"})
    assert first[-1].status_code == 429 and second[0].status_code == 302


def test_x_forwarded_for_counts_only_from_a_loopback_peer() -> None:
    assert client_address({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "9.9.9.9, 203.0.113.7"}) == "203.0.113.7"
    assert client_address({"REMOTE_ADDR": "::1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}) == "203.0.113.7"
    assert client_address({"REMOTE_ADDR": "198.51.100.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}) == "198.51.100.1"


def test_the_limiter_forgets_the_least_recent_client_beyond_its_bound() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, max_clients=2)
    assert limiter.take("a", now=0) == 0 and limiter.take("b", now=0) == 0
    assert limiter.take("a", now=1) == pytest.approx(59)
    limiter.take("c", now=1)  # "b" is now the least recently seen: forgotten, so its bucket is full again
    assert limiter.take("b", now=1) == 0
    assert limiter.take("c", now=1) == pytest.approx(60)  # "c" is remembered: empty


@pytest.fixture
def db(tmp_path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'states.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


def test_unused_states_of_a_purpose_are_bounded_to_the_newest(db, clock, monkeypatch) -> None:
    monkeypatch.setattr(oauth_states, "MAX_PENDING", 5)
    used = oauth_states.issue(db, "shopify:default", SHOP, clock=clock)
    oauth_states.consume(db, "shopify:default", used, clock=clock)
    other = oauth_states.issue(db, "kakao:default", "default", clock=clock)
    issued = []
    for _ in range(20):
        clock.advance(seconds=1)
        issued.append(oauth_states.issue(db, "shopify:default", SHOP, clock=clock))
    kept = [state for state in issued if oauth_states.lookup(db, state) is not None]
    assert kept == issued[-5:]
    assert oauth_states.lookup(db, used) is not None and oauth_states.lookup(db, other) is not None


def test_states_expired_a_day_ago_are_pruned_at_the_next_issue(db, clock) -> None:
    old = oauth_states.issue(db, "shopify:default", SHOP, clock=clock)
    clock.advance(seconds=(oauth_states.DEFAULT_TTL + oauth_states.KEEP_EXPIRED + timedelta(seconds=1)).total_seconds())
    oauth_states.issue(db, "shopify:default", SHOP, clock=clock)
    assert oauth_states.lookup(db, old) is None
