"""The command line (`python -m bot …` / `kakao-shopify-bot …`): the root group and the core commands.

Exit codes: 0 ok; 1 a job or send failed (each failure reported); 2 bad config or usage.
The `kakao` and `shopify` groups live in bot.cli.kakao and bot.cli.shopify, `history` and `jobs`
in bot.cli.ops; what they share in bot.cli.common.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

import click

from bot.app import App
from bot.cli.common import CliState, Failed, UsageProblem, errors_to_exit_codes, pass_state
from bot.cli.display import delivery_label
from bot.cli.kakao import kakao
from bot.cli.ops import history, jobs_command
from bot.cli.preview import dry_run_lines
from bot.cli.preview_jobs import preview_command
from bot.cli.shopify import shopify
from bot.config.model import Config, JobConfig
from bot.delivery.run_report import RunReport
from bot.delivery.runner import Runner
from bot.delivery.slot_time import SlotNotYet, due_occurrence
from bot.delivery.triggers import job_trigger
from bot.shopify.versions import warn_if_ending
from bot.util.logs import setup_logging
from bot.util.redaction import scrub_output
from bot.util.report_logging import printed_reports
from bot.util.times import slot_instant
from jobs import job_kind


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="config.toml (default: $BOT_CONFIG, else ./config.toml)")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.version_option(package_name="kakao-shopify-bot")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """kakao-shopify-bot: shop news in KakaoTalk."""
    ctx.obj = CliState(config_path)
    setup_logging(verbose, ctx.obj.redactor.scrub)
    ctx.call_on_close(scrub_output(ctx.obj.redactor))
    ctx.call_on_close(lambda: ctx.obj._app and ctx.obj._app.close())


# -- run -----------------------------------------------------------------------------------


@cli.command("run")
@pass_state
@errors_to_exit_codes
def run_command(state: CliState) -> None:
    """The service: HTTP server on [server] listen; stops cleanly on SIGTERM/SIGINT."""
    from bot.service.run import run_service  # late: Flask and waitress only for `run`

    code = run_service(state.app(migrate=False))  # run_service migrates
    if code:
        sys.exit(code)


# -- send-now ----------------------------------------------------------------------------


@cli.command("send-now")
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@click.option("--slot", metavar="NAME", help="deliver today's occurrence of this slot, exactly once")
@click.option("--dry-run", is_flag=True, help="print each recipient's message; send and record nothing")
@click.option("--force", is_flag=True, help="with --slot: send again even if already delivered")
@click.option("--chart-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="with --dry-run: write the jobs' charts (PNG) here (default: a new temporary folder)")
@pass_state
@errors_to_exit_codes
def send_now(state: CliState, job_names: tuple[str, ...], slot: str | None, dry_run: bool, force: bool,
             chart_dir: Path | None) -> None:
    """Run scheduled jobs now (all if none are named) and send."""
    from bot.cli.progress_terminal import terminal_progress  # late: rich only for a command that draws

    if force and slot is None:  # a plain run is a new delivery anyway: --force would silently mean nothing
        raise UsageProblem("--force needs --slot NAME: it re-sends that slot (a plain send-now always sends)")
    # A dry run records nothing, but still needs the schema to read the jobs' memory.
    app = state.app()
    warn_if_ending(app.config.shopify.api_version, app.clock(), app.config.path)
    jobs = _select_jobs(app.config, job_names, slot)
    if slot is not None:
        _wait_for_slot(app, slot)
    # Progress on stderr only in a terminal; printed_reports: what the reports print is not logged twice.
    with terminal_progress() as progress, printed_reports():
        runner = Runner(app, progress=progress, chart_dir=chart_dir)
        reports = [runner.run(job, _slot_key(app, slot, force), dry_run=dry_run, **_slot_window(app, job, slot))
                   for job in jobs]
    for report in reports:
        _print_report(report, app.config.timezone)
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
    if slot is None:
        now = app.clock().astimezone(app.config.timezone)
        return f"run:{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    key = _todays(app, slot).isoformat()
    return f"{key}#force-{uuid.uuid4().hex[:8]}" if force else key


def _slot_window(app: App, job: JobConfig, slot: str | None) -> dict[str, datetime | None]:
    """With --slot, the digest window `run` gives that slot: from the job's previous slot to this one,
    so a cron or timer calling `send-now --slot` sends the same digests as the service. Without: {}
    (a digest of today so far)."""
    if slot is None:
        return {}

    instant = _todays(app, slot)
    return {"since": job_trigger(job.at, app.config).latest(instant, before=True), "until": instant}


def _wait_for_slot(app: App, slot: str) -> None:
    """A slot still ahead is never claimed (bot.delivery.slot_time): refused, or waited for when it is imminent."""
    try:
        due_occurrence(slot, app.config.slots[slot], app.clock, app.config.timezone)
    except SlotNotYet as exc:
        raise UsageProblem(str(exc)) from None


def _todays(app: App, slot: str) -> datetime:
    """Today's occurrence of a slot, in the configured zone."""
    today = app.clock().astimezone(app.config.timezone).date()
    return slot_instant(app.config.slots[slot], today, app.config.timezone)


def _print_report(report: RunReport, report_zone: tzinfo) -> None:

    if report.status == "dry-run":
        for line in dry_run_lines(report.job, report.previews, chart_path=report.chart_path,
                                  chart_error=report.chart_error):
            click.echo(line)
        return
    if report.status == "failed":
        click.echo(f"== {report.job}: FAILED: {report.error}")
        return
    if report.status == "nothing":
        click.echo(f"== {report.job}: nothing to report, nothing sent")
        return
    click.echo(f"== {report.job} [{delivery_label(report.slot_key, report_zone)}]")
    if report.chart_error:
        click.echo(f"   chart: FAILED — {report.chart_error} (the text message went out instead)")
    for result in report.fanout.results:
        why = f" — {result.reason}" if result.reason else ""
        click.echo(f"   {result.label}: {result.status}{why}")


# -- db, demo ---------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@pass_state
@errors_to_exit_codes
def db_upgrade(state: CliState) -> None:
    """Apply schema migrations (also done by the commands that need them)."""
    state.app(migrate=True)
    click.echo("database is up to date")


@cli.command()
@click.option("--keep", is_flag=True, help="keep the demo's temporary folder and print its path")
@errors_to_exit_codes
def demo(keep: bool) -> None:
    """Run the whole pipeline once against local stand-ins of Kakao and Shopify: no accounts needed."""
    from bot.cli.demo import run_demo  # late: the stand-ins only for `demo`

    if not run_demo(out=click.echo, keep=keep):
        raise Failed("the demo did not deliver every message")


# -- the other groups and commands -----------------------------------------------------


cli.add_command(kakao)
cli.add_command(shopify)
cli.add_command(history)
cli.add_command(jobs_command)
cli.add_command(preview_command)


def main() -> None:
    cli(prog_name="kakao-shopify-bot")
