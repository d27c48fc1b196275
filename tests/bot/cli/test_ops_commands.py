"""Operations commands: `history` and `kakao status` as aligned tables on a terminal and as JSON
for scripts (`--json`), never with a token value; `shopify shops --json` still parses."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.app import App
from bot.cli.main import cli
from bot.store.models import Delivery
from tokens.models import KakaoLogin, ShopifyInstall

SHOP = "my-store.myshopify.com"
LEGACY_TOKEN = "shpat_opscommands0123456789"


@pytest.fixture
def run_cli(secrets) -> Any:  # noqa: ANN001
    env = {name: secrets.get(name) for name in ("BOT_SECRET_KEY", "KAKAO_REST_API_KEY", "KAKAO_CLIENT_SECRET")}
    # Nothing from the developer's own environment may redirect these runs.
    env.update({"BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None})

    def run(app: App, *args: str) -> Result:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            return CliRunner().invoke(cli, ["--config", str(app.config.path), *args], env=env,
                                      catch_exceptions=False)
        finally:  # the CLI installs its own stderr handler: put pytest's back
            root.handlers[:] = handlers
            root.setLevel(level)

    return run


@pytest.fixture
def app(make_app, logged_in) -> App:  # noqa: ANN001
    app = make_app()
    logged_in(app, "default")
    # The CLI runs on the real clock: make the login's expiry instants relative to it.
    set_login(app, "default", refresh_days=40)
    return app


def set_login(app: App, account: str, *, refresh_days: float, reason: str | None = None) -> None:
    now = datetime.now(timezone.utc)
    with app.db.session() as session:
        row = session.get(KakaoLogin, account)
        row.access_expires_at = now + timedelta(hours=5)
        row.refresh_expires_at = now + timedelta(days=refresh_days)
        row.needs_login_reason = reason


def stored_secrets(app: App) -> list[str]:
    """Every token value and ciphertext in the database: none may appear in any output."""
    values: list[str] = []
    with app.db.session() as session:
        for login in session.query(KakaoLogin):
            values += [login.access_token_enc, login.refresh_token_enc,
                       app.vault.decrypt(login.access_token_enc), app.vault.decrypt(login.refresh_token_enc)]
        for install in session.query(ShopifyInstall):
            values += [install.access_token_enc, app.vault.decrypt(install.access_token_enc)]
    return values


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def column_starts(header: str, names: list[str]) -> list[int]:
    """Display columns at which the header's `names` start: every row's cells start there too."""
    return [display_width(header[:header.index(name)]) for name in names]


def cell_at(line: str, offset: int) -> str:
    """The cell of `line` that starts at display column `offset`."""
    width = 0
    for index, ch in enumerate(line):
        if width == offset:
            return re.split(r"\s{2,}", line[index:])[0]
        width += display_width(ch)
    raise AssertionError(f"no cell starts at column {offset} of {line!r}")


def add_deliveries(app: App) -> None:
    base = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)  # 12:00 in Seoul
    rows = [
        ("menu", "2026-11-22T12:00:00+09:00", "me", "me", "sent", None, None, False, 0),
        ("menu", "2026-11-22T12:00:00+09:00", "uuid:uuid-friend-01", "친구01", "sent", None, None, False, 1),
        ("menu", "2026-11-22T12:00:00+09:00", "friend:없는친구", "없는친구", "skipped", None,
         "no friend with this nickname", False, 2),
        ("orders", "2026-11-22T08:00:00+09:00", "uuid:uuid-friend-02", "홍길동", "failed", -530,
         "the receiver does not allow messages", True, 3),
    ]
    with app.db.session() as session:
        for job, slot, recipient, label, status, code, reason, late, minutes in rows:
            session.add(Delivery(job=job, slot_key=slot, recipient=recipient, label=label, sender="default",
                                 status=status, code=code, reason=reason, late=late, quota_day="2026-11-22",
                                 claimed_by="test", created_at=base + timedelta(minutes=minutes),
                                 updated_at=base + timedelta(minutes=minutes)))


# -- history ----------------------------------------------------------------------------------------


def test_history_is_an_aligned_table_newest_first(app, run_cli):
    add_deliveries(app)
    result = run_cli(app, "history")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    names = ["TIME", "JOB", "SLOT", "RECIPIENT", "STATUS", "CODE/REASON"]
    assert header.split() == names
    starts = column_starts(header, names)
    table = [[cell_at(line, start) for start in starts[:5]] for line in lines]  # Korean labels included
    assert table == [
        ["2026-11-22 12:03 KST", "orders", "2026-11-22 08:00 KST", "홍길동", "failed (late)"],
        ["2026-11-22 12:02 KST", "menu", "2026-11-22 12:00 KST", "없는친구", "skipped"],
        ["2026-11-22 12:01 KST", "menu", "2026-11-22 12:00 KST", "친구01", "sent"],
        ["2026-11-22 12:00 KST", "menu", "2026-11-22 12:00 KST", "me", "sent"],
    ]
    assert lines[0].endswith("[-530] the receiver does not allow messages")
    assert lines[1].endswith("no friend with this nickname")
    for secret in stored_secrets(app):
        assert secret not in result.output


def test_history_json_parses_and_filters(app, run_cli):
    add_deliveries(app)
    result = run_cli(app, "history", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [row["label"] for row in rows] == ["홍길동", "없는친구", "친구01", "me"]
    failed = rows[0]
    assert failed == {"time": "2026-11-22T03:03:00+00:00", "updated_at": "2026-11-22T03:03:00+00:00",
                      "job": "orders", "slot": "2026-11-22T08:00:00+09:00", "recipient": "uuid:uuid-friend-02",
                      "label": "홍길동", "sender": "default", "status": "failed", "late": True, "code": -530,
                      "reason": "the receiver does not allow messages"}
    only_menu = json.loads(run_cli(app, "history", "--json", "--job", "menu", "--limit", "2").stdout)
    assert [(row["job"], row["label"]) for row in only_menu] == [("menu", "없는친구"), ("menu", "친구01")]
    for secret in stored_secrets(app):
        assert secret not in result.output


def test_history_json_when_empty_is_an_empty_list(app, run_cli):
    result = run_cli(app, "history", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "No deliveries yet." in run_cli(app, "history").output


# -- kakao status -----------------------------------------------------------------------------------


def test_kakao_status_is_a_table_with_what_to_do_under_it(app, logged_in, run_cli):
    logged_in(app, "shop")
    logged_in(app, "staff")
    set_login(app, "shop", refresh_days=3)
    set_login(app, "staff", refresh_days=30, reason="KOE322: expired_or_invalid_refresh_token")
    result = run_cli(app, "kakao", "status")
    assert result.exit_code == 1  # a login needs a person
    header, *lines = result.stdout.splitlines()
    names = ["ACCOUNT", "STATUS", "ACCESS TOKEN EXPIRES", "REFRESH TOKEN EXPIRES", "SCOPES"]
    starts = column_starts(header, names)
    rows = [[cell_at(line, start) for start in starts] for line in lines[:3]]
    assert [row[:2] for row in rows] == [["default", "ok"], ["shop", "EXPIRES SOON"], ["staff", "NEEDS LOGIN"]]
    assert all(row[4] == "talk_message friends" for row in rows)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d KST", row[2]) for row in rows)
    details = lines[3:]
    assert any(line.startswith("  shop: EXPIRES SOON: the refresh token expires at ")
               and "kakao login --account shop` before then" in line for line in details)
    assert any(line.startswith("  staff: NEEDS LOGIN: KOE322") and "kakao login --account staff" in line
               for line in details)
    for secret in stored_secrets(app):
        assert secret not in result.output


def test_kakao_status_json_parses_and_holds_no_tokens(app, logged_in, run_cli):
    logged_in(app, "staff")
    set_login(app, "staff", refresh_days=30, reason="KOE322: expired_or_invalid_refresh_token")
    result = run_cli(app, "kakao", "status", "--json")
    assert result.exit_code == 1
    default, staff = json.loads(result.stdout)
    assert default["account"] == "default" and default["status"] == "ok"
    assert default["reason"] is None and default["action"] is None
    assert default["scopes"] == ["talk_message", "friends"]
    assert datetime.fromisoformat(default["refresh_expires_at"]) > datetime.now(timezone.utc) + timedelta(days=39)
    assert staff["status"] == "needs_login" and staff["reason"].startswith("KOE322")
    assert "kakao login --account staff" in staff["action"]
    assert set(default) == {"account", "status", "reason", "action", "access_expires_at", "refresh_expires_at",
                            "refreshed_at", "scopes"}
    for secret in stored_secrets(app):
        assert secret not in result.output


def test_kakao_status_exits_0_when_every_login_works(app, run_cli):
    result = run_cli(app, "kakao", "status", "--json")
    assert result.exit_code == 0
    (login,) = json.loads(result.stdout)
    assert login["status"] == "ok"
    assert run_cli(app, "kakao", "status").exit_code == 0


def test_kakao_status_json_without_logins_is_an_empty_list_and_exit_1(make_app, run_cli):
    app = make_app()
    result = run_cli(app, "kakao", "status", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == []
    assert "kakao login" in result.stderr


# -- shopify shops --json still works -------------------------------------------------------------------


def test_shopify_shops_json_still_parses_and_holds_no_tokens(app, run_cli):
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    result = run_cli(app, "shopify", "shops", "--json")
    assert result.exit_code == 0
    (shop,) = json.loads(result.stdout)
    assert shop["shop"] == SHOP and shop["status"] == "active"
    for secret in stored_secrets(app):
        assert secret not in result.output
