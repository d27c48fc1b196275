"""Issue 8 item 21: long work shows progress on stderr in a terminal — pages fetched, orders so far,
throttle waits, recipients sent — and nothing of it when stderr is a pipe or a log; log lines written
meanwhile are printed whole above the display."""

from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from bot.app import App
from bot.cli.progress_terminal import terminal_progress
from bot.util.progress import QUIET
from tokens.models import KakaoLogin

from webhook_helpers import API_KEY, API_SECRET, CLIENT_SECRET, REST_KEY, SHOP

SHOP_URL = "https://admin.shopify.com"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_shows_pages_orders_throttle_waits_and_recipients(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # the line is not cut to a narrow terminal's width
    screen = FakeTerminal()
    with terminal_progress(screen) as progress:
        progress.page(SHOP, 1, 66)
        progress.waiting(SHOP, 0.5, "cost bucket")
        progress.page(SHOP, 2, 132)
        progress.recipients("orders", 3, 7)
    shown = screen.getvalue()
    assert f"{SHOP}: 2 pages, 132 orders so far, 1 throttle wait (0.5 s)" in shown
    assert "orders: 3 of 7 recipients sent" in shown


def test_a_pipe_gets_nothing():
    piped = io.StringIO()
    with terminal_progress(piped) as progress:
        progress.page(SHOP, 1, 66)
        progress.recipients("orders", 1, 1)
    assert progress is QUIET
    assert piped.getvalue() == ""


def test_log_lines_during_progress_print_whole_above_the_display():
    screen, log_stream = FakeTerminal(), sys.stderr
    handler = logging.StreamHandler(log_stream)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with terminal_progress(screen) as progress:
            progress.page(SHOP, 1, 66)
            logging.getLogger("bot").warning("a line from the log")
            progress.page(SHOP, 2, 132)
    finally:
        root.removeHandler(handler)
    assert handler.stream is log_stream  # given back
    lines = screen.getvalue().replace("\r", "\n").split("\n")
    assert any(line.strip().endswith("LOG a line from the log") for line in lines), screen.getvalue()


# -- end to end: `send-now` of a digest of 300 orders, under a throttled bucket --------------------------


ORDERS_JOB = f"""
[[jobs]]
name = "orders"
kind = "shopify-orders"
shop = "{SHOP}"
at = ["noon"]
to = ["me"]
"""


def _prepare(make_bot, shopify) -> tuple[App, dict[str, str]]:  # noqa: ANN001
    # A bucket that one page nearly empties, refilled fast: every page after the first waits a little.
    shopify.bucket_size, shopify.restore_rate = 1000, 20000.0
    shopify.add_orders(SHOP, 300, start=datetime.now(timezone.utc) - timedelta(minutes=10),
                       every=timedelta(seconds=1))
    app = make_bot(ORDERS_JOB)
    now = datetime.now(timezone.utc)  # the CLI runs on the real clock
    with app.db.session() as session:
        row = session.get(KakaoLogin, "default")
        row.access_expires_at, row.refresh_expires_at = now + timedelta(hours=5), now + timedelta(days=40)
    env = {"PATH": os.environ["PATH"], "BOT_SECRET_KEY": app.secrets.get("BOT_SECRET_KEY"),
           "KAKAO_REST_API_KEY": REST_KEY, "KAKAO_CLIENT_SECRET": CLIENT_SECRET,
           "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET, "TERM": "xterm", "COLUMNS": "160"}
    return app, env


def test_send_now_in_a_terminal_shows_progress_and_piped_shows_none(make_bot, shopify, tmp_path):
    app, env = _prepare(make_bot, shopify)
    command = [sys.executable, "-m", "bot", "--config", str(app.config.path), "send-now"]
    main, terminal = pty.openpty()
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=terminal) as proc:
        os.close(terminal)
        screen = _read_all(main)
        out = proc.stdout.read().decode()
    assert proc.returncode == 0, out + screen
    assert "== orders" in out and "me: sent" in out
    # 5 pages of today's orders, then one (empty) page for each comparison window: the same client's totals.
    assert f"{SHOP}: 7 pages, 300 orders so far" in screen
    assert "throttle wait" in screen
    assert "orders: 1 of 1 recipient sent" in screen

    piped = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    for shown in ("pages,", "orders so far", "throttle wait", "recipient sent"):
        assert shown not in piped.stderr and shown not in piped.stdout


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def test_the_service_never_imports_rich():
    """rich is for a person at a terminal: `run` (the CLI, the service, the runner) must not load it,
    or the idle service pays its memory for nothing (bench/idle.py)."""
    code = ("import sys, bot.cli.main, bot.service.run, bot.service.scheduler, bot.delivery.runner, bot.webhooks.worker\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'rich'))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
