"""Issue 8 item 26 (Shopify): the default API version is a supported one, and `run` and `send-now` warn
once at start when the configured version is within 90 days of its end of support, or past it."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from bot.app import App, load_config
from bot.cli.main import cli
from bot.config.model import ShopifyConfig
from bot.config.secrets import Secrets
from bot.service.run import run_service
from bot.shopify.versions import end_of_support, newest_released, support_warning, warn_if_ending

CONFIG = "config.toml"


@pytest.mark.parametrize("version, end", [("2025-10", date(2026, 10, 1)), ("2026-07", date(2027, 7, 1)),
                                          ("2026-10", date(2027, 10, 1)), ("2027-01", date(2028, 1, 1)),
                                          ("unstable", None), ("2026-08", None)])
def test_each_quarterly_version_is_supported_twelve_months_from_its_release(version: str, end: date | None) -> None:
    assert end_of_support(version) == end


@pytest.mark.parametrize("today, newest", [(date(2026, 12, 2), "2026-10"), (date(2027, 1, 1), "2027-01"),
                                           (date(2027, 3, 31), "2027-01"), (date(2027, 4, 1), "2027-04")])
def test_the_newest_released_version(today: date, newest: str) -> None:
    assert newest_released(today) == newest


def test_the_default_is_supported_today_and_for_months() -> None:
    default = ShopifyConfig().api_version
    assert default == "2026-07"
    assert support_warning(default, date(2026, 12, 2)) is None


def test_a_version_past_its_end_is_named_with_the_version_to_move_to() -> None:
    warning = support_warning("2025-10", date(2026, 12, 2), "/etc/bot/config.toml")
    assert warning is not None and "\n" not in warning
    assert "2025-10" in warning and "unsupported since 2026-10-01" in warning
    assert 'api_version = "2026-10"' in warning and "/etc/bot/config.toml" in warning


@pytest.mark.parametrize("today, warned", [(date(2027, 4, 1), False), (date(2027, 4, 2), True),
                                           (date(2027, 6, 30), True), (date(2027, 7, 1), True)])
def test_the_warning_starts_ninety_days_before_the_end(today: date, warned: bool) -> None:
    warning = support_warning("2026-07", today)
    assert (warning is not None) is warned
    if warned and today < date(2027, 7, 1):
        assert f"({(date(2027, 7, 1) - today).days} days left)" in warning


def test_unstable_gets_no_warning() -> None:
    assert support_warning("unstable", date(2030, 1, 1)) is None


def test_warn_if_ending_logs_one_line(caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.WARNING, logger="bot.shopify.versions"):
        assert warn_if_ending("2025-10", datetime(2026, 12, 2, tzinfo=timezone.utc))
        assert not warn_if_ending("2026-07", datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert len(caplog.records) == 1


def config_with(write_config: Callable[..., Path], version: str, port: int = 8080) -> Path:
    return write_config(f"""\
        [database]
        url = "sqlite:///versions.sqlite3"

        [server]
        listen = "127.0.0.1:{port}"

        [shopify]
        api_version = "{version}"
        """)


def test_send_now_warns_at_start_about_an_unsupported_version(write_config, secret_key: str) -> None:  # noqa: ANN001
    path = config_with(write_config, "2025-10")  # past its end for good: the test does not age
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli, ["--config", str(path), "send-now", "--dry-run"],
                                    env={"BOT_SECRET_KEY": secret_key, "BOT_DATABASE_URL": None, "BOT_CONFIG": None,
                                         "CREDENTIALS_DIRECTORY": None}, catch_exceptions=False)
    finally:  # the CLI installs its own stderr handler: put pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [line for line in result.output.splitlines() if "Shopify API version 2025-10" in line]
    assert len(lines) == 1 and f"in {path}" in lines[0], result.output


def test_run_warns_once_at_start(write_config, secrets: Secrets, caplog) -> None:  # noqa: ANN001
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = App(load_config(config_with(write_config, "2025-10", port)), secrets)
    stop = threading.Event()
    ready = threading.Event()

    def started() -> None:
        ready.set()
        stop.set()

    try:
        with caplog.at_level(logging.WARNING, logger="bot.shopify.versions"):
            assert run_service(app, ready=started, stop_event=stop) == 0
    finally:
        app.close()
    assert ready.is_set()
    assert len([r for r in caplog.records if "Shopify API version 2025-10" in r.getMessage()]) == 1
