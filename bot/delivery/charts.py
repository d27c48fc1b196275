"""A delivery's chart: drawn once (in a child process, bot.util.chart_process), uploaded once to Kakao,
and its URL shared by every recipient's message (`outcome.image_url`; the job kind renders a feed).

A chart that cannot be had — its data, the drawing, the upload — never costs the message: the
outcome stays without an image, the job's text message goes out (once, like any other), and the
failure is logged and carried in the run's report. A dry run draws the PNG into a folder (the
`--chart-dir`, else a new temporary one) and uploads nothing.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from bot.app import App
from bot.config.model import JobConfig
from bot.kakao.errors import KakaoError
from bot.util.chart_process import ChartFailed, draw_png
from bot.util.logs import redact
from bot.util.report_logging import IN_REPORT
from jobs.base import Outcome

log = logging.getLogger(__name__)


@dataclass
class ChartStep:
    """What became of a delivery's chart: the outcome to render (with `image_url` when there is an
    image), the PNG's path (dry run), or why there is no chart."""

    outcome: Outcome
    path: Path | None = None
    error: str | None = None


def attach_chart(app: App, job: JobConfig, outcome: Outcome, *, dry_run: bool = False,
                 chart_dir: Path | None = None,
                 draw: Callable[[dict[str, Any]], bytes] | None = None) -> ChartStep:
    """Draw (`draw`, default: in a child process) and, unless `dry_run`, upload the outcome's chart;
    the outcome unchanged when it has none."""
    if outcome.chart is None and outcome.chart_error is None:
        return ChartStep(outcome)
    if outcome.chart is None:
        return _failed(job, outcome, outcome.chart_error or "no chart")
    try:
        png = (draw or draw_png)(outcome.chart)
    except ChartFailed as exc:
        return _failed(job, outcome, f"{job.name}: the chart could not be drawn: {exc}")
    if dry_run:
        path = _write(png, job.name, chart_dir)
        return ChartStep(replace(outcome, image_url=path.resolve().as_uri()), path=path)
    try:
        image = app.kakao_api(job.sender).upload_image(png, filename=f"{job.name}.png")
    except (KakaoError, ValueError) as exc:
        return _failed(job, outcome, f"{job.name}: the chart could not be uploaded to Kakao: {redact(str(exc))}")
    log.info("%s: chart uploaded (%dx%d)", job.name, image.width, image.height)
    return ChartStep(replace(outcome, image_url=image.url))


def _failed(job: JobConfig, outcome: Outcome, why: str) -> ChartStep:
    log.error("%s; the text message goes out without it", why, extra=IN_REPORT)
    return ChartStep(replace(outcome, image_url=None), error=why)


def _write(png: bytes, job_name: str, chart_dir: Path | None) -> Path:
    folder = chart_dir if chart_dir is not None else Path(tempfile.mkdtemp(prefix="kakao-chart-"))
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in job_name) or "chart"
    path = folder / f"{safe}.png"
    path.write_bytes(png)
    return path
