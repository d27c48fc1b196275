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
        except KakaoError as exc:
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
@pass_state
@_errors_to_exit_codes
def kakao_status(state: CliState) -> None:
    """Token health: expiry instants and scopes, never token values."""
    app = state.app()
    logins = app.kakao_tokens.all_status()
    if not logins:
        raise Failed("no Kakao login stored: run `python -m bot kakao login`")
    for status in logins:
        health = (f"NEEDS LOGIN: {status.needs_login_reason} — run `python -m bot kakao login --account "
                  f"{status.account}`" if status.needs_login_reason else "ok")
        click.echo(f"{status.account}: {health}\n  access token expires  {_local(app, status.access_expires_at)}\n"
                   f"  refresh token expires {_local(app, status.refresh_expires_at)}\n"
                   f"  scopes {' '.join(status.scopes) or '?'}")
    if any(status.needs_login_reason for status in logins):
        sys.exit(1)


def _local(app: App, instant: datetime) -> str:
    return instant.astimezone(app.config.timezone).strftime("%Y-%m-%d %H:%M %Z")


# -- history, db, demo ----------------------------------------------------------------


@cli.command()
@click.option("--job", help="only this job")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@pass_state
@_errors_to_exit_codes
def history(state: CliState, job: str | None, limit: int) -> None:
    """Recent deliveries, per recipient, with status."""
    app = state.app()
    rows = app.deliveries.history(job=job, limit=limit)
    if not rows:
        click.echo("No deliveries yet.")
    for row in rows:
        extra = " ".join(part for part in (f"[{row.code}]" if row.code is not None else "", row.reason or "") if part)
        late = " (late)" if row.late else ""
        click.echo(f"{_local(app, row.created_at)}  {row.job}  {row.slot_key}  {row.label or row.recipient}  "
                   f"{row.status}{late}  {extra}".rstrip())


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
