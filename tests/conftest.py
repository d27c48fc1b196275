"""Shared fixtures: secrets, a config writer, the Kakao stand-in, an App wired to it, PostgreSQL; and for
the tests that need Shopify too, the Shopify stand-in, a bot connected to it, its server, a webhook worker.

The bot's `secrets` hold no Shopify app credentials, and many tests rely on that; the Shopify-connected
bot gets its own, `shopify_secrets`, rather than overriding it.
"""

from __future__ import annotations

import importlib
import logging
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest
from cryptography.fernet import Fernet

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.delivery.alert_start import mark_jobs_seen
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.shopify import ShopifySandbox
from bot.util.retry import RetryPolicy
from bot.web.server import create_app
from bot.webhooks.worker import WebhookWorker

from scratch_postgres import postgres_server_url, scratch_database
from webhook_helpers import (
    ALERT_JOB,
    API_KEY,
    API_SECRET,
    CLIENT_SECRET,
    OLD_SECRET,
    OTHER_SHOP,
    REST_KEY,
    SHOP,
    Hooks,
    shopify_config,
)


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


# -- Shopify: the stand-in, a bot connected to it, its server, a webhook worker ------------------------

@pytest.fixture
def shopify_secrets(secret_key: str) -> Secrets:
    """The project-wide `secrets` plus the Shopify app's client id and (current and previous) secret."""
    return Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY,
                    "KAKAO_CLIENT_SECRET": CLIENT_SECRET, "SHOPIFY_API_KEY": API_KEY,
                    "SHOPIFY_API_SECRET": API_SECRET, "SHOPIFY_API_SECRET_OLD": OLD_SECRET})


@pytest.fixture
def shopify(clock) -> ShopifySandbox:  # noqa: ANN001 — test_reconcile.py overrides `clock` with its own kind
    sandbox = ShopifySandbox(wall_clock=clock.epoch)
    sandbox.register_app(API_KEY, API_SECRET)
    sandbox.add_shop(SHOP)
    sandbox.add_shop(OTHER_SHOP)
    return sandbox


@pytest.fixture
def shopify_server(shopify: ShopifySandbox) -> Iterator[RunningServer]:
    with serve(shopify.wsgi_app()) as server:
        yield server


@pytest.fixture
def make_bot(make_app: Callable[..., App], shopify_secrets: Secrets, shopify: ShopifySandbox,
             shopify_server: RunningServer, logged_in: Callable[[App, str], None]) -> Callable[..., App]:
    """make_bot(jobs=ALERT_JOB, db_url=…) → make_app's App with a [shopify] section and `shopify_secrets`,
    a Kakao login, the shop connected and its alert jobs seen (as `run` records at start: bot.delivery.alert_start)."""

    def make(jobs: str = ALERT_JOB, *, login: bool = True, connect: bool = True, **kwargs: Any) -> App:
        app = make_app(shopify_config(shopify_server.url) + jobs, with_secrets=shopify_secrets, **kwargs)
        if login:
            logged_in(app, "default")
        if connect:
            app.shopify_tokens.store_legacy("default", SHOP, shopify.legacy_token(SHOP), "read_orders")
        mark_jobs_seen(app, app.clock())
        return app

    return make


@pytest.fixture
def bot(make_bot: Callable[..., App]) -> App:
    return make_bot()


@pytest.fixture
def bot_server(bot: App) -> Iterator[RunningServer]:
    with serve(create_app(bot)) as server:
        yield server


@pytest.fixture
def hooks(shopify: ShopifySandbox, bot_server: RunningServer) -> Hooks:
    return Hooks(shopify, bot_server.url)


@pytest.fixture
def worker(bot: App) -> Iterator[WebhookWorker]:
    made = WebhookWorker(bot)
    yield made
    made.stop(5)


@pytest.fixture
def keep_root_logging() -> Iterator[None]:
    """`cli` configures the root logger for a terminal; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    others = {name: logging.getLogger(name).level for name in ("urllib3", "werkzeug", "alembic", "waitress")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in others.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
def bench_script(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """`bench_script("loadgen")`: a script of bench/ imported as the benchmarks import it (bench/ is scripts,
    not a package); bench/ stays on the path for the test, so that processes it spawns import it too."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    return importlib.import_module
