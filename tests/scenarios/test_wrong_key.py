"""A wrong BOT_SECRET_KEY — a valid Fernet key, just not the one that encrypted the stored tokens —
is found by decrypting: `kakao status` names the login (exit 1), /healthz answers 503 naming it,
the periodic checks raise it, and `run` says so at start (tokens.login_health)."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from bot.app import App
from bot.cli.main import cli
from bot.config.secrets import Secrets
from bot.delivery.problems import ProblemReporter
from bot.service.run import run_service
from bot.web.server import create_app

from webhook_helpers import CLIENT_SECRET, REST_KEY

SHOP = "my-store.myshopify.com"


def secrets_with(key: str) -> Secrets:
    return Secrets({"BOT_SECRET_KEY": key, "KAKAO_REST_API_KEY": REST_KEY, "KAKAO_CLIENT_SECRET": CLIENT_SECRET})


@pytest.fixture
def other_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def stored(make_app, logged_in) -> App:
    """A login (and a legacy Shopify install) stored with the fixture's key."""
    app = make_app()
    logged_in(app, "default")
    app.shopify_tokens.store_legacy("default", SHOP, "shpat_wrongkeytest0123456789", "read_orders")
    return app


def config_path(app: App) -> Path:
    return app.config.path


def kakao_status(app: App, key: str) -> object:
    env = {"BOT_SECRET_KEY": key, "KAKAO_REST_API_KEY": REST_KEY, "KAKAO_CLIENT_SECRET": CLIENT_SECRET,
           "BOT_DATABASE_URL": None, "CREDENTIALS_DIRECTORY": None, "BOT_CONFIG": None}
    return CliRunner().invoke(cli, ["--config", str(config_path(app)), "kakao", "status"], env=env,
                              catch_exceptions=False)


def test_kakao_status_names_a_login_the_key_cannot_decrypt_and_exits_1(stored, other_key, secret_key,
                                                                        keep_root_logging):
    result = kakao_status(stored, other_key)
    assert result.exit_code == 1, result.output
    assert "NEEDS LOGIN" in result.output
    assert "default: NEEDS LOGIN: its stored tokens cannot be decrypted with BOT_SECRET_KEY" in result.output
    # The old key after the new one (rotation): readable again.
    again = kakao_status(stored, f"{other_key},{secret_key}")
    assert again.exit_code == 0, again.output
    assert "NEEDS LOGIN" not in again.output


def test_healthz_is_503_naming_what_the_key_cannot_decrypt(stored, make_app, other_key):
    assert create_app(stored).test_client().get("/healthz").status_code == 200
    wrong = make_app(with_secrets=secrets_with(other_key))  # the same database, another key
    answer = create_app(wrong).test_client().get("/healthz")
    assert answer.status_code == 503 and answer.json["status"] == "needs_attention"
    (login,) = answer.json["kakao"]
    assert login["status"] == "needs_login" and "cannot be decrypted" in login["reason"]
    assert "kakao login --account default" in login["reason"]
    (install,) = answer.json["shopify"]
    assert install["status"] == "undecryptable" and "BOT_SECRET_KEY" in install["reason"]


def test_the_periodic_checks_raise_it_as_needing_a_person(stored, make_app, other_key):
    wrong = make_app(with_secrets=secrets_with(other_key))
    problems = {problem.key: problem for problem in ProblemReporter(wrong).check_all()}
    login = problems["kakao-login:default"]
    assert login.needs_person and "cannot be decrypted" in login.summary
    assert problems[f"shopify:default:{SHOP}"].needs_person


def test_run_says_at_start_which_tokens_the_key_cannot_decrypt(stored, make_app, other_key, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wrong = make_app(f'[server]\nlisten = "127.0.0.1:{port}"\n', with_secrets=secrets_with(other_key))
    stop, ready, outcome = threading.Event(), threading.Event(), {}

    def serve() -> None:
        outcome["code"] = run_service(wrong, ready=ready.set, stop_event=stop)

    caplog.set_level(logging.INFO)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
    finally:
        stop.set()
        thread.join(30)
    assert outcome == {"code": 0}
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert any(line.startswith("Kakao login 'default' needs a person: its stored tokens cannot be decrypted")
               for line in errors), errors
    assert any(line.startswith(f"Shopify install {SHOP} (app default) needs a person") for line in errors), errors
