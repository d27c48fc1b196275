"""Issue 8 item 24: output a person reads — one test per bullet: aligned friends table, readable history
slots, log times with their offset, no log line doubling a printed one, unreachable upstreams named by
host:port, a missing login said as such, the --code hint keeping --account, --force without --slot refused,
an unknown job in `history --job` named."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from bot.app import App, load_config
from bot.cli.main import cli
from bot.connect.kakao_login import LoginFailed, kakao_login
from bot.kakao.client import KakaoHttp
from bot.kakao.errors import KakaoLoginRequired, KakaoUnreachable, api_error
from bot.shopify.client import ShopifyHttp
from bot.shopify.errors import ShopifyError, ShopifyUnavailable
from bot.store.models import Delivery
from bot.util.logs import setup_logging
from bot.util.retry import RetryPolicy
from bot.store.order_names import remember
from tokens.models import KakaoLogin

SCRAPE_JOB = """
[[jobs]]
name = "menu"
kind = "scrape"
url = "http://127.0.0.1:{port}/menu"
select = "li"
at = ["noon"]
to = ["me"]
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def run_cli(secrets) -> Any:  # noqa: ANN001
    base = {name: secrets.get(name) for name in ("BOT_SECRET_KEY", "KAKAO_REST_API_KEY", "KAKAO_CLIENT_SECRET")}
    base.update({"BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None})

    def run(app: App, *args: str, env: dict[str, str] | None = None) -> Result:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            return CliRunner().invoke(cli, ["--config", str(app.config.path), *args], env={**base, **(env or {})},
                                      catch_exceptions=False)
        finally:  # the CLI installs its own stderr handler: put pytest's back
            root.handlers[:] = handlers
            root.setLevel(level)

    return run


def fresh_login(app: App, account: str = "default") -> None:
    """The CLI runs on the real clock: make the stored login valid relative to it."""
    now = datetime.now(timezone.utc)
    with app.db.session() as session:
        row = session.get(KakaoLogin, account)
        row.access_expires_at = now + timedelta(hours=5)
        row.refresh_expires_at = now + timedelta(days=40)


def test_kakao_friends_is_an_aligned_table_with_a_header(make_app, logged_in, sandbox, run_cli):
    app = make_app()
    logged_in(app)
    fresh_login(app)
    long_name = sandbox.add_friend("김민지 사장님", uuid="uuid-long")
    short_name = sandbox.add_friend("Bo", uuid="uuid-short", allowed_msg=False)
    result = run_cli(app, "kakao", "friends")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["NICKNAME", "RECIPIENT", "ALLOWED"]
    # Aligned in display columns: "김민지 사장님" is 13 columns wide, "Bo" 2.
    recipient_column = header.index("RECIPIENT")
    assert recipient_column == len("김민지 사장님") + 6 + 2  # six wide characters count twice
    by_uuid = {uuid: next(line for line in lines if uuid in line) for uuid in (long_name, short_name)}
    assert by_uuid[short_name].index("uuid:") == recipient_column
    assert by_uuid[long_name].index("uuid:") == recipient_column - 6
    assert by_uuid[short_name].rstrip().endswith("no (refuses messages)")


def add_rows(app: App, keys: list[str]) -> None:
    base = datetime(2026, 12, 3, 3, 0, tzinfo=timezone.utc)
    with app.db.session() as session:
        for minutes, key in enumerate(keys):
            session.add(Delivery(job="orders", slot_key=key, recipient="me", label="me", sender="default",
                                 status="sent", quota_day="2026-12-03", claimed_by="test",
                                 created_at=base + timedelta(minutes=minutes),
                                 updated_at=base + timedelta(minutes=minutes)))


def test_history_shows_slots_as_local_times_and_orders_by_number(make_app, run_cli):
    app = make_app()
    add_rows(app, ["2026-12-03T12:00:00+09:00", "2026-12-03T03:00:00+00:00#force-1a2b3c4d",
                   "run:20261203T014242-5d3ceec7", "order:gid://shopify/Order/820982911946154508"])
    result = run_cli(app, "history")
    assert result.exit_code == 0, result.output
    body = result.stdout
    assert "2026-12-03 12:00 KST (forced)" in body
    assert "send-now 2026-12-03 01:42 KST #5d3c" in body
    assert "order 820982911946154508" in body
    for raw in ("T12:00:00", "run:", "gid://", "#force-"):
        assert raw not in body
    # Scripts keep the raw key.
    assert "run:20261203T014242-5d3ceec7" in run_cli(app, "history", "--json").stdout


def test_history_shows_cancellations_and_refunds_by_order(make_app, run_cli):
    app = make_app()
    remember(app.db, "refund:gid://shopify/Refund/77", {"name": "#1002"})
    add_rows(app, ["cancel:gid://shopify/Order/820982911946154508", "refund:gid://shopify/Refund/77",
                   "refund:gid://shopify/Refund/78"])
    body = run_cli(app, "history").stdout
    assert "cancelled order 820982911946154508" in body
    assert "refund of order #1002" in body and "refund 78" in body and "gid://" not in body


def test_log_lines_carry_the_local_time_with_its_offset(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Seoul")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    time.tzset()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging()
        record = logging.LogRecord("bot", logging.INFO, __file__, 1, "hello", None, None)
        record.created = datetime(2026, 12, 2, 16, 42, 42, 123000, tzinfo=timezone.utc).timestamp()
        record.msecs = 123.0
        line = root.handlers[0].format(record)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        monkeypatch.delenv("TZ")
        time.tzset()
    assert line == "2026-12-03 01:42:42.123+09:00 INFO bot: hello"


def test_send_now_does_not_log_what_it_prints(make_app, logged_in, run_cli):
    port = closed_port()
    app = make_app(SCRAPE_JOB.format(port=port))
    logged_in(app)
    fresh_login(app)
    result = run_cli(app, "send-now")
    assert result.exit_code == 1
    assert f"== menu: FAILED: menu: could not connect to http://127.0.0.1:{port}/menu" in result.stdout
    assert "could not connect" not in result.stderr, result.stderr


def test_unreachable_upstreams_are_named_by_host_and_port():
    port = closed_port()
    no_retry = RetryPolicy(attempts=1, base_delay=0, sleep=lambda _s: None)
    with pytest.raises(KakaoUnreachable) as kakao:
        KakaoHttp(requests.Session(), timeout=5, retry=no_retry).call(
            "GET", f"http://127.0.0.1:{port}/v1/api/talk/friends", errors=api_error, token="t")
    assert f"127.0.0.1:{port}" in str(kakao.value)
    with pytest.raises(ShopifyUnavailable) as shopify:
        ShopifyHttp(requests.Session(), timeout=5, retry=no_retry).call(
            "POST", f"http://127.0.0.1:{port}/admin/api/graphql.json", errors=lambda r: ShopifyError(str(r)))
    assert f"127.0.0.1:{port}" in str(shopify.value)


def test_a_login_that_was_never_stored_is_not_called_a_failed_login(make_app, run_cli):
    app = make_app()
    with pytest.raises(KakaoLoginRequired) as caught:
        app.kakao_tokens.access_token("shop2")
    assert str(caught.value) == ("no Kakao login named 'shop2' is stored: "
                                 "run `python -m bot kakao login --account shop2`")
    result = run_cli(app, "kakao", "friends", "--account", "shop2")
    assert result.exit_code == 1
    assert "no Kakao login named 'shop2' is stored" in result.output and "failed" not in result.output


def test_the_code_hint_keeps_the_account(write_config, secrets, clock, kakao_server):
    body = (f'[database]\nurl = "sqlite:///bot.sqlite3"\n\n[kakao]\n'
            f'redirect_uri = "https://bot.example.com/kakao/callback"\n'
            f'auth_url = "{kakao_server.url}"\napi_url = "{kakao_server.url}"\n')
    app = App(load_config(write_config(body)), secrets, clock=clock)
    try:
        app.db.migrate()
        with pytest.raises(LoginFailed) as named:
            kakao_login(app, "shop2", out=lambda _line: None, timeout=5)
        with pytest.raises(LoginFailed) as default:
            kakao_login(app, "default", out=lambda _line: None, timeout=5)
    finally:
        app.close()
    assert "`kakao login --code CODE --account shop2`" in str(named.value)
    assert "`kakao login --code CODE`" in str(default.value)


def test_send_now_force_without_slot_is_refused(make_app, logged_in, sandbox, run_cli):
    app = make_app(SCRAPE_JOB.format(port=closed_port()))
    logged_in(app)
    fresh_login(app)
    calls = len(sandbox.calls)
    result = run_cli(app, "send-now", "--force")
    assert result.exit_code == 2
    assert "--force needs --slot NAME" in result.output
    assert len(sandbox.calls) == calls
    assert app.deliveries.history() == []


def test_history_of_an_unknown_job_says_so(make_app, run_cli):
    app = make_app(SCRAPE_JOB.format(port=closed_port()))
    result = run_cli(app, "history", "--job", "nope")
    assert result.exit_code == 2
    assert "unknown job 'nope'" in result.output and "menu" in result.output
    # A configured job with nothing sent yet is not unknown.
    assert run_cli(app, "history", "--job", "menu").exit_code == 0


def test_shopify_connect_does_not_log_what_it_prints(make_bot, shopify, run_cli):
    from webhook_helpers import API_KEY, API_SECRET, SHOP

    shopify.register_app(API_KEY, API_SECRET, own_shops=[SHOP])  # the merchant's own app: client credentials
    app = make_bot(connect=False)
    result = run_cli(app, "shopify", "connect", SHOP, env={"SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET})
    assert result.exit_code == 0, result.output
    assert f"Connected {SHOP}" in result.stdout and "ORDERS_CREATE" in result.stdout
    assert "connected with app" not in result.stderr and "subscribed ORDERS_CREATE" not in result.stderr, result.stderr


def test_history_names_an_alerted_order_by_its_name(bot, hooks, worker, shopify, run_cli):
    from webhook_helpers import events, new_order, wait_for

    payload = new_order(shopify)
    assert hooks.send("orders/create", payload).status_code == 200
    worker.start()
    wait_for(lambda: all(event.status == "done" for event in events(bot)) and bot.deliveries.history())
    result = run_cli(bot, "history")
    assert result.exit_code == 0, result.output
    assert f"order {payload['name']}" in result.stdout  # "#1001", the name the merchant knows
    assert "gid://" not in result.stdout
