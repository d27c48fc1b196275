"""The only place `config.toml` is read: parsed and validated once, at the edge, into bot.config.model.

The job kinds are handed in (a JobCatalog: `jobs.CATALOG`), since they live above config.
"""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomllib
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config.model import (
    Config,
    ConfigError,
    DatabaseConfig,
    JobCatalog,
    JobConfig,
    JobKind,
    KakaoConfig,
    ServerConfig,
    ShopifyAppConfig,
    ShopifyConfig,
    WebhooksConfig,
)
from bot.config.plan import plan_warnings
from bot.kakao.recipients import parse_recipient
from bot.util.times import parse_cron, parse_duration


def load_config(path: str | os.PathLike, *, jobs: JobCatalog, require_file: bool = False) -> Config:
    """Read and validate `path`, its jobs against `jobs`; a missing file means all defaults unless required."""
    path = Path(path)
    if not path.exists():
        if require_file:
            raise ConfigError(path, "(file)", "not found; copy config.example.toml to start")
        return Config(path=path)
    try:
        # utf-8-sig: editors on Windows save a byte-order mark, which TOML would refuse.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "(file)", f"not valid TOML: not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(path, "(file)", f"cannot be read: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(file)", f"not valid TOML: {exc}") from None
    return _Parser(path, jobs).parse(raw)


_TOP_KEYS = {"timezone", "database", "server", "kakao", "shopify", "webhooks", "slots", "delivery", "jobs"}
_JOB_KEYS = {"name", "kind", "at", "to", "from", "skip_if_empty", "template"}
# The keys of each fixed table; [slots] takes any slot name.
SECTION_KEYS = {
    "database": {"url"},
    "server": {"listen", "public_url"},
    "kakao": {"redirect_uri", "auth_url", "api_url", "web_domain", "timeout"},
    "shopify": {"api_version", "origin", "apps", "cdn"},
    "shopify.apps": {"name", "api_key_env", "api_secret_env", "old_api_secret_env", "scopes"},
    "delivery": {"grace", "quota_reserve"},
    "webhooks": {"workers"},
}
MAX_WEBHOOK_WORKERS = 16
_SLOT_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# Job names are stored in 100-character columns (deliveries, job memory).
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_GRACE_SECONDS = 7 * 86400  # [delivery] grace: a bound that keeps every date computation in range


