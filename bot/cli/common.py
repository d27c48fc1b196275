"""What the command modules share: exit-code exceptions, the per-invocation state, output helpers.

Exit codes: 0 ok; 1 a job or send failed (`Failed`); 2 bad config or usage (`UsageProblem`).
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from pathlib import Path
from typing import Any, Callable

import click

from bot.app import App, load_config
from bot.config.model import Config, ConfigError, default_config_path
from bot.config.secrets import MissingSecret, Secrets
from bot.kakao.errors import KakaoError
from bot.shopify.errors import ShopifyError
from bot.store.db import DatabaseUnavailable, MigrationFailed
from bot.util.redaction import Redactor
from tokens.vault import VaultError

log = logging.getLogger("bot")


class UsageProblem(click.ClickException):
    exit_code = 2


class Failed(click.ClickException):
    exit_code = 1


def errors_to_exit_codes(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, MissingSecret, VaultError) as exc:
            raise UsageProblem(str(exc)) from None
        except (KakaoError, ShopifyError, DatabaseUnavailable, MigrationFailed) as exc:
            raise Failed(str(exc)) from None
    return wrapper


class CliState:
    def __init__(self, config_path: str | None):
        self.config_path = default_config_path(config_path)
        self.explicit = config_path is not None
        self._app: App | None = None
        self.redactor = Redactor()  # shared by this invocation's App, its log handler and its output

    def config(self) -> Config:
        # No file, no defaults: running on defaults would create ./data/bot.sqlite3 wherever the user stands.
        if not self.config_path.exists():
            raise UsageProblem(missing_config_message(self.config_path, self.explicit))
        config = load_config(self.config_path, require_file=True)
        for warning in config.warnings:
            log.warning("%s: %s", self.config_path, warning)
        return config

    def app(self, *, migrate: bool = True) -> App:
        if self._app is None:
            config = self.config()
            self._app = App(config, Secrets.load(config.base_dir), redactor=self.redactor)
            if migrate:
                self._app.db.migrate()
        return self._app


pass_state = click.make_pass_decorator(CliState)


def missing_config_message(path: Path, explicit: bool) -> str:
    """One line: which path was looked for, where that path came from, and how to create the file."""
    source = "--config" if explicit else "$BOT_CONFIG" if os.environ.get("BOT_CONFIG") else "the default path"
    return (f"config file not found: {path.absolute()} (from {source}); create it with "
            f"`cp config.example.toml {path}` and edit it, or name another with --config PATH")


def display_width(text: str) -> int:
    """Terminal columns of `text`: Korean (East Asian wide) characters take two."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def table_lines(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Lines of an aligned table (two spaces between columns), header first."""
    widths = [max(display_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell + " " * (width - display_width(cell)) for cell, width in zip(row, widths)).rstrip()
            for row in [header, *rows]]
