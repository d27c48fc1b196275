"""The values of the secrets the process holds never reach a log, the CLI's output or the database,
whatever text an upstream wraps them in (bot.util.redaction; the Kakao token client masks what it sent)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from bot.app import App, load_config
from bot.cli.main import cli
from bot.config.secrets import Secrets
from bot.kakao.errors import KakaoLoginRequired
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.service.scheduler import BotScheduler
from bot.util.redaction import MASK, MAX_VALUES, Redactor, scrub_statements
from bot.web.health import ServiceState, attach_service_state
from bot.web.server import create_app
from tokens.models import KakaoLogin

from webhook_helpers import CLIENT_SECRET, REST_KEY

MENU_HTML = '<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul>'
REDIRECT = "http://127.0.0.1:8080/kakao/callback"


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


@pytest.fixture
def config(write_config, kakao_server, web) -> Path:
    job = f"""
[[jobs]]
name = "menu"
kind = "scrape"
url = "{web.url}/menu"
select = "ul.menu > li"
at = ["noon"]
to = ["me"]
"""
    return write_config(f"""
[database]
url = "sqlite:///bot.sqlite3"

[kakao]
redirect_uri = "{REDIRECT}"
auth_url = "{kakao_server.url}"
api_url = "{kakao_server.url}"
web_domain = "https://bot.example.com"
""" + job)


@pytest.fixture
def env(secret_key: str) -> dict[str, str | None]:
    return {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY, "KAKAO_CLIENT_SECRET": CLIENT_SECRET,
            "BOT_DATABASE_URL": None, "CREDENTIALS_DIRECTORY": None, "BOT_CONFIG": None}


def run_cli(config: Path, env: dict[str, str | None], *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env, catch_exceptions=False)


def stored_tokens(config: Path, env: dict[str, str | None]) -> tuple[str, str]:
    app = App(load_config(config), Secrets({k: v for k, v in env.items() if v}))
    try:
        with app.db.session() as session:
            row = session.get(KakaoLogin, "default")
            return app.vault.decrypt(row.access_token_enc), app.vault.decrypt(row.refresh_token_enc)
    finally:
        app.close()


def database_bytes(config: Path) -> bytes:
    files = sorted(config.parent.glob("bot.sqlite3*"))
    assert files, "no database file"
    return b"".join(path.read_bytes() for path in files)


def logged_in_by_cli(config: Path, env: dict[str, str | None], sandbox: Any) -> tuple[str, str]:
    assert run_cli(config, env, "kakao", "login", "--code", sandbox.issue_code(REDIRECT)).exit_code == 0
    return stored_tokens(config, env)


def test_a_token_error_echoing_the_refresh_token_and_client_secret_leaks_them_nowhere(
        config, env, sandbox, keep_root_logging):
    _access, refresh = logged_in_by_cli(config, env, sandbox)
    sandbox.expire_access_tokens()  # the send gets -401: the bot refreshes, and Kakao refuses it
    sandbox.fail_next("/oauth/token", 400, {
        "error": "invalid_grant", "error_code": "KOE322",
        "error_description": f"refresh token {refresh} is not valid for client {CLIENT_SECRET}"})

    sent = run_cli(config, env, "send-now", "menu")
    assert sent.exit_code == 1
    assert "KOE322" in sent.output  # the person still learns what happened
    history = run_cli(config, env, "history", "--json")
    status = run_cli(config, env, "kakao", "status")
    assert status.exit_code == 1 and "KOE322" in status.output
    for secret in (refresh, CLIENT_SECRET):
        for where, text in (("send-now (output and log)", sent.output), ("history --json", history.output),
                            ("kakao status", status.output)):
            assert secret not in text, where
        assert secret.encode() not in database_bytes(config)


def test_the_in_process_log_never_carries_what_the_token_request_sent(make_app, logged_in, sandbox, caplog):
    app = make_app()
    logged_in(app, "default")
    with app.db.session() as session:
        row = session.get(KakaoLogin, "default")
        access, refresh = app.vault.decrypt(row.access_token_enc), app.vault.decrypt(row.refresh_token_enc)
    sandbox.fail_next("/oauth/token", 400, {"error": "invalid_grant", "error_code": "KOE322",
                                            "error_description": f"bad refresh_token:{refresh}"})
    caplog.set_level(logging.INFO)
    with pytest.raises(KakaoLoginRequired) as raised:
        app.kakao_tokens.renew("default", rejected=access)
    assert refresh not in str(raised.value) and MASK in str(raised.value)
    assert refresh not in caplog.text and "KOE322" in caplog.text


def test_any_held_secret_echoed_anywhere_is_masked_in_output_history_and_database(
        config, env, sandbox, secret_key, keep_root_logging):
    access, _refresh = logged_in_by_cli(config, env, sandbox)
    # Not a token-shaped pattern, and not from the token endpoint: only the values themselves can tell.
    sandbox.fail_next("/v2/api/talk/memo/default/send", 400, {
        "code": -2, "msg": f"template rejected; seen {access} {CLIENT_SECRET} {secret_key}"})
    sent = run_cli(config, env, "send-now", "menu")
    assert sent.exit_code == 1 and "template rejected" in sent.output and MASK in sent.output
    history = run_cli(config, env, "history", "--json")
    assert "template rejected" in history.output
    for secret in (access, CLIENT_SECRET, secret_key):
        assert secret not in sent.output and secret not in history.output
        assert secret.encode() not in database_bytes(config)


def test_the_redactor_masks_longest_first_ignores_short_values_and_stays_bounded():
    redactor = Redactor()
    redactor.add("abcdefgh", "abcdefgh-and-more", "short", None)
    assert redactor.scrub("x abcdefgh-and-more y abcdefgh short") == f"x {MASK} y {MASK} short"
    for number in range(MAX_VALUES + 10):
        redactor.add(f"token-{number:06d}")
    assert redactor.scrub("token-000000") == "token-000000"  # the oldest were let go
    assert redactor.scrub(f"token-{MAX_VALUES + 9:06d}") == MASK
    assert "token-" not in repr(redactor)


def test_statements_store_secret_values_masked_in_every_parameter_shape_and_other_values_untouched():
    secret = "sk-live-0123456789abcdef"
    redactor = Redactor()
    redactor.add(secret)
    engine = create_engine("sqlite://")
    scrub_statements(engine, redactor)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, number INTEGER)")
        connection.execute(sql("INSERT INTO notes (body, number) VALUES (:body, :number)"),
                           {"body": f"refused: {secret}", "number": 1})  # one row of named values
        connection.execute(sql("INSERT INTO notes (body, number) VALUES (:body, :number)"),  # executemany
                           [{"body": "plain", "number": 2}, {"body": f"[{secret}]", "number": 3}])
        connection.exec_driver_sql("INSERT INTO notes (body, number) VALUES (?, ?)", (f"x{secret}x", 4))  # positional
        connection.exec_driver_sql("INSERT INTO notes (body, number) VALUES (?, ?)", [("plain too", 5)])
        rows = connection.exec_driver_sql("SELECT body, number FROM notes ORDER BY number").all()
    assert [tuple(row) for row in rows] == [(f"refused: {MASK}", 1), ("plain", 2), (f"[{MASK}]", 3),
                                            (f"x{MASK}x", 4), ("plain too", 5)]


def test_healthz_quotes_run_outcomes_without_secret_values(make_app, secret_key):
    app = make_app('[[jobs]]\nname = "menu"\nkind = "scrape"\nurl = "https://example.com/m"\nselect = "li"\n'
                   'at = ["noon"]\nto = ["me"]\n')
    app.kakao_auth  # noqa: B018 - the client secret is read (and learnt) when the token client is built
    scheduler = BotScheduler(app)
    instant = datetime(2026, 11, 22, 3, tzinfo=timezone.utc)
    scheduler.last_runs.crashed("menu", instant, instant, RuntimeError(f"upstream said {CLIENT_SECRET}"))
    flask_app = create_app(app)
    attach_service_state(flask_app, ServiceState(scheduler=scheduler))
    body = flask_app.test_client().get("/healthz").get_data(as_text=True)
    assert "upstream said [redacted]" in body and CLIENT_SECRET not in body
