"""A digest's chart through a whole delivery (bot.delivery.charts, the runner) against the Kakao and Shopify
stand-ins: drawn once, uploaded once for every recipient, the feed's image; failures send the text once."""

from __future__ import annotations

import io
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from PIL import Image

from bot.app import App
from bot.delivery import charts
from bot.delivery.runner import Runner
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.kakao_images import UPLOAD_PATH
from bot.sandbox.shopify import ShopifySandbox
from bot.util.chart_process import draw_png

from webhook_helpers import API_KEY, API_SECRET, SHOP

FRIENDS = ("직원A", "직원B", "직원C", "직원D", "직원E", "직원F")
KST = timezone(timedelta(hours=9))


def chart_job(chart: str = "daily7", to: tuple[str, ...] = ("me", *(f"friend:{f}" for f in FRIENDS))) -> str:
    recipients = ", ".join(f'"{r}"' for r in to)
    return f"""
[[jobs]]
name = "digest"
kind = "shopify-orders"
shop = "{SHOP}"
at = ["evening"]
to = [{recipients}]
chart = "{chart}"
"""


@pytest.fixture
def chart_bot(make_bot: Callable[..., App], sandbox: KakaoSandbox, shopify: ShopifySandbox) -> App:
    for name in FRIENDS:
        sandbox.add_friend(name)
    # The fake clock is 2026-11-22 09:00 in Seoul: orders on this day and the 6 before it.
    for back in range(7):
        day = datetime(2026, 11, 22, 1, 0, tzinfo=KST) - timedelta(days=back)
        shopify.add_orders(SHOP, back + 1, start=day, every=timedelta(minutes=30), cancelled_every=3)
    return make_bot(chart_job())


def _run(app: App, **kwargs: Any):  # noqa: ANN202
    return Runner(app, **kwargs).run(app.config.jobs[0], "run:test")


def _received(sandbox: KakaoSandbox) -> list[dict]:
    return [t for key in ["me", *(f.uuid for f in sandbox.friends.values())] for t in sandbox.received(key)]


def test_one_upload_for_every_recipient_and_its_url_is_the_feeds_image(chart_bot: App, sandbox: KakaoSandbox):
    report = _run(chart_bot)

    assert report.status == "delivered" and not report.failed and report.chart_error is None
    assert sandbox.count(UPLOAD_PATH) == 1
    [upload] = sandbox.images.uploads
    url = _received(sandbox)[0]["content"]["image_url"]
    assert url.endswith(f"/dn/{upload.key}/img.png")
    messages = _received(sandbox)
    assert len(messages) == 1 + len(FRIENDS)  # me + 6 friends, in two friend calls, one upload
    assert {m["object_type"] for m in messages} == {"feed"}
    assert {m["content"]["image_url"] for m in messages} == {url}
    with urllib.request.urlopen(url, timeout=10) as answer:  # the stand-in serves the image back
        image = Image.open(io.BytesIO(answer.read()))
        image.load()
    assert image.format == "PNG" and image.size == (800, 400)
    items = {row["item"]: row["item_op"] for row in messages[0]["item_content"]["items"]}
    assert list(items) == ["매출", "주문", "객단가", "취소", "환불"]
    assert len(messages[0]["buttons"]) <= 2


def test_a_rerun_of_a_slot_everybody_has_uploads_nothing_and_one_still_missing_gets_the_chart(
        chart_bot: App, sandbox: KakaoSandbox):
    sandbox.fail_next("/v1/api/talk/friends/message/default/send", 400,
                      {"code": -530, "msg": "receiver refuses"}, times=1)  # one friend call fails
    first = _run(chart_bot)
    assert first.chart_error is None and sandbox.count(UPLOAD_PATH) == 1
    missing = {r.label for r in first.fanout.results if r.status != "sent"}
    assert missing  # the re-run below has somebody to send to

    again = _run(chart_bot)  # the same slot: the friends left over get the chart, freshly uploaded
    assert sandbox.count(UPLOAD_PATH) == 2
    assert {r.label for r in again.fanout.results if r.status == "sent"} == missing

    third = _run(chart_bot)  # everybody has it now: no drawing, no upload, nothing sent
    assert sandbox.count(UPLOAD_PATH) == 2 and third.chart_error is None
    assert not [r for r in third.fanout.results if r.status == "sent"]


