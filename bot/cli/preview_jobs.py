"""`preview`: each recipient's message of the configured jobs, sent to nobody, to tune templates.

A scheduled job (a digest, a scraped page) is run as `send-now --dry-run` runs it: today's real
data, its chart drawn into `--chart-dir` (path printed), nothing uploaded, sent or recorded. An
alert job has no message until Shopify sends an event, so it is rendered with made-up events of
its kind (jobs.samples) — a new order, a cancellation and a refund, a low and an out-of-stock
variant, … — once per audience among its recipients: "me" and friends see different things
(customer data never reaches friends). Alert previews need no Kakao or Shopify call.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from bot.app import App
from bot.cli.common import CliState, UsageProblem, errors_to_exit_codes, pass_state
from bot.cli.preview import dry_run_lines
from bot.config.model import JobConfig
from bot.delivery.runner import Runner
from jobs import job_kind
from jobs.samples import has_sample, sample_outcomes


@click.command("preview")
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@click.option("--chart-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="write the jobs' charts (PNG) here (default: a new temporary folder)")
@pass_state
@errors_to_exit_codes
def preview_command(state: CliState, job_names: tuple[str, ...], chart_dir: Path | None) -> None:
    """Show each recipient's message of the jobs (all if none are named); send nothing."""
    app = state.app()
    for job in _select(app, job_names):
        lines = _alert_lines(app, job) if has_sample(job.kind) else _scheduled_lines(app, job, chart_dir)
        for line in lines:
            click.echo(line)


def _select(app: App, names: tuple[str, ...]) -> list[JobConfig]:
    by_name = {job.name: job for job in app.config.jobs}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UsageProblem(f"no job named {', '.join(unknown)} (jobs: {', '.join(by_name) or 'none'})")
    if not by_name:
        raise UsageProblem(f"no jobs configured in {app.config.path}")
    return [by_name[name] for name in dict.fromkeys(names)] if names else list(by_name.values())


def _scheduled_lines(app: App, job: JobConfig, chart_dir: Path | None) -> list[str]:
    report = Runner(app, chart_dir=chart_dir).run(job, f"preview:{uuid.uuid4().hex[:8]}", dry_run=True)
    if report.status != "dry-run":
        return [f"== {job.name}: {report.status}" + (f": {report.error}" if report.error else "")]
    return dry_run_lines(job.name, report.previews, chart_path=report.chart_path, chart_error=report.chart_error,
                         what="preview: today's data, nothing sent")


def _alert_lines(app: App, job: JobConfig) -> list[str]:
    kind = job_kind(job.kind)
    web_domain = app.config.kakao.web_domain
    now = app.clock().astimezone(app.config.timezone)
    lines: list[str] = []
    for event, outcome in sample_outcomes(job, now):
        rendered: dict[str, dict] = {}
        previews = []
        for recipient in job.to:
            audience = "me" if recipient.kind == "me" else "friend"
            if audience not in rendered:
                rendered[audience] = kind.render(job, outcome, audience=audience, web_domain=web_domain,
                                                 default_link=web_domain)
            previews.append((str(recipient), rendered[audience]))
        lines += dry_run_lines(job.name, previews, what=f"preview, a made-up event: {event}; nothing sent")
    return lines
