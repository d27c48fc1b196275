"""Fixtures of the connect tests: the Shopify stand-in on a real local port with two apps and two shops,
an App configured for both apps against it, and the bot's Flask test client."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.shopify import ShopifySandbox
from bot.util.retry import RetryPolicy
from bot.web.server import create_app
from webhook_helpers import CLIENT_SECRET, REST_KEY

from shopify_install_helpers import KEY, OLD_SECRET, OTHER_SHOP, SECOND_KEY, SECOND_SECRET, SECRET, SHOP, config_text


@pytest.fixture
def standin(clock) -> ShopifySandbox:
    shopify = ShopifySandbox(clock=clock.epoch, wall_clock=clock.epoch)
    shopify.register_app(KEY, SECRET)
    shopify.register_app(SECOND_KEY, SECOND_SECRET)
    shopify.add_shop(SHOP, name="First Shop")
    shopify.add_shop(OTHER_SHOP, name="Second Shop")
    return shopify


@pytest.fixture
def standin_server(standin: ShopifySandbox) -> Iterator[RunningServer]:
    with serve(standin.wsgi_app()) as server:
        yield server


def build_app(path: Path, secret_key: str, clock, **more_secrets: str) -> App:  # noqa: ANN001 — FakeClock
    secrets = Secrets({"BOT_SECRET_KEY": secret_key, "SHOPIFY_API_KEY": KEY, "SHOPIFY_API_SECRET": SECRET,
                       "SHOPIFY_OLD_API_SECRET": OLD_SECRET, "SECOND_API_KEY": SECOND_KEY,
                       "SECOND_API_SECRET": SECOND_SECRET, **more_secrets})
    built = App(load_config(path), secrets, clock=clock,
                retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None))
    built.db.migrate()
    return built


@pytest.fixture
def app(write_config: Callable[..., Path], secret_key: str, clock, standin_server: RunningServer) -> Iterator[App]:
    built = build_app(write_config(config_text(f"{standin_server.url}/{{shop}}")), secret_key, clock)
    yield built
    built.close()


@pytest.fixture
def merchant_app(write_config: Callable[..., Path], secret_key: str, clock, standin_server: RunningServer,
                 kakao_server: RunningServer) -> Iterator[App]:
    """As `app`, with the Kakao stand-in (the `sandbox` fixture) for the merchants' own Kakao logins."""
    path = write_config(config_text(f"{standin_server.url}/{{shop}}", kakao_server.url))
    built = build_app(path, secret_key, clock, KAKAO_REST_API_KEY=REST_KEY, KAKAO_CLIENT_SECRET=CLIENT_SECRET)
    yield built
    built.close()


@pytest.fixture
def merchant_client(merchant_app: App):
    return create_app(merchant_app).test_client()


@pytest.fixture
def client(app: App):
    return create_app(app).test_client()