@pytest.mark.parametrize("status, body", [
    (500, {"msg": "internal error", "code": -9798}),
    (400, {"msg": "image size exceeds the limit", "code": -602}),
    (200, {"infos": {"original": {"url": "not a url", "width": 800, "height": 400}}}),
    (200, {"infos": {}}),
])
def test_a_failed_upload_still_sends_the_text_digest_once(chart_bot: App, sandbox: KakaoSandbox, status, body):
    sandbox.fail_next(UPLOAD_PATH, status, body, times=5)

    report = _run(chart_bot)

    assert report.status == "delivered" and not report.failed
    assert "uploaded" in report.chart_error
    messages = _received(sandbox)
    assert len(messages) == 1 + len(FRIENDS)
    assert {m["object_type"] for m in messages} == {"text"}
    assert all("주문" in m["text"] for m in messages)
    assert sandbox.images.uploads == []


@pytest.mark.parametrize("child, timeout, failure", [
    ("import sys; sys.exit('boom')", 30, "the chart drawer failed (exit 1): boom"),
    ("import sys; sys.stdout.write('not a png')", 30, "the chart drawer gave no PNG"),
    ("import time; time.sleep(120)", 1, "drawing the chart took over 1 s"),
])
def test_a_failed_drawing_still_sends_the_text_once_and_says_why(chart_bot: App, sandbox: KakaoSandbox,
                                                                    monkeypatch, child, timeout, failure):
    monkeypatch.setattr(charts, "draw_png", lambda spec: draw_png(spec, timeout=timeout,
                                                                  command=[sys.executable, "-c", child]))
    report = _run(chart_bot)

    assert report.status == "delivered" and not report.failed
    assert failure in report.chart_error
    assert sandbox.count(UPLOAD_PATH) == 0
    assert [m["object_type"] for m in _received(sandbox)] == ["text"] * (1 + len(FRIENDS))


def test_a_dry_run_writes_the_png_and_uploads_nothing(chart_bot: App, sandbox: KakaoSandbox, tmp_path):
    report = Runner(chart_bot, chart_dir=tmp_path / "charts").run(chart_bot.config.jobs[0], "run:dry", dry_run=True)

    assert report.status == "dry-run"
    assert report.chart_path == tmp_path / "charts" / "digest.png"
    assert Image.open(report.chart_path).size == (800, 400)
    assert sandbox.count(UPLOAD_PATH) == 0 and _received(sandbox) == []
    assert report.previews[0][1]["content"]["image_url"] == report.chart_path.resolve().as_uri()


def test_a_chart_whose_orders_cannot_be_read_leaves_the_text(chart_bot: App, sandbox: KakaoSandbox, monkeypatch):
    from jobs import digest_chart

    def failing(*_args: Any, **_kwargs: Any):  # noqa: ANN202
        raise ValueError("bad window")

    monkeypatch.setattr(digest_chart, "fetch_orders", failing)
    report = _run(chart_bot)

    assert "no chart" in report.chart_error and not report.failed
    assert sandbox.count(UPLOAD_PATH) == 0
    assert [m["object_type"] for m in _received(sandbox)] == ["text"] * (1 + len(FRIENDS))


def test_send_now_dry_run_prints_the_png_path_and_each_recipients_feed_as_text(chart_bot: App, secret_key: str,
                                                                                 sandbox: KakaoSandbox, tmp_path):
    from click.testing import CliRunner

    from bot.cli.main import cli

    env = {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": sandbox.rest_api_key,
           "KAKAO_CLIENT_SECRET": sandbox.client_secret, "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET,
           "BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None}
    result = CliRunner().invoke(cli, ["--config", str(chart_bot.config.path), "send-now", "--dry-run",
                                      "--chart-dir", str(tmp_path / "out")], env=env)

    assert result.exit_code == 0, result.output
    png = tmp_path / "out" / "digest.png"
    assert f"chart: {png}" in result.output
    assert Image.open(png).size == (800, 400)
    assert result.output.count("-- to ") == 1 + len(FRIENDS)
    assert result.output.count(f"🖼 {png.resolve().as_uri()}") == 1 + len(FRIENDS)
    assert "• 객단가: " in result.output and "[주문 보기]" in result.output
    assert sandbox.count(UPLOAD_PATH) == 0 and _received(sandbox) == []
