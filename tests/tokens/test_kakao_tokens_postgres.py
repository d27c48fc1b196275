"""Several PROCESSES sharing one database mint Kakao tokens: one refresh, one answer for all.

Each child process builds its own engine, Vault, Kakao client and KakaoTokens (no shared
memory, no shared in-process lock), against the Kakao stand-in served by the test process.
The children are released together by a multiprocessing Barrier and the stand-in answers
slowly, so their refreshes really overlap: only the database's row lock can keep them apart.

Run on PostgreSQL (BOT_TEST_POSTGRES_URL, marker `postgres`) and on a shared SQLite file.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from datetime import timedelta
from typing import Any, Iterator

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import update

from bot.kakao.client import KakaoAuth, KakaoHttp
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import serve
from bot.store.db import Database, utcnow
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from tokens.kakao import KakaoTokens
from tokens.models import KakaoLogin
from tokens.vault import Vault

REST_KEY = "mp-rest-key"
CLIENT_SECRET = "mp-client-secret"
REDIRECT = "http://127.0.0.1:8080/kakao/callback"
ACCOUNT = "default"
PROCESSES = 2


def _tokens(db_url: str, secret_key: str, kakao_url: str) -> KakaoTokens:
    http = KakaoHttp(new_session(), timeout=30, retry=RetryPolicy(attempts=1))
    auth = KakaoAuth(http, auth_url=kakao_url, rest_api_key=REST_KEY, client_secret=CLIENT_SECRET,
                     redirect_uri=REDIRECT)
    return KakaoTokens(Database(db_url), Vault(secret_key), auth)


def mint_in_child(db_url: str, secret_key: str, kakao_url: str, rejected: str | None,
                  barrier: Any, results: Any) -> None:
    """Runs in a spawned process: wait for the others, then ask for a token once."""
    tokens = _tokens(db_url, secret_key, kakao_url)
    try:
        tokens.status(ACCOUNT)  # connect (and import everything) before the start line
        barrier.wait(timeout=60)
        token = tokens.renew(ACCOUNT, rejected) if rejected else tokens.access_token(ACCOUNT)
        results.put(("token", token))
    except Exception as exc:  # noqa: BLE001 — reported to the test process
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        tokens.db.dispose()


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def shared_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'shared.sqlite3'}"


class Shared:
    def __init__(self, db_url: str, sandbox: KakaoSandbox, kakao_url: str):
        self.db_url, self.sandbox, self.kakao_url = db_url, sandbox, kakao_url
        self.secret_key = Fernet.generate_key().decode()
        self.tokens = _tokens(db_url, self.secret_key, kakao_url)

    def login(self) -> None:
        code = self.sandbox.issue_code(REDIRECT)
        self.tokens.store_login(ACCOUNT, self.tokens.auth.exchange_code(code))

    def stored(self) -> tuple[str, str, str | None]:
        with self.tokens.db.session() as session:
            row = session.get(KakaoLogin, ACCOUNT)
            vault = self.tokens.vault
            return vault.decrypt(row.access_token_enc), vault.decrypt(row.refresh_token_enc), row.needs_login_reason

    def expire_stored_access_token(self) -> None:
        with self.tokens.db.session() as session:
            session.execute(update(KakaoLogin).where(KakaoLogin.account == ACCOUNT)
                            .values(access_expires_at=utcnow() - timedelta(minutes=1)))

    def refreshes(self) -> list[dict[str, str]]:
        return [form for form in self.sandbox.token_requests if form.get("grant_type") == "refresh_token"]

    def run_children(self, rejected: str | None = None) -> list[tuple[str, str]]:
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        children = [context.Process(target=mint_in_child,
                                    args=(self.db_url, self.secret_key, self.kakao_url, rejected, barrier, results))
                    for _ in range(PROCESSES)]
        for child in children:
            child.start()
        try:
            answers = [results.get(timeout=120) for _ in children]
        except queue.Empty:
            pytest.fail("a child process gave no answer")
        finally:
            for child in children:
                child.join(timeout=30)
                if child.is_alive():
                    child.terminate()
        assert [child.exitcode for child in children] == [0] * PROCESSES
        return answers

    def works_at_kakao(self, access: str) -> bool:
        answer = requests.get(f"{self.kakao_url}/v1/user/access_token_info",
                              headers={"Authorization": f"Bearer {access}"}, timeout=10)
        return answer.status_code == 200


@pytest.fixture
def shared(shared_db_url: str) -> Iterator[Shared]:
    sandbox = KakaoSandbox(rest_api_key=REST_KEY, client_secret=CLIENT_SECRET, clock=time.time)
    with serve(sandbox.wsgi_app()) as server:
        setup = Shared(shared_db_url, sandbox, server.url)
        setup.tokens.db.migrate()
        setup.login()
        yield setup
        setup.tokens.db.dispose()


def test_two_processes_on_an_expired_token_refresh_once_and_share_the_new_token(shared):
    old_access, refresh, _ = shared.stored()
    shared.expire_stored_access_token()
    shared.sandbox.latency = 0.5  # a slow Kakao: the second process arrives during the first's refresh

    answers = shared.run_children()

    assert [kind for kind, _ in answers] == ["token"] * PROCESSES, answers
    tokens = {token for _, token in answers}
    assert len(tokens) == 1
    (token,) = tokens
    assert token != old_access
    assert [form["refresh_token"] for form in shared.refreshes()] == [refresh]
    assert shared.sandbox.count("/oauth/token") == 2  # the login's exchange + one refresh
    assert shared.stored()[0] == token
    assert shared.works_at_kakao(token)


def test_two_processes_renewing_the_same_rejected_token_refresh_once(shared):
    """Both processes got -401 for the same access token (valid by the clock): one renewal."""
    rejected, _, _ = shared.stored()
    shared.sandbox.expire_access_tokens()
    shared.sandbox.latency = 0.5

    answers = shared.run_children(rejected=rejected)

    assert [kind for kind, _ in answers] == ["token"] * PROCESSES, answers
    assert len({token for _, token in answers}) == 1
    assert len(shared.refreshes()) == 1
    assert shared.works_at_kakao(answers[0][1])


def test_two_processes_meeting_a_dead_refresh_token_ask_kakao_once(shared):
    shared.expire_stored_access_token()
    shared.sandbox.revoke_refresh_tokens()
    shared.sandbox.latency = 0.5

    answers = shared.run_children()

    assert [kind for kind, _ in answers] == ["error"] * PROCESSES, answers
    for _, message in answers:
        assert message.startswith("KakaoLoginRequired") and f"kakao login --account {ACCOUNT}" in message
    assert len(shared.refreshes()) == 1  # the second process saw the mark and did not ask again
    assert shared.stored()[2]
