"""Drawing a chart in a child process (bot.util.chart_process running bot.util.chart_png): an 800×400 PNG
that decodes, Korean labels in the shipped font, bad input refused with a reason, and matplotlib never
loaded into the calling process."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image

from bot.util import chart_png
from bot.util.chart_process import ChartFailed, child_environment, draw_png, png_size

HOURLY = {"kind": "hourly", "title": "오늘 시간대별 매출 · 11/22(일) 18:00까지", "currency": "KRW",
          "labels": [f"{hour}시" for hour in range(24)],
          "series": [{"name": "오늘", "values": [0] * 9 + [20000, 0, 15000] + [0] * 12},
                     {"name": "지난주 일요일", "values": [1000] + [0] * 22 + [4000]}]}
DAILY7 = {"kind": "daily7", "title": "최근 7일 매출", "currency": "KRW", "labels": [f"11/{d}" for d in range(16, 23)],
          "series": [{"name": "", "values": [1000, 0, 5000, 0, 0, 0, 1234567]}]}


@pytest.mark.parametrize("spec", [HOURLY, DAILY7, {**DAILY7, "currency": "USD"},
                                  {**DAILY7, "series": [{"name": "", "values": [0] * 7}]}])
def test_the_png_decodes_at_800_by_400(spec):
    png = draw_png(spec)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size == (800, 400) == png_size(png)
    assert len(png) < 5 * 1024 * 1024


@pytest.mark.parametrize("spec, why", [
    ([], "JSON object"),
    ({"labels": [], "series": []}, "labels"),
    ({"labels": ["a"], "series": []}, "series"),
    ({"labels": ["a"], "series": [{"name": "x", "values": [1, 2]}]}, "one number per label"),
    ({"labels": ["a"], "series": [{"name": "x", "values": ["1"]}]}, "one number per label"),
    ({"labels": ["a"], "series": [{"name": "x", "values": [float("nan")]}]}, "one number per label"),
])
def test_a_spec_it_cannot_draw_fails_with_the_reason(spec, why):
    with pytest.raises(ChartFailed, match=f"exit 2.*{why}"):
        draw_png(spec)


def test_the_korean_font_ships_with_the_package_and_its_licence():
    assert chart_png.FONT.is_file() and chart_png.FONT.stat().st_size > 100_000
    licence = (chart_png.FONT.parent / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL Open Font License" in licence and "NAVER" in licence


@pytest.mark.parametrize("amount, currency, text", [(0, "KRW", "₩0"), (9500, "KRW", "₩9,500"),
                                                    (120000, "KRW", "₩12만"), (257000, "KRW", "₩25.7만"),
                                                    (12345678, "KRW", "₩1,235만"), (1234, "USD", "1,234 USD")])
def test_compact_amounts(amount, currency, text):
    assert chart_png.compact(amount, currency) == text


def test_the_caller_never_imports_matplotlib():
    code = ("import sys; from bot.util.chart_process import draw_png; "
            f"draw_png({DAILY7!r}); print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"


def test_under_systemd_matplotlibs_cache_lives_in_the_state_directory():
    assert child_environment({"STATE_DIRECTORY": "/var/lib/bot:/var/lib/other", "PATH": "/bin"}) == {
        "STATE_DIRECTORY": "/var/lib/bot:/var/lib/other", "PATH": "/bin", "MPLCONFIGDIR": "/var/lib/bot/matplotlib"}
    assert child_environment({"STATE_DIRECTORY": "/s", "MPLCONFIGDIR": "/mine"})["MPLCONFIGDIR"] == "/mine"
    assert "MPLCONFIGDIR" not in child_environment({"PATH": "/bin"})
