"""Fixtures of the Shopify webhook tests: the Shopify stand-in, a bot connected to it, its server, a worker.

Built on tests/conftest.py (make_app, clock, secret_key, sandbox, kakao_server, logged_in).
The bot's secrets there hold no Shopify app credentials, and the other tests here rely on that
`secrets`; the webhook bot gets its own, `shopify_secrets`, rather than overriding it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import pytest

from bot.delivery.alert_start import mark_jobs_seen
from bot.app import App
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.shopify import ShopifySandbox
from bot.config.secrets import Secrets
from bot.web.server import create_app
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import (
    ALERT_JOB, API_KEY, API_SECRET, CLIENT_SECRET, OLD_SECRET, OTHER_SHOP, REST_KEY, SHOP, Hooks, shopify_config,
)


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
