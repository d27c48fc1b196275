"""Operations tables: `history` (recent deliveries) and `jobs` (configured jobs, next runs), each with --json."""

from __future__ import annotations

import json
from datetime import datetime

import click

from bot.cli.common import CliState, UsageProblem, errors_to_exit_codes, pass_state, table_lines
from bot.cli.display import delivery_label
from bot.store.order_names import names_for as order_names
from bot.util.times import local_time


@click.command()
@click.option("--job", help="only this job")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@errors_to_exit_codes
def history(state: CliState, job: str | None, limit: int, as_json: bool) -> None:
    """Recent deliveries, per recipient, with status (newest first)."""
    app = state.app()
    rows = app.deliveries.history(job=job, limit=limit)
    if job and not rows and job not in {configured.name for configured in app.config.jobs}:
        known = ", ".join(configured.name for configured in app.config.jobs) or "none"
        raise UsageProblem(f"unknown job {job!r}: not in {app.config.path} and never delivered (jobs: {known})")
    if as_json:
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
    names = order_names(app.db, [row.slot_key for row in rows])
    for row in rows:
        extra = " ".join(part for part in (f"[{row.code}]" if row.code is not None else "", row.reason or "") if part)
        slot = delivery_label(row.slot_key, app.config.timezone, names)
        table.append((local_time(row.created_at, app.config.timezone), row.job, slot, row.label or row.recipient,
                      row.status + (" (late)" if row.late else ""), extra))
    for line in table_lines(header, table):
        click.echo(line)


@click.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@errors_to_exit_codes
def jobs_command(state: CliState, as_json: bool) -> None:
    """Configured jobs with their next run times (local time of the configured zone)."""
    from bot.service.scheduler import BotScheduler  # late: APScheduler's scheduler only for `jobs`

    app = state.app(migrate=False)  # config only: nothing is read from the database
    schedules = BotScheduler(app).next_runs()
    if as_json:
        def instant(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        click.echo(json.dumps([{"name": s.name, "kind": s.kind, "at": list(s.at),
                                "trigger": "schedule" if s.at else "webhooks",
                                "next_run": instant(s.next_run),
                                "next_run_local": local_time(s.next_run, app.config.timezone) if s.next_run else None,
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
            at, next_run = ", ".join(s.at), local_time(s.next_run, app.config.timezone) if s.next_run else "never"
        else:
            at = "on new orders (webhooks)" + (f"; quiet {s.quiet}" if s.quiet else "")
            next_run = f"summary {local_time(s.next_summary, app.config.timezone)}" if s.next_summary else "-"
        rows.append((s.name, s.kind, at, next_run, str(s.recipients)))
    for line in table_lines(("NAME", "KIND", "AT", "NEXT RUN", "TO"), rows):
        click.echo(line)
