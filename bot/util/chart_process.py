"""Drawing a chart in a child process (`python -m bot.util.chart_png`), so the service never loads
matplotlib: its memory goes away with the child. One call, one child, bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Mapping

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_TIMEOUT = 60.0  # seconds; a cold matplotlib font cache takes a few
PROGRAM = "bot.util.chart_png"


class ChartFailed(Exception):
    """The chart could not be drawn; the message says why, for a person."""


def draw_png(spec: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT,
             command: list[str] | None = None) -> bytes:
    """PNG bytes of `spec` (see bot.util.chart_png), drawn by a child process; ChartFailed otherwise.
    `command` replaces the child's command line (tests)."""
    argv = command or [sys.executable, "-m", PROGRAM]
    try:
        done = subprocess.run(argv, input=json.dumps(spec, ensure_ascii=False).encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False, env=child_environment(os.environ))
    except subprocess.TimeoutExpired:
        raise ChartFailed(f"drawing the chart took over {timeout:g} s; stopped") from None
    except OSError as exc:
        raise ChartFailed(f"cannot start the chart drawer: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise ChartFailed(f"the chart drawer failed (exit {done.returncode}): {last[:200]}")
    if not done.stdout.startswith(PNG_SIGNATURE):
        raise ChartFailed("the chart drawer gave no PNG")
    return done.stdout


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The drawer's environment: under systemd (no writable home), matplotlib's cache goes into the
    service's state directory, so its font list is built once rather than in a new temp folder each time."""
    env = dict(environ)
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state and "MPLCONFIGDIR" not in env:
        env["MPLCONFIGDIR"] = os.path.join(state, "matplotlib")
    return env


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    if not png.startswith(PNG_SIGNATURE) or len(png) < 24:
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
