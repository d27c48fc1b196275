"""Shared fixtures: secrets, a config writer, the Kakao stand-in, an App wired to it, PostgreSQL."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cryptography.fernet import Fernet

from bot.app import App
from bot.app import load_config
from bot.util.retry import RetryPolicy
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import RunningServer, serve
from bot.config.secrets import Secrets
from scratch_postgres import postgres_server_url, scratch_database

REST_KEY = "sandbox-rest-key"
CLIENT_SECRET = "sandbox-client-secret"


class FakeClock:
    """A controllable UTC clock for the bot (datetime) and the stand-in (epoch seconds)."""

    def __init__(self, start: datetime = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def secrets(secret_key: str) -> Secrets:
    return Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY,
                    "KAKAO_CLIENT_SECRET": CLIENT_SECRET})


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(body) → path of a config.toml holding `body` (dedented)."""

    def write(body: str = "", name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path

    return write


@pytest.fixture
def sandbox(clock: FakeClock) -> KakaoSandbox:
    return KakaoSandbox(rest_api_key=REST_KEY, client_secret=CLIENT_SECRET, clock=clock.epoch)


@pytest.fixture
def kakao_server(sandbox: KakaoSandbox) -> Iterator[RunningServer]:
    with serve(sandbox.wsgi_app()) as server:
        yield server


def sandbox_config(kakao_url: str, jobs: str = "", db_url: str = "sqlite:///bot.sqlite3",
                   web_domain: str = "https://bot.example.com") -> str:
    return textwrap.dedent(f"""\
        [database]
        url = "{db_url}"

        [kakao]
        redirect_uri = "http://127.0.0.1:8080/kakao/callback"
        auth_url = "{kakao_url}"
        api_url = "{kakao_url}"
        web_domain = "{web_domain}"
        """) + textwrap.dedent(jobs)


@pytest.fixture
def make_app(write_config: Callable[..., Path], secrets: Secrets, clock: FakeClock,
             kakao_server: RunningServer) -> Iterator[Callable[..., App]]:
    """make_app(jobs_toml, db_url=…, with_secrets=…) → a migrated App talking to the stand-in, with the fake
    clock (and `secrets` unless others are given)."""
    made: list[App] = []

    def make(jobs: str = "", *, db_url: str = "sqlite:///bot.sqlite3", with_secrets: Secrets | None = None,
             **kwargs: Any) -> App:
        path = write_config(sandbox_config(kakao_server.url, jobs, db_url))
        app = App(load_config(path), with_secrets or secrets, clock=clock,
                  retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None), **kwargs)
        app.db.migrate()
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture
def logged_in(sandbox: KakaoSandbox) -> Callable[[App, str], None]:
    """logged_in(app, account) stores a login obtained from the stand-in by code exchange."""

    def login(app: App, account: str = "default") -> None:
        code = sandbox.issue_code(app.config.kakao.redirect_uri)
        app.kakao_tokens.store_login(account, app.kakao_auth.exchange_code(code))

    return login


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database of this test's own on the BOT_TEST_POSTGRES_URL server, dropped after it
    (tests/scratch_postgres.py): the database that URL names is never touched."""
    with scratch_database(postgres_server_url()) as url:
        yield url
