"""The `kakao` command group: log in, list friends, show token health."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from bot.app import App
from bot.cli.common import CliState, Failed, errors_to_exit_codes, pass_state, table_lines
from bot.connect.kakao_login import LoginFailed, kakao_login
from bot.delivery.health_rules import login_fix, refresh_expiring
from bot.util.times import local_time
from tokens.login_health import login_problems


@click.group()
def kakao() -> None:
    """Kakao login, friends and token health."""


@kakao.command("login")
@click.option("--code", help="an authorization code pasted from the redirect address")
@click.option("--account", default="default", show_default=True, help="name to store this login under")
@click.option("--timeout", default=300, show_default=True, help="seconds to wait for the redirect")
@pass_state
@errors_to_exit_codes
def kakao_login_command(state: CliState, code: str | None, account: str, timeout: int) -> None:
    """Log in with Kakao and store the tokens (encrypted)."""

    app = state.app()
    try:
        status = kakao_login(app, account, code=code, out=click.echo, timeout=timeout)
    except LoginFailed as exc:
        raise Failed(str(exc)) from None
    click.echo(f"Logged in as {account!r}: scopes {' '.join(status.scopes) or '?'}; "
               f"refresh token valid until {local_time(status.refresh_expires_at, app.config.timezone)}")


@kakao.command("friends")
@click.option("--account", default="default", show_default=True)
@pass_state
@errors_to_exit_codes
def kakao_friends(state: CliState, account: str) -> None:
    """List friends who can receive messages (not stored: Kakao's policy)."""
    friends = state.app().kakao_api(account).friends()
    if not friends:
        click.echo("No friends visible. Until the app has Kakao's friends/message permission, only members "
                   "of the Kakao app who linked it and agreed to 'friends' appear.")
        return
    rows = [(friend.nickname, f"uuid:{friend.uuid}", "yes" if friend.allowed_msg else "no (refuses messages)")
            for friend in friends]
    for line in table_lines(("NICKNAME", "RECIPIENT", "ALLOWED"), rows):
        click.echo(line)


@kakao.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@errors_to_exit_codes
def kakao_status(state: CliState, as_json: bool) -> None:
    """Token health: expiry instants and scopes, never token values (exit 1 if a login needs a person)."""
    app = state.app()
    logins = app.kakao_tokens.all_status()
    now = app.clock()

    dead = login_problems(app.db, app.vault, now, show=lambda instant: local_time(instant, app.config.timezone))
    health = [_login_health(app, status, now, dead.get(status.account)) for status in logins]
    if as_json:
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
        zone = app.config.timezone
        rows = [(s.account, labels[code], local_time(s.access_expires_at, zone), local_time(s.refresh_expires_at, zone),
                 " ".join(s.scopes) or "?") for s, (code, _, _) in zip(logins, health)]
        for line in table_lines(header, rows):
            click.echo(line)
        for s, (code, reason, action) in zip(logins, health):
            if code != "ok":
                click.echo(f"  {s.account}: {labels[code]}: {reason} — {action}")
    if not logins or any(code == "needs_login" for code, _, _ in health):
        sys.exit(1)


def _login_health(app: App, status: Any, now: datetime, dead: str | None) -> tuple[str, str | None, str | None]:
    """(ok | expiring | needs_login, why, what to run) of one Kakao login; `dead`: tokens.login_health's verdict."""

    action = login_fix(status.account)
    if dead:
        return "needs_login", dead, action
    if refresh_expiring(status.refresh_expires_at, now):
        expires = local_time(status.refresh_expires_at, app.config.timezone)
        return "expiring", f"the refresh token expires at {expires}", f"{action} before then"
    return "ok", None, None
