"""The typed settings: what `config.toml` becomes once bot.config.loader has validated it.

Every problem names the file, the key and the reason (ConfigError); the CLI turns it into
exit code 2. Secrets never live here: see `bot.config.secrets`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Callable, Protocol
from zoneinfo import ZoneInfo

from bot.kakao.recipients import Recipient


class ConfigError(Exception):
    def __init__(self, file: str | os.PathLike, key: str, reason: str):
        self.file, self.key, self.reason = str(file), key, reason
        super().__init__(f"{file}: {key}: {reason}")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///data/bot.sqlite3"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "https://bot.example.com"


@dataclass(frozen=True)
class WebhooksConfig:
    # Worker threads processing stored webhooks; None: 1 on SQLite (one writer at a time), 2 on
    # PostgreSQL (measured: 2 drain a burst ~1.4x faster than 1; more add nothing on 2 cores).
    workers: int | None = None


@dataclass(frozen=True)
class KakaoConfig:
    redirect_uri: str = "http://localhost:8080/kakao/callback"
    auth_url: str = "https://kauth.kakao.com"
    api_url: str = "https://kapi.kakao.com"
    # Message links must point to a web domain registered in the Kakao app.
    web_domain: str = "https://bot.example.com"
    timeout: float = 10.0


@dataclass(frozen=True)
class ShopifyAppConfig:
    name: str = "default"
    api_key_env: str = "SHOPIFY_API_KEY"
    api_secret_env: str = "SHOPIFY_API_SECRET"
    old_api_secret_env: str | None = None
    scopes: tuple[str, ...] = ("read_orders",)


@dataclass(frozen=True)
class ShopifyConfig:
    api_version: str = "2026-07"
    origin: str = "https://{shop}"
    apps: tuple[ShopifyAppConfig, ...] = (ShopifyAppConfig(),)
    # Where the embedded app's page loads App Bridge and Polaris from (Shopify requires its CDN;
    # overridable for local stand-ins, as `origin` is).
    cdn: str = "https://cdn.shopify.com/shopifycloud"


@dataclass(frozen=True)
class JobConfig:
    name: str
    kind: str
    at: tuple[str, ...]  # slot names or cron expressions
    to: tuple[Recipient, ...]
    sender: str = "default"  # `from`: the stored Kakao login that sends
    skip_if_empty: bool = False
    template: str | None = None  # Jinja2 source; None = the kind's built-in default
    params: Any = None  # the kind's own typed params


@dataclass(frozen=True)
class Config:
    path: Path
    timezone: ZoneInfo = ZoneInfo("Asia/Seoul")
    database: DatabaseConfig = DatabaseConfig()
    server: ServerConfig = ServerConfig()
    kakao: KakaoConfig = KakaoConfig()
    shopify: ShopifyConfig = ShopifyConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    slots: dict[str, time] = field(
        default_factory=lambda: {"morning": time(8), "noon": time(12), "evening": time(18)}
    )
    grace_seconds: int = 1800
    quota_reserve: int = 5  # of a sender's 100 daily messages, kept for problem reports to "me"
    jobs: tuple[JobConfig, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def job(self, name: str) -> JobConfig:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)


def default_config_path(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("BOT_CONFIG") or "config.toml")


class JobKind(Protocol):
    """What the loader needs of a job kind (a module of `jobs/`): its name, its own keys, its params."""

    KIND: str
    PARAM_KEYS: frozenset[str]

    def parse_params(self, raw: dict, fail: Callable[[str, str], ConfigError]) -> Any: ...


class JobCatalog(Protocol):
    """The job kinds a config may name, handed to the loader (the kinds live above config: `jobs/`)."""

    def kind(self, name: str) -> JobKind:
        """The kind named `name`; KeyError if there is none."""

    def names(self) -> list[str]: ...

    def template_error(self, source: str) -> str | None:
        """Why a message template does not parse; None if it does."""