class _Parser:
    def __init__(self, path: Path, catalog: JobCatalog):
        self.path, self.catalog = path, catalog

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.path, key, reason)

    # -- typed getters -------------------------------------------------------------
    def table(self, raw: Any, key: str, allowed: set[str]) -> dict:
        if not isinstance(raw, dict):
            raise self.fail(key, f"must be a table, got {type(raw).__name__}")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            where = f"{key}.{unknown[0]}" if key else unknown[0]
            raise self.fail(where, f"unknown key (known: {', '.join(sorted(allowed))})")
        return raw

    def get(self, raw: dict, key: str, where: str, kind: type | tuple, default: Any) -> Any:
        if key not in raw:
            return default
        value = raw[key]
        # bool is an int in Python; a `port = true` must still be refused.
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(where, f"must be {_type_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(where, f"must be {_type_name(kind)}, got {type(value).__name__}")
        return value

    def url(self, raw: dict, key: str, where: str, default: str) -> str:
        value = self.get(raw, key, where, str, default)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises on a port that is not a number in 0..65535)
        except ValueError:
            raise self.fail(where, f"must be an http(s) URL, got {value!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(where, f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/") if key != "redirect_uri" else value

    def str_list(self, raw: dict, key: str, where: str, default: tuple) -> tuple[str, ...]:
        value = self.get(raw, key, where, (list, str), default)
        if isinstance(value, str):
            value = [value]
        if not all(isinstance(item, str) and item for item in value):
            raise self.fail(where, "must be a list of non-empty strings")
        return tuple(value)

    # -- sections --------------------------------------------------------------------
    def parse(self, raw: dict) -> Config:
        self.table(raw, "", _TOP_KEYS)
        zone_name = self.get(raw, "timezone", "timezone", str, "Asia/Seoul")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Asia" is a folder of zones
            raise self.fail("timezone", f"unknown time zone {zone_name!r} (e.g. 'Asia/Seoul')") from None
        kakao = self.kakao(raw.get("kakao", {}))
        server = self.server(raw.get("server", {}))
        slots = self.slots(raw.get("slots", {}))
        delivery = self.table(raw.get("delivery", {}), "delivery", SECTION_KEYS["delivery"])
        grace_text = self.get(delivery, "grace", "delivery.grace", str, "30m")
        try:
            grace = parse_duration(grace_text)
        except ValueError as exc:
            raise self.fail("delivery.grace", str(exc)) from None
        if grace > MAX_GRACE_SECONDS:  # a late slot older than a week helps no one; huge values overflow timedelta
            raise self.fail("delivery.grace", f"must be at most 7d, got {grace_text!r}")
        reserve = self.get(delivery, "quota_reserve", "delivery.quota_reserve", int, 5)
        if not 0 <= reserve <= 50:
            raise self.fail("delivery.quota_reserve", f"must be between 0 and 50, got {reserve}")
        jobs = self.jobs(raw.get("jobs", []), slots)
        config = Config(
            path=self.path,
            timezone=zone,
            database=self.database(raw.get("database", {})),
            server=server,
            kakao=kakao,
            shopify=self.shopify(raw.get("shopify", {})),
            webhooks=self.webhooks(raw.get("webhooks", {})),
            slots=slots,
            grace_seconds=grace,
            quota_reserve=reserve,
            jobs=jobs,
        )

        warnings = plan_warnings(config) + self.scope_warnings(config)
        return Config(**{**config.__dict__, "warnings": tuple(warnings)})

    def scope_warnings(self, config: Config) -> list[str]:
        """A job whose kind needs an Admin API scope (its SCOPES) that no configured Shopify app asks for."""
        asked = {scope for entry in config.shopify.apps for scope in entry.scopes}
        asked |= {scope.replace("write_", "read_", 1) for scope in asked if scope.startswith("write_")}
        warnings = []
        for job in config.jobs:
            lacking = [scope for scope in getattr(self.catalog.kind(job.kind), "SCOPES", ()) if scope not in asked]
            if lacking and config.shopify.apps:
                warnings.append(f"job {job.name!r} ({job.kind}) needs the Shopify scope(s) {', '.join(lacking)}, "
                                "which no [[shopify.apps]] entry asks for: add them to its `scopes`")
        return warnings

    def database(self, raw: Any) -> DatabaseConfig:
        raw = self.table(raw, "database", SECTION_KEYS["database"])
        url = self.get(raw, "url", "database.url", str, DatabaseConfig.url)
        # Only the drivers that are installed; the URL itself is never echoed: it may hold a password.
        if not re.match(r"^(sqlite(\+pysqlite)?|postgres(ql)?(\+psycopg)?)://", url):
            raise self.fail("database.url", "must be a sqlite:/// or postgresql+psycopg:// URL")
        try:
            make_url(url)
        except (ArgumentError, ValueError):
            raise self.fail("database.url", "not a valid database URL (bad host, port or format)") from None
        return DatabaseConfig(url=url)

    def webhooks(self, raw: Any) -> WebhooksConfig:
        raw = self.table(raw, "webhooks", SECTION_KEYS["webhooks"])
        workers = self.get(raw, "workers", "webhooks.workers", int, None)
        if workers is not None and not 1 <= workers <= MAX_WEBHOOK_WORKERS:
            raise self.fail("webhooks.workers", f"must be between 1 and {MAX_WEBHOOK_WORKERS}, got {workers}")
        return WebhooksConfig(workers=workers)

    def server(self, raw: Any) -> ServerConfig:
        raw = self.table(raw, "server", SECTION_KEYS["server"])
        listen = self.get(raw, "listen", "server.listen", str, "127.0.0.1:8080")
        match = re.fullmatch(r"\[?([0-9A-Za-z.:-]+?)\]?:(\d{1,5})", listen)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise self.fail("server.listen", f"must be HOST:PORT, got {listen!r}")
        public_url = self.url(raw, "public_url", "server.public_url", ServerConfig.public_url)
        return ServerConfig(host=match.group(1), port=int(match.group(2)), public_url=public_url)

    def kakao(self, raw: Any) -> KakaoConfig:
        raw = self.table(raw, "kakao", SECTION_KEYS["kakao"])
        timeout = self.get(raw, "timeout", "kakao.timeout", (int, float), KakaoConfig.timeout)
        if not 0 < timeout <= 120:
            raise self.fail("kakao.timeout", "must be between 0 and 120 seconds")
        return KakaoConfig(
            redirect_uri=self.url(raw, "redirect_uri", "kakao.redirect_uri", KakaoConfig.redirect_uri),
            auth_url=self.url(raw, "auth_url", "kakao.auth_url", KakaoConfig.auth_url),
            api_url=self.url(raw, "api_url", "kakao.api_url", KakaoConfig.api_url),
            web_domain=self.url(raw, "web_domain", "kakao.web_domain", KakaoConfig.web_domain),
            timeout=float(timeout),
        )

    def shopify(self, raw: Any) -> ShopifyConfig:
        raw = self.table(raw, "shopify", SECTION_KEYS["shopify"])
        version = self.get(raw, "api_version", "shopify.api_version", str, ShopifyConfig.api_version)
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", version):
            raise self.fail("shopify.api_version", f"must be a quarterly version like 2025-10, got {version!r}")
        origin = self.get(raw, "origin", "shopify.origin", str, ShopifyConfig.origin)
        if "{shop}" not in origin or not origin.startswith(("http://", "https://")):
            raise self.fail("shopify.origin", "must be an http(s) URL containing {shop}")
        apps_raw = self.get(raw, "apps", "shopify.apps", list, None)
        apps = ShopifyConfig.apps if apps_raw is None else tuple(
            self.shopify_app(item, f"shopify.apps[{i}]") for i, item in enumerate(apps_raw)
        )
        names = [app.name for app in apps]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate:
            raise self.fail("shopify.apps", f"two apps are named {duplicate!r}")
        cdn = self.get(raw, "cdn", "shopify.cdn", str, ShopifyConfig.cdn)
        if not cdn.startswith(("http://", "https://")) or any(c in cdn for c in "\"'<> "):
            raise self.fail("shopify.cdn", "must be an http(s) URL")
        return ShopifyConfig(api_version=version, origin=origin.rstrip("/"), apps=apps, cdn=cdn.rstrip("/"))

    def shopify_app(self, raw: Any, where: str) -> ShopifyAppConfig:
        raw = self.table(raw, where, SECTION_KEYS["shopify.apps"])
        name = self.get(raw, "name", f"{where}.name", str, "default")
        if not _JOB_NAME.match(name):
            raise self.fail(f"{where}.name", "up to 100 letters, digits, '.', '_' and '-' only")
        env_name = re.compile(r"^[A-Z_][A-Z0-9_]*$")
        values = {}
        for key in ("api_key_env", "api_secret_env", "old_api_secret_env"):
            value = self.get(raw, key, f"{where}.{key}", str, getattr(ShopifyAppConfig, key))
            if value is not None and not env_name.match(value):
                raise self.fail(f"{where}.{key}", f"must name an environment variable, got {value!r}")
            values[key] = value
        scopes = self.str_list(raw, "scopes", f"{where}.scopes", ShopifyAppConfig.scopes)
        return ShopifyAppConfig(name=name, scopes=scopes, **values)

    def slots(self, raw: Any) -> dict[str, time]:
        if not isinstance(raw, dict):
            raise self.fail("slots", "must be a table of NAME = \"HH:MM\"")
        slots = {"morning": time(8), "noon": time(12), "evening": time(18)}
        for name, value in raw.items():
            if not _SLOT_NAME.match(name):
                raise self.fail(f"slots.{name}", "slot names are lower-case words")
            if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
                raise self.fail(f"slots.{name}", f"must be a 24-hour time \"HH:MM\", got {value!r}")
            hour, minute = value.split(":")
            slots[name] = time(int(hour), int(minute))
        return slots

    def jobs(self, raw: Any, slots: dict[str, time]) -> tuple[JobConfig, ...]:
        if not isinstance(raw, list):
            raise self.fail("jobs", "must be an array of tables ([[jobs]])")
        jobs: list[JobConfig] = []
        for index, item in enumerate(raw):
            where = f"jobs[{index}]"
            if not isinstance(item, dict):
                raise self.fail(where, "must be a table")
            kind_name = self.get(item, "kind", f"{where}.kind", str, None)
            if kind_name is None:
                raise self.fail(f"{where}.kind", "missing (one of: " + ", ".join(self.catalog.names()) + ")")
            try:
                kind = self.catalog.kind(kind_name)
            except KeyError:
                raise self.fail(f"{where}.kind", f"unknown kind {kind_name!r} (one of: {', '.join(self.catalog.names())})") from None
            self.table(item, where, _JOB_KEYS | set(kind.PARAM_KEYS))
            jobs.append(self.job(item, where, kind, slots))
        names = [job.name for job in jobs]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate:
            raise self.fail("jobs", f"two jobs are named {duplicate!r}")
        return tuple(jobs)

    def job(self, item: dict, where: str, kind: JobKind, slots: dict[str, time]) -> JobConfig:
        name = self.get(item, "name", f"{where}.name", str, None)
        if not name or not _JOB_NAME.match(name):
            raise self.fail(f"{where}.name", "required: up to 100 letters, digits, '.', '_' and '-'")
        where = f"jobs[{name}]"
        scheduled = getattr(kind, "SCHEDULED", True)
        # A slot named twice is still one run per day.
        at = tuple(dict.fromkeys(self.str_list(item, "at", f"{where}.at", ())))
        if scheduled and not at:
            raise self.fail(f"{where}.at", "required: slot names or cron expressions")
        if not scheduled and at:
            raise self.fail(f"{where}.at", f"a {kind.KIND} job is not scheduled; remove `at`")
        for entry in at:
            self.check_when(entry, f"{where}.at", slots)
        to_raw = self.str_list(item, "to", f"{where}.to", ())
        if not to_raw:
            raise self.fail(f"{where}.to", "required: at least one recipient (\"me\", \"friend:NICK\", \"uuid:UUID\")")
        recipients = []
        for entry in to_raw:
            try:
                recipients.append(parse_recipient(entry))
            except ValueError as exc:
                raise self.fail(f"{where}.to", str(exc)) from None
        sender = self.get(item, "from", f"{where}.from", str, "default")
        if not _ACCOUNT.match(sender):
            raise self.fail(f"{where}.from", f"not a valid account name: {sender!r}")
        template = self.get(item, "template", f"{where}.template", str, None)
        if template is not None:
            self.check_template(template, f"{where}.template")
        params_raw = {key: item[key] for key in kind.PARAM_KEYS if key in item}
        fail: Callable[[str, str], ConfigError] = lambda key, why: self.fail(f"{where}.{key}", why)
        return JobConfig(
            name=name,
            kind=kind.KIND,
            at=at,
            to=tuple(dict.fromkeys(recipients)),
            sender=sender,
            skip_if_empty=self.get(item, "skip_if_empty", f"{where}.skip_if_empty", bool, False),
            template=template,
            params=kind.parse_params(params_raw, fail),
        )

    def check_when(self, entry: str, where: str, slots: dict[str, time]) -> None:
        if " " not in entry.strip():
            if entry not in slots:
                raise self.fail(where, f"unknown slot {entry!r} (slots: {', '.join(slots)})")
            return
        try:
            parse_cron(entry)
        except ValueError as exc:
            raise self.fail(where, f"bad cron expression {entry!r}: {exc}") from None

    def check_template(self, source: str, where: str) -> None:
        problem = self.catalog.template_error(source)
        if problem:
            raise self.fail(where, f"template does not parse: {problem}")


def _type_name(kind: type | tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "an array", dict: "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
