"""The command line (`python -m bot …` / `kakao-shopify-bot …`).

Exit codes: 0 ok; 1 a job or send failed (each failure reported); 2 bad config or usage.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import uuid
from datetime import datetime
from typing import Any, Callable

import click

from bot.app import App
from bot.config import Config, ConfigError, default_config_path, load_config
from bot.kakao_errors import KakaoError
from bot.logs import setup_logging
from bot.preview import preview
from bot.runner import RunReport, Runner
from bot.schedule import slot_instant
from bot.secrets import MissingSecret, Secrets
from bot.shopify_errors import ShopifyError
from jobs import job_kind
from tokens.vault import VaultError

log = logging.getLogger("bot")


class UsageProblem(click.ClickException):
    exit_code = 2


class Failed(click.ClickException):
    exit_code = 1


def _errors_to_exit_codes(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, MissingSecret, VaultError) as exc:
            raise UsageProblem(str(exc)) from None
        except (KakaoError, ShopifyError) as exc:
            raise Failed(str(exc)) from None
    return wrapper


class CliState:
    def __init__(self, config_path: str | None):
        self.config_path = default_config_path(config_path)
        self.explicit = config_path is not None
        self._app: App | None = None

    def config(self) -> Config:
        # A path the user named must exist; only the implicit ./config.toml may be absent.
        named = self.explicit or bool(os.environ.get("BOT_CONFIG"))
        config = load_config(self.config_path, require_file=named)
        for warning in config.warnings:
            log.warning("%s: %s", self.config_path, warning)
        return config

    def app(self, *, migrate: bool = True) -> App:
        if self._app is None:
            config = self.config()
            self._app = App(config, Secrets.load(config.base_dir))
            if migrate:
                self._app.db.migrate()
        return self._app


pass_state = click.make_pass_decorator(CliState)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="config.toml (default: $BOT_CONFIG, else ./config.toml)")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.version_option(package_name="kakao-shopify-bot")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """kakao-shopify-bot: shop news in KakaoTalk."""
    setup_logging(verbose)
    ctx.obj = CliState(config_path)
    ctx.call_on_close(lambda: ctx.obj._app and ctx.obj._app.close())


# -- run -----------------------------------------------------------------------------------


@cli.command("run")
@pass_state
@_errors_to_exit_codes
def run_command(state: CliState) -> None:
    """The service: HTTP server on [server] listen; stops cleanly on SIGTERM/SIGINT."""
    from bot.service import run_service

    code = run_service(state.app(migrate=False))  # run_service migrates
    if code:
        sys.exit(code)


# -- send-now ----------------------------------------------------------------------------


@cli.command("send-now")
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@click.option("--slot", metavar="NAME", help="deliver today's occurrence of this slot, exactly once")
@click.option("--dry-run", is_flag=True, help="print each recipient's message; send and record nothing")
@click.option("--force", is_flag=True, help="with --slot: send again even if already delivered")
@pass_state
@_errors_to_exit_codes
def send_now(state: CliState, job_names: tuple[str, ...], slot: str | None, dry_run: bool, force: bool) -> None:
    """Run scheduled jobs now (all if none are named) and send."""
    # A dry run records nothing, but still needs the schema to read the jobs' memory.
    app = state.app()
    jobs = _select_jobs(app.config, job_names, slot)
    runner = Runner(app)
    reports = [runner.run(job, _slot_key(app, slot, force), dry_run=dry_run) for job in jobs]
    for report in reports:
        _print_report(report)
    failed = [report.job for report in reports if report.failed]
    if failed:
        raise Failed(f"failed: {', '.join(failed)}")


def _select_jobs(config: Config, names: tuple[str, ...], slot: str | None) -> list:
    if slot is not None and slot not in config.slots:
        raise UsageProblem(f"unknown slot {slot!r} (slots: {', '.join(config.slots)})")
    scheduled = [job for job in config.jobs if getattr(job_kind(job.kind), "SCHEDULED", True)]
    if names:
        by_name = {job.name: job for job in scheduled}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise UsageProblem(f"no scheduled job named {', '.join(unknown)} (jobs: {', '.join(by_name) or 'none'})")
        jobs = [by_name[name] for name in dict.fromkeys(names)]
        if slot:
            wrong = [job.name for job in jobs if slot not in job.at]
            if wrong:
                raise UsageProblem(f"{', '.join(wrong)} not scheduled at slot {slot!r}")
        return jobs
    jobs = [job for job in scheduled if slot is None or slot in job.at]
    if not jobs:
        raise UsageProblem("no scheduled jobs configured" + (f" at slot {slot!r}" if slot else ""))
    return jobs


def _slot_key(app: App, slot: str | None, force: bool) -> str:
    now = app.clock().astimezone(app.config.timezone)
    if slot is None:
        return f"run:{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    key = slot_instant(app.config.slots[slot], now.date(), app.config.timezone).isoformat()
    return f"{key}#force-{uuid.uuid4().hex[:8]}" if force else key


def _print_report(report: RunReport) -> None:
    if report.status == "dry-run":
        click.echo(f"== {report.job} (dry run: nothing sent)")
        for label, template in report.previews:
            click.echo(f"-- to {label}")
            if template:
                click.echo(preview(template))
        return
    if report.status == "failed":
        click.echo(f"== {report.job}: FAILED: {report.error}")
        return
    if report.status == "nothing":
        click.echo(f"== {report.job}: nothing to report, nothing sent")
        return
    click.echo(f"== {report.job} [{report.slot_key}]")
    for result in report.fanout.results:
        why = f" — {result.reason}" if result.reason else ""
        click.echo(f"   {result.label}: {result.status}{why}")


# -- kakao -----------------------------------------------------------------------------


@cli.group()
def kakao() -> None:
    """Kakao login, friends and token health."""


@kakao.command("login")
@click.option("--code", help="an authorization code pasted from the redirect address")
@click.option("--account", default="default", show_default=True, help="name to store this login under")
@click.option("--timeout", default=300, show_default=True, help="seconds to wait for the redirect")
@pass_state
@_errors_to_exit_codes
def kakao_login_command(state: CliState, code: str | None, account: str, timeout: int) -> None:
    """Log in with Kakao and store the tokens (encrypted)."""
    from bot.login import LoginFailed, kakao_login

    app = state.app()
    try:
        status = kakao_login(app, account, code=code, out=click.echo, timeout=timeout)
    except LoginFailed as exc:
        raise Failed(str(exc)) from None
    click.echo(f"Logged in as {account!r}: scopes {' '.join(status.scopes) or '?'}; "
               f"refresh token valid until {_local(app, status.refresh_expires_at)}")


@kakao.command("friends")
@click.option("--account", default="default", show_default=True)
@pass_state
@_errors_to_exit_codes
def kakao_friends(state: CliState, account: str) -> None:
    """List friends who can receive messages (not stored: Kakao's policy)."""
    friends = state.app().kakao_api(account).friends()
    if not friends:
        click.echo("No friends visible. Until the app has Kakao's friends/message permission, only members "
                   "of the Kakao app who linked it and agreed to 'friends' appear.")
        return
    width = max(len(friend.nickname) for friend in friends)
    for friend in friends:
        allowed = "yes" if friend.allowed_msg else "no (refuses messages)"
        click.echo(f"{friend.nickname.ljust(width)}  uuid:{friend.uuid}  allowed: {allowed}")


@kakao.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@_errors_to_exit_codes
def kakao_status(state: CliState, as_json: bool) -> None:
    """Token health: expiry instants and scopes, never token values (exit 1 if a login needs a person)."""
    app = state.app()
    logins = app.kakao_tokens.all_status()
    now = app.clock()
    health = [_login_health(app, status, now) for status in logins]
    if as_json:
        import json

        click.echo(json.dumps([{"account": s.account, "status": code, "reason": reason, "action": action,
                                "access_expires_at": s.access_expires_at.isoformat(),
                                "refresh_expires_at": s.refresh_expires_at.isoformat(),
                                "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
                                "scopes": list(s.scopes)}
                               for s, (code, reason, action) in zip(logins, health)], indent=2, ensure_ascii=False))
        if not logins:
            click.echo("no Kakao login stored: run `python -m bot kakao login`", err=True)
    elif not logins:
        raise Failed("no Kakao login stored: run `python -m bot kakao login`")
    else:
        labels = {"ok": "ok", "expiring": "EXPIRES SOON", "needs_login": "NEEDS LOGIN"}
        header = ("ACCOUNT", "STATUS", "ACCESS TOKEN EXPIRES", "REFRESH TOKEN EXPIRES", "SCOPES")
        rows = [(s.account, labels[code], _local(app, s.access_expires_at), _local(app, s.refresh_expires_at),
                 " ".join(s.scopes) or "?") for s, (code, _, _) in zip(logins, health)]
        for line in _table(header, rows):
            click.echo(line)
        for s, (code, reason, action) in zip(logins, health):
            if code != "ok":
                click.echo(f"  {s.account}: {labels[code]}: {reason} — {action}")
    if not logins or any(code == "needs_login" for code, _, _ in health):
        sys.exit(1)


def _login_health(app: App, status: Any, now: datetime) -> tuple[str, str | None, str | None]:
    """(ok | expiring | needs_login, why, what to run) of one Kakao login."""
    from bot.problems import REFRESH_WARNING

    action = f"run `python -m bot kakao login --account {status.account}`"
    if status.needs_login_reason:
        return "needs_login", status.needs_login_reason, action
    if status.refresh_expires_at <= now:
        return "needs_login", f"the refresh token expired at {_local(app, status.refresh_expires_at)}", action
    if status.refresh_expires_at - now <= REFRESH_WARNING:
        return ("expiring", f"the refresh token expires at {_local(app, status.refresh_expires_at)}",
                f"{action} before then")
    return "ok", None, None


def _local(app: App, instant: datetime) -> str:
    return instant.astimezone(app.config.timezone).strftime("%Y-%m-%d %H:%M %Z")


def _display_width(text: str) -> int:
    """Terminal columns of `text`: Korean (East Asian wide) characters take two."""
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Lines of an aligned table (two spaces between columns), header first."""
    widths = [max(_display_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell + " " * (width - _display_width(cell)) for cell, width in zip(row, widths)).rstrip()
            for row in [header, *rows]]


# -- shopify ---------------------------------------------------------------------------


@cli.group()
def shopify() -> None:
    """Shopify: connect shops (install, connect, add-token) and list them."""


def _shop(shop: str) -> str:
    """The shop domain, lower-cased; anything but a bare *.myshopify.com host is a usage error (exit 2)."""
    from bot.shopify_auth import normalize_shop

    try:
        return normalize_shop(shop.strip())
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def _app_name(app: App, name: str | None) -> str:
    """--app NAME, else the only configured app, else the one named "default"."""
    names = [configured.name for configured in app.config.shopify.apps]
    if name is not None:
        return name
    if len(names) == 1:
        return names[0]
    if "default" in names:
        return "default"
    raise UsageProblem(f"several Shopify apps are configured: choose one with --app (apps: {', '.join(names)})")


_APP_OPTION = click.option("--app", "app_name", metavar="NAME",
                           help="the configured Shopify app ([[shopify.apps]] name; default: the only one, "
                                "else 'default')")


@shopify.command("install")
@click.argument("shop")
@_APP_OPTION
@pass_state
@_errors_to_exit_codes
def shopify_install(state: CliState, shop: str, app_name: str | None) -> None:
    """Print the install (OAuth) URL of SHOP; `run` serves it."""
    from urllib.parse import quote

    shop = _shop(shop)
    app = state.app(migrate=False)
    name = _app_name(app, app_name)
    app.shopify_app(name)  # its credentials must be set, or `run` cannot complete the install
    public_url = app.config.server.public_url.rstrip("/")
    click.echo(f"{public_url}/shopify/{quote(name, safe='')}/install?shop={shop}")
    click.echo(f"Open this address in a browser (logged in to {shop}) while `python -m bot run` serves "
               f"{public_url}; after the merchant approves, the token is stored and `python -m bot shopify shops` "
               "lists the shop.")


@shopify.command("connect")
@click.argument("shop")
@_APP_OPTION
@pass_state
@_errors_to_exit_codes
def shopify_connect(state: CliState, shop: str, app_name: str | None) -> None:
    """Connect SHOP with the client credentials grant (an app of the shop's own organisation)."""
    from bot.shopify_client import required_scopes_missing

    shop = _shop(shop)
    app = state.app()
    name = _app_name(app, app_name)
    shopify_app = app.shopify_app(name)
    answer = app.shopify_oauth(name).client_credentials(shop)
    status = app.shopify_tokens.store(name, shop, "client_credentials", answer)
    _warn_missing_scopes(name, required_scopes_missing(shopify_app, answer))
    expiry = _local(app, status.access_expires_at) if status.access_expires_at else "never"
    click.echo(f"Connected {shop} with app {name!r} (client credentials).\n"
               f"  scopes  {', '.join(status.scopes) or '(none reported)'}\n"
               f"  token expires {expiry} (renewed automatically)")
    _subscribe_webhooks(app, name, shop)


@shopify.command("add-token")
@click.argument("shop")
@click.option("--token-env", "token_env", required=True, metavar="VAR",
              help="environment variable (or .env entry, or credential file) holding the Admin API token")
@_APP_OPTION
@pass_state
@_errors_to_exit_codes
def shopify_add_token(state: CliState, shop: str, token_env: str, app_name: str | None) -> None:
    """Store a legacy custom app's Admin API token for SHOP, after checking that it works."""
    from bot.shopify_client import ShopifyTokenAnswer, required_scopes_missing
    from bot.shopify_errors import ShopifyAuthError
    from bot.shopify_graphql import ShopifyGraphQL

    shop = _shop(shop)
    app = state.app()
    name = _app_name(app, app_name)
    shopify_app = app.shopify_app(name)
    token = app.secrets.require(token_env, f"set {token_env} to the shop's Admin API access token (shpat_…) in "
                                           "the environment, in .env beside the config, or as a systemd credential")
    graphql = ShopifyGraphQL(app.shopify_http, origin=app.config.shopify.origin, shop=shop,
                             api_version=app.config.shopify.api_version, tokens=_FixedToken(token))
    try:
        data = graphql.query("{ shop { name } currentAppInstallation { accessScopes { handle } } }")
    except ShopifyAuthError as exc:
        raise Failed(f"{shop}: token refused by Shopify (HTTP {exc.status}); nothing stored. Check the token in "
                     f"{token_env}: it must be the Admin API access token of a custom app installed on {shop}") from None
    shop_name = ((data or {}).get("shop") or {}).get("name") or shop
    installation = (data or {}).get("currentAppInstallation") or {}
    handles = [scope.get("handle") for scope in installation.get("accessScopes") or [] if isinstance(scope, dict)]
    scopes = ",".join(handle for handle in handles if isinstance(handle, str) and handle)
    status = app.shopify_tokens.store_legacy(name, shop, token, scopes)
    _warn_missing_scopes(name, required_scopes_missing(shopify_app, ShopifyTokenAnswer(token, scopes)))
    click.echo(f"Token works for {shop_name!r} ({shop}); stored encrypted as app {name!r} (legacy token).\n"
               f"  scopes  {', '.join(status.scopes) or '(none reported)'}")
    _subscribe_webhooks(app, name, shop)


def _subscribe_webhooks(app: App, name: str, shop: str) -> None:
    """Best effort after a shop was stored: a failure is a warning, the connection stands (exit 0)."""
    from bot.shopify_install import shop_graphql
    from bot.shopify_subscriptions import subscribe, webhook_uri

    uri = webhook_uri(app.config, name)
    try:
        created = subscribe(shop_graphql(app, shop, name), uri)
    except ShopifyError as exc:
        click.echo(f"warning: {shop} is connected, but subscribing it to webhooks at {uri} failed: {exc}. "
                   "Order alerts then rely on reconciliation; run this command again to retry.", err=True)
        return
    click.echo(f"  webhooks {', '.join(created) + ' subscribed' if created else 'already subscribed'} → {uri}")


class _FixedToken:
    """The token source of a token being checked: nothing is stored, so a refusal marks nothing."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def rejected(self, reason: str) -> None:
        pass

    def __repr__(self) -> str:
        return "_FixedToken(<hidden>)"


def _warn_missing_scopes(app_name: str, missing: Any) -> None:
    if missing:
        click.echo(f"warning: app {app_name!r} did not get the scopes {', '.join(missing)} it is configured to ask "
                   "for; jobs that need them will fail. Grant them in the app's configuration and connect again.",
                   err=True)


@shopify.command("app-toml")
@_APP_OPTION
@pass_state
@_errors_to_exit_codes
def shopify_app_toml(state: CliState, app_name: str | None) -> None:
    """Print shopify.app.toml settings for this server: URLs, scopes, webhooks, compliance topics."""
    from bot.shopify_subscriptions import app_toml

    app = state.app(migrate=False)
    name = _app_name(app, app_name)
    configured = {entry.name: entry for entry in app.config.shopify.apps}
    if name not in configured:
        raise UsageProblem(f"no Shopify app named {name!r} (apps: {', '.join(configured)})")
    # Only the client id is printed: the secret is neither needed nor shown.
    client_id = app.secrets.require(configured[name].api_key_env, f"client id of Shopify app {name!r}")
    click.echo(app_toml(app.config, configured[name], client_id), nl=False)


@shopify.command("shops")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@_errors_to_exit_codes
def shopify_shops(state: CliState, as_json: bool) -> None:
    """Installed shops: app, connection mode, status, scopes, token expiry (never token values)."""
    from tokens.shopify import reconnect_hint

    app = state.app()
    installs = app.shopify_tokens.all_status()
    if as_json:
        import json

        def instant(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        click.echo(json.dumps([{"shop": s.shop, "app": s.app, "mode": s.mode, "status": s.status,
                                "status_reason": s.status_reason, "scopes": list(s.scopes),
                                "access_expires_at": instant(s.access_expires_at),
                                "refresh_expires_at": instant(s.refresh_expires_at),
                                "installed_at": instant(s.installed_at), "refreshed_at": instant(s.refreshed_at),
                                "action": None if s.active else reconnect_hint(s.mode, s.shop, s.app)}
                               for s in installs], indent=2, ensure_ascii=False))
        return
    if not installs:
        click.echo("No shops connected: `python -m bot shopify install SHOP` (OAuth), `shopify connect SHOP` "
                   "(client credentials) or `shopify add-token SHOP --token-env VAR` (legacy token).")
        return
    header = ("SHOP", "APP", "MODE", "STATUS", "SCOPES", "TOKEN EXPIRES")
    rows = [(s.shop, s.app, s.mode, s.status, ",".join(s.scopes) or "-",
             _local(app, s.access_expires_at) if s.access_expires_at else
             ("-" if s.status == "uninstalled" else "never")) for s in installs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    click.echo("  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip())
    for status, row in zip(installs, rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if not status.active:
            click.echo(f"    {status.status}: {status.status_reason or 'no reason recorded'} — "
                       f"{reconnect_hint(status.mode, status.shop, status.app)}")


# -- jobs ------------------------------------------------------------------------------


@cli.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@_errors_to_exit_codes
def jobs_command(state: CliState, as_json: bool) -> None:
    """Configured jobs with their next run times (local time of the configured zone)."""
    from bot.scheduler import BotScheduler

    app = state.app(migrate=False)  # config only: nothing is read from the database
    schedules = BotScheduler(app).next_runs()
    if as_json:
        import json

        def instant(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        click.echo(json.dumps([{"name": s.name, "kind": s.kind, "at": list(s.at),
                                "trigger": "schedule" if s.at else "webhooks",
                                "next_run": instant(s.next_run),
                                "next_run_local": _local(app, s.next_run) if s.next_run else None,
                                "recipients": s.recipients, "quiet": s.quiet,
                                "next_summary": instant(s.next_summary), "timezone": str(app.config.timezone)}
                               for s in schedules], indent=2, ensure_ascii=False))
        return
    if not schedules:
        click.echo("No jobs configured: add [[jobs]] to the config (see config.example.toml).")
        return
    rows = []
    for s in schedules:
        if s.at:
            at, next_run = ", ".join(s.at), _local(app, s.next_run) if s.next_run else "never"
        else:
            at = "on new orders (webhooks)" + (f"; quiet {s.quiet}" if s.quiet else "")
            next_run = f"summary {_local(app, s.next_summary)}" if s.next_summary else "-"
        rows.append((s.name, s.kind, at, next_run, str(s.recipients)))
    for line in _table(("NAME", "KIND", "AT", "NEXT RUN", "TO"), rows):
        click.echo(line)


# -- history, db, demo ----------------------------------------------------------------


@cli.command()
@click.option("--job", help="only this job")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@_errors_to_exit_codes
def history(state: CliState, job: str | None, limit: int, as_json: bool) -> None:
    """Recent deliveries, per recipient, with status (newest first)."""
    app = state.app()
    rows = app.deliveries.history(job=job, limit=limit)
    if as_json:
        import json

        click.echo(json.dumps([{"time": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
                                "job": row.job, "slot": row.slot_key, "recipient": row.recipient,
                                "label": row.label or row.recipient, "sender": row.sender, "status": row.status,
                                "late": bool(row.late), "code": row.code, "reason": row.reason}
                               for row in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("No deliveries yet.")
        return
    header = ("TIME", "JOB", "SLOT", "RECIPIENT", "STATUS", "CODE/REASON")
    table = []
    for row in rows:
        extra = " ".join(part for part in (f"[{row.code}]" if row.code is not None else "", row.reason or "") if part)
        table.append((_local(app, row.created_at), row.job, row.slot_key, row.label or row.recipient,
                      row.status + (" (late)" if row.late else ""), extra))
    for line in _table(header, table):
        click.echo(line)


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@pass_state
@_errors_to_exit_codes
def db_upgrade(state: CliState) -> None:
    """Apply schema migrations (also done by the commands that need them)."""
    state.app(migrate=True)
    click.echo("database is up to date")


@cli.command()
@click.option("--keep", is_flag=True, help="keep the demo's temporary folder and print its path")
@_errors_to_exit_codes
def demo(keep: bool) -> None:
    """Run the whole pipeline once against local stand-ins of Kakao: no accounts needed."""
    from bot.demo import run_demo

    if not run_demo(out=click.echo, keep=keep):
        raise Failed("the demo did not deliver every message")


def main() -> None:
    cli(prog_name="kakao-shopify-bot")
