"""Draws one sales chart as an 800×400 PNG: `python -m bot.util.chart_png` reads the chart as JSON on
stdin and writes the PNG bytes to stdout (exit 2 with a reason on stderr for input it cannot draw).

Run in a child process by bot.util.chart_process, never imported by the service: matplotlib (Agg)
costs tens of megabytes that the idle service must not carry. Labels are Korean, in the font
shipped beside this module (bot/util/fonts: KSB Gothic, a subset of NanumGothic, OFL), registered
with matplotlib by path, so no system font is needed.

Input: {"kind": "hourly" | "daily7", "title": str, "labels": [str, …], "currency": "KRW",
        "series": [{"name": str, "values": [number, …]}, …]} — one or two series, as long as labels;
the first is drawn as bars (today, or the last 7 days), the second (last week's same day) as a line.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, DPI = 800, 400, 100
FONT = Path(__file__).with_name("fonts") / "KSBGothic-Regular.ttf"
MAX_POINTS = 48
BAR, LINE, GRID, TEXT = "#2F6FED", "#F29D38", "#E6E8EC", "#222222"


class BadChart(ValueError):
    """The JSON does not describe a chart this program draws."""


def checked(spec: Any) -> dict[str, Any]:
    """The chart spec, or BadChart naming what is wrong with it."""
    if not isinstance(spec, dict):
        raise BadChart("the chart must be a JSON object")
    labels, series = spec.get("labels"), spec.get("series")
    if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_POINTS or not all(isinstance(x, str) for x in labels):
        raise BadChart(f"labels: 1 to {MAX_POINTS} strings")
    if not isinstance(series, list) or not 1 <= len(series) <= 2:
        raise BadChart("series: one or two")
    for one in series:
        values = one.get("values") if isinstance(one, dict) else None
        if (not isinstance(values, list) or len(values) != len(labels)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in values)):
            raise BadChart("each series needs a name and one number per label")
    return spec


def compact(amount: float, currency: str) -> str:
    """Axis and bar labels: "₩1.2만", "₩350만", "$1,234"."""
    if currency == "KRW":
        if abs(amount) >= 10_000:
            man = amount / 10_000
            return f"₩{man:,.1f}만".replace(".0만", "만") if abs(man) < 100 else f"₩{man:,.0f}만"
        return f"₩{amount:,.0f}"
    return f"{amount:,.0f} {currency}" if currency else f"{amount:,.0f}"


def draw(spec: dict[str, Any]) -> bytes:
    """The PNG bytes of a checked chart spec."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    font_manager.fontManager.addfont(str(FONT))
    family = font_manager.FontProperties(fname=str(FONT)).get_name()
    plt.rcParams.update({"font.family": family, "font.size": 13, "axes.unicode_minus": False})

    labels, series = spec["labels"], spec["series"]
    currency = str(spec.get("currency") or "")
    fig, ax = plt.subplots(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    positions = list(range(len(labels)))
    bars = ax.bar(positions, series[0]["values"], color=BAR, width=0.7, label=str(series[0].get("name", "")),
                  zorder=2)
    if len(series) > 1:
        ax.plot(positions, series[1]["values"], color=LINE, linewidth=2.5, marker="o", markersize=4,
                label=str(series[1].get("name", "")), zorder=3)
    if len(labels) <= 7:  # a week: each bar says its amount
        for bar, value in zip(bars, series[0]["values"]):
            if value:
                ax.annotate(compact(value, currency), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=12,
                            color=TEXT)
    step = 1 if len(labels) <= 12 else 3
    ax.set_xticks(positions[::step], [labels[i] for i in positions[::step]])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: compact(value, currency)))
    top = max((max(one["values"]) for one in series), default=0)
    ax.set_ylim(0, top * 1.3 if top > 0 else 1)  # room above the tallest bar for its label and the legend
    ax.grid(axis="y", color=GRID, zorder=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", length=0, colors=TEXT)
    ax.set_title(str(spec.get("title", "")), loc="left", fontsize=17, color=TEXT, pad=12)
    if len(series) > 1 or series[0].get("name"):
        ax.legend(loc="upper left", frameon=False, fontsize=12, ncols=2)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.86, bottom=0.1)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)  # no bbox_inches: exactly WIDTH × HEIGHT
    plt.close(fig)
    return out.getvalue()


def main() -> int:
    try:
        spec = checked(json.loads(sys.stdin.buffer.read().decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"chart_png: {exc}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(draw(spec))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
