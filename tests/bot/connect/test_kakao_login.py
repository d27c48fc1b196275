"""`kakao login` end to end against the Kakao stand-in: the one-shot redirect listener, `--code`,
the ways a login fails (forged state, declined consent, reused code, remote redirect_uri), and
the CLI commands `kakao login --code` and `kakao status`.
"""

from __future__ import annotations

import socket
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from click.testing import CliRunner

import bot.connect.kakao_login
from bot.app import App, load_config
from bot.cli.main import cli
from bot.config.secrets import Secrets
from bot.connect.kakao_login import LoginFailed, kakao_login
from bot.kakao.errors import KakaoLoginRequired
from bot.util.retry import RetryPolicy
from tokens.models import KakaoLogin

SEOUL = ZoneInfo("Asia/Seoul")


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def config_text(kakao_url: str, redirect_uri: str, db: str = "login.sqlite3") -> str:
    return textwrap.dedent(f"""\
        [database]
        url = "sqlite:///{db}"

        [kakao]
        redirect_uri = "{redirect_uri}"
        auth_url = "{kakao_url}"
        api_url = "{kakao_url}"
        """)


@pytest.fixture
def login_app(write_config, secrets, clock, kakao_server) -> Iterator[Callable[..., App]]:
    """login_app(redirect_uri=None) → a migrated App whose redirect_uri is a free loopback port."""
    made: list[App] = []

    def make(redirect_uri: str | None = None) -> App:
        redirect_uri = redirect_uri or f"http://127.0.0.1:{free_port()}/kakao/callback"
        path = write_config(config_text(kakao_server.url, redirect_uri), name=f"login{len(made)}.toml")
        app = App(load_config(path), secrets, clock=clock, retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None))
        app.db.migrate()
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def stored_tokens(app: App, account: str) -> tuple[str, str] | None:
    with app.db.session() as session:
        row = session.get(KakaoLogin, account)
        if row is None:
            return None
        return app.vault.decrypt(row.access_token_enc), app.vault.decrypt(row.refresh_token_enc)


def token_exchanges(sandbox: Any) -> list[dict[str, str]]:
    return [form for form in sandbox.token_requests if form.get("grant_type") == "authorization_code"]


class Browser:
    """Plays the user's browser from on_listening; remembers what it saw."""

    def __init__(self) -> None:
        self.pages: list[requests.Response] = []
        self.authorize_urls: list[str] = []
        self._done = threading.Event()

    def follow(self, authorize_url: str) -> None:
        """Open the authorize URL; the stand-in redirects to redirect_uri, the listener answers."""
        self.authorize_urls.append(authorize_url)
        self.visit(authorize_url)

    def visit(self, url: str) -> requests.Response:
        page = requests.get(url, timeout=10)
        self.pages.append(page)
        self._done.set()
        return page

    def last_page(self) -> requests.Response:
        """The page the browser ended on (the browser runs in its own thread)."""
        assert self._done.wait(10), "the browser never got an answer"
        return self.pages[-1]


# -- the one-shot listener ------------------------------------------------------------------------


def test_listener_flow_exchanges_the_code_and_stores_the_tokens(login_app, sandbox):
    app = login_app()
    browser, lines = Browser(), []
    status = kakao_login(app, "default", out=lines.append, timeout=20, on_listening=browser.follow)

    assert status.account == "default" and status.scopes == ("talk_message", "friends")
    assert status.needs_login_reason is None
    # The authorize URL was printed and asked for the right things.
    (url,) = browser.authorize_urls
    assert any(url in line for line in lines)
    query = parse_qs(urlsplit(url).query)
    assert query["redirect_uri"] == [app.config.kakao.redirect_uri]
    assert query["scope"] == ["talk_message,friends"] and query["response_type"] == ["code"]
    assert len(query["state"][0]) >= 32
    # The browser landed on the listener's success page.
    assert browser.last_page().status_code == 200 and "카카오 응답을 받았습니다" in browser.last_page().text
    # Exactly one exchange, with the same redirect_uri; the stored tokens work at Kakao.
    (exchange,) = token_exchanges(sandbox)
    assert exchange["redirect_uri"] == app.config.kakao.redirect_uri
    assert stored_tokens(app, "default") is not None
    assert app.kakao_api("default").token_info()["id"] == sandbox.owner_id


def test_listener_ignores_requests_to_other_paths_and_waits_for_the_redirect(login_app, sandbox):
    app = login_app()
    browser = Browser()

    def browse(url: str) -> None:
        listener = app.config.kakao.redirect_uri.rsplit("/kakao/", 1)[0]
        assert browser.visit(listener + "/favicon.ico").status_code == 404
        browser.follow(url)

    status = kakao_login(app, "default", out=lambda _l: None, timeout=20, on_listening=browse)
    assert status.scopes == ("talk_message", "friends")
    assert len(token_exchanges(sandbox)) == 1


def test_an_idle_browser_connection_does_not_block_the_redirect(login_app, sandbox, monkeypatch):
    """Browsers open speculative connections and never use them; the listener must not wait on one."""
    monkeypatch.setattr(bot.connect.kakao_login, "IDLE_CONNECTION_TIMEOUT", 0.5, raising=False)
    app = login_app()
    port = urlsplit(app.config.kakao.redirect_uri).port
    browser, idle, outcome = Browser(), [], {}

    def browse(url: str) -> None:
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))  # connects, says nothing
        browser.follow(url)

    def login() -> None:
        outcome["status"] = kakao_login(app, "default", out=lambda _l: None, timeout=20, on_listening=browse)

    worker = threading.Thread(target=login, daemon=True)
    worker.start()
    worker.join(timeout=15)
    stuck = worker.is_alive()
    for sock in idle:
        sock.close()  # lets a stuck listener go on, so that this test ends either way
    worker.join(timeout=30)
    assert not stuck, "the listener waited on a connection that never sent a request"
    assert outcome["status"].scopes == ("talk_message", "friends")
    assert "카카오 응답을 받았습니다" in browser.last_page().text


def test_listener_rejects_a_redirect_whose_state_does_not_match(login_app, sandbox):
    app = login_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    browser = Browser()

    def forged(_authorize_url: str) -> None:
        browser.visit(f"{app.config.kakao.redirect_uri}?code={code}&state={'0' * 32}")

    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", out=lambda _l: None, timeout=20, on_listening=forged)
    assert "state does not match" in str(caught.value)
    assert code not in str(caught.value)
    assert token_exchanges(sandbox) == []  # the forged code was never exchanged
    assert stored_tokens(app, "default") is None


def test_listener_rejects_a_non_ascii_state_as_a_mismatch_not_a_crash(login_app, sandbox):
    app = login_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    browser = Browser()

    def forged(_authorize_url: str) -> None:
        browser.visit(f"{app.config.kakao.redirect_uri}?code={code}&state=%ED%95%9C{'0' * 29}")

    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", out=lambda _l: None, timeout=20, on_listening=forged)
    assert "state does not match" in str(caught.value)
    assert token_exchanges(sandbox) == []
    assert stored_tokens(app, "default") is None


def test_listener_rejects_a_redirect_without_state(login_app, sandbox):
    app = login_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    with pytest.raises(LoginFailed, match="state does not match"):
        kakao_login(app, "default", out=lambda _l: None, timeout=20,
                    on_listening=lambda _url: requests.get(f"{app.config.kakao.redirect_uri}?code={code}", timeout=10))
    assert token_exchanges(sandbox) == []


def test_declined_consent_fails_with_a_message_about_consent(login_app, sandbox):
    app = login_app()
    sandbox.deny_consent = True
    browser = Browser()
    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", out=lambda _l: None, timeout=20, on_listening=browser.follow)
    message = str(caught.value)
    assert "access_denied" in message and "consent" in message
    assert "talk_message" in message and "friends" in message
    assert "로그인 실패" in browser.last_page().text
    assert sandbox.count("/oauth/token") == 0
    assert stored_tokens(app, "default") is None


def test_no_redirect_within_the_timeout_fails_and_suggests_code(login_app, sandbox):
    app = login_app()
    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", out=lambda _l: None, timeout=1)
    assert "--code" in str(caught.value)
    assert sandbox.count("/oauth/token") == 0


def test_busy_redirect_port_fails_clearly(login_app):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = login_app(f"http://127.0.0.1:{port}/kakao/callback")
        with pytest.raises(LoginFailed) as caught:
            kakao_login(app, "default", out=lambda _l: None, timeout=1)
    assert f"127.0.0.1:{port}" in str(caught.value) and "--code" in str(caught.value)


def test_listener_on_ipv6_loopback_redirect_uri(login_app, sandbox):
    try:
        port = free_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    app = login_app(f"http://[::1]:{port}/kakao/callback")
    browser = Browser()
    status = kakao_login(app, "v6", out=lambda _l: None, timeout=20, on_listening=browser.follow)
    assert status.scopes == ("talk_message", "friends")
    assert "카카오 응답을 받았습니다" in browser.last_page().text


@pytest.mark.parametrize("redirect_uri", ["https://bot.example.com/kakao/callback",
                                          "http://192.0.2.10:8080/kakao/callback",
                                          "https://localhost:8443/kakao/callback"])
def test_redirect_uri_not_served_here_fails_and_tells_to_use_code(login_app, sandbox, redirect_uri):
    app = login_app(redirect_uri)
    listened: list[str] = []
    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", out=lambda _l: None, timeout=20, on_listening=listened.append)
    message = str(caught.value)
    assert "kakao login --code CODE" in message
    assert f"{sandbox_url(app)}/oauth/authorize?" in message  # the URL to open is in the message
    assert listened == []
    assert sandbox.calls == []


def sandbox_url(app: App) -> str:
    return app.config.kakao.auth_url.rstrip("/")


# -- --code ---------------------------------------------------------------------------------------


def test_pasted_code_is_exchanged_and_stored_under_the_account(login_app, sandbox):
    app = login_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    lines: list[str] = []
    status = kakao_login(app, "staff", code=code, out=lines.append)
    assert status.account == "staff" and status.scopes == ("talk_message", "friends")
    assert [form["code"] for form in token_exchanges(sandbox)] == [code]
    assert stored_tokens(app, "staff") is not None and stored_tokens(app, "default") is None
    assert not any("warning" in line for line in lines)
    assert app.kakao_api("staff").token_info()["id"] == sandbox.owner_id


def test_reused_code_fails_with_the_koe320_explanation_and_keeps_the_login(login_app, sandbox):
    app = login_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri)
    kakao_login(app, "default", code=code, out=lambda _l: None)
    before = stored_tokens(app, "default")
    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", code=code, out=lambda _l: None)
    message = str(caught.value)
    assert "KOE320" in message
    assert "expired or was already used" in message and "kakao login" in message
    assert stored_tokens(app, "default") == before


def test_login_with_a_wrong_client_secret_tells_to_set_kakao_client_secret(login_app, sandbox):
    app = login_app()
    sandbox.client_secret = "the-console-has-another-one"
    with pytest.raises(LoginFailed) as caught:
        kakao_login(app, "default", code=sandbox.issue_code(app.config.kakao.redirect_uri), out=lambda _l: None)
    assert "KOE010" in str(caught.value) and "KAKAO_CLIENT_SECRET" in str(caught.value)


def test_missing_granted_scope_is_warned_about_but_the_login_is_kept(login_app, sandbox):
    app = login_app()
    code = sandbox.issue_code(app.config.kakao.redirect_uri, scope="talk_message")
    lines: list[str] = []
    status = kakao_login(app, "default", code=code, out=lines.append)
    assert status.scopes == ("talk_message",)
    (warning,) = [line for line in lines if line.startswith("warning")]
    assert warning.startswith("warning: Kakao did not grant friends:")  # only the missing one is named
    assert stored_tokens(app, "default") is not None


def test_a_new_login_replaces_one_that_needed_a_person(login_app, sandbox, clock):
    app = login_app()
    kakao_login(app, "default", code=sandbox.issue_code(app.config.kakao.redirect_uri), out=lambda _l: None)
    clock.advance(seconds=sandbox.refresh_ttl + 1)
    with pytest.raises(KakaoLoginRequired):
        app.kakao_tokens.access_token("default")
    assert app.kakao_tokens.status("default").needs_login_reason
    status = kakao_login(app, "default", code=sandbox.issue_code(app.config.kakao.redirect_uri), out=lambda _l: None)
    assert status.needs_login_reason is None
    assert app.kakao_api("default").token_info()["id"] == sandbox.owner_id


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def env(secret_key, sandbox) -> dict[str, str | None]:
    return {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": sandbox.rest_api_key,
            "KAKAO_CLIENT_SECRET": sandbox.client_secret, "BOT_DATABASE_URL": None,
            "CREDENTIALS_DIRECTORY": None, "BOT_CONFIG": None}


@pytest.fixture
def cli_config(write_config, kakao_server) -> Path:
    return write_config(config_text(kakao_server.url, "https://bot.example.com/kakao/callback", db="cli.sqlite3"),
                        name="cli.toml")


def run_cli(config: Path, env: dict[str, str | None], *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env, catch_exceptions=False)


def cli_app(config: Path, env: dict[str, str | None]) -> App:
    """An App on the CLI's database, with the real clock (as the CLI has)."""
    return App(load_config(config), Secrets({k: v for k, v in env.items() if v}),
               retry=RetryPolicy(attempts=1, sleep=lambda _s: None))


def test_cli_login_with_code_stores_the_login(cli_config, env, sandbox, keep_root_logging):
    code = sandbox.issue_code("https://bot.example.com/kakao/callback")
    result = run_cli(cli_config, env, "kakao", "login", "--code", code, "--account", "shop")
    assert result.exit_code == 0, result.output
    assert "Logged in as 'shop'" in result.output and "talk_message friends" in result.output
    app = cli_app(cli_config, env)
    try:
        access, refresh = stored_tokens(app, "shop")
        assert access not in result.output and refresh not in result.output and code not in result.output
    finally:
        app.close()


def test_cli_login_with_a_reused_code_exits_1_with_the_reason(cli_config, env, sandbox, keep_root_logging):
    code = sandbox.issue_code("https://bot.example.com/kakao/callback")
    assert run_cli(cli_config, env, "kakao", "login", "--code", code).exit_code == 0
    again = run_cli(cli_config, env, "kakao", "login", "--code", code)
    assert again.exit_code == 1
    assert "KOE320" in again.output


def test_cli_status_shows_expiry_and_scopes_but_no_token_values(cli_config, env, sandbox, keep_root_logging):
    code = sandbox.issue_code("https://bot.example.com/kakao/callback")
    assert run_cli(cli_config, env, "kakao", "login", "--code", code).exit_code == 0
    result = run_cli(cli_config, env, "kakao", "status")
    assert result.exit_code == 0, result.output

    app = cli_app(cli_config, env)
    try:
        status = app.kakao_tokens.status("default")
        access, refresh = stored_tokens(app, "default")
        with app.db.session() as session:
            row = session.get(KakaoLogin, "default")
            ciphertexts = (row.access_token_enc, row.refresh_token_enc)
    finally:
        app.close()
    # Stored with the CLI's real clock: about Kakao's lifetimes from now.
    now = datetime.now(timezone.utc)
    assert abs(status.access_expires_at - (now + timedelta(seconds=sandbox.access_ttl))) < timedelta(minutes=5)
    assert abs(status.refresh_expires_at - (now + timedelta(seconds=sandbox.refresh_ttl))) < timedelta(minutes=5)

    out = result.output
    # An aligned table (bot.cli.main kakao status): ACCOUNT STATUS ACCESS… REFRESH… SCOPES.
    header, row = out.splitlines()
    assert header.split("  ")[:2] == ["ACCOUNT", "STATUS"]
    assert "ACCESS TOKEN EXPIRES" in header and "REFRESH TOKEN EXPIRES" in header
    assert row.split()[:2] == ["default", "ok"]
    assert status.access_expires_at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M") in row
    assert status.refresh_expires_at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M") in row
    assert row.endswith("talk_message friends")
    for secret in (access, refresh, *ciphertexts):
        assert secret not in out


def test_cli_status_exits_1_when_a_login_needs_a_person(cli_config, env, sandbox, keep_root_logging):
    code = sandbox.issue_code("https://bot.example.com/kakao/callback")
    assert run_cli(cli_config, env, "kakao", "login", "--code", code, "--account", "shop").exit_code == 0
    app = cli_app(cli_config, env)
    try:
        access, _ = stored_tokens(app, "shop")
        sandbox.revoke_refresh_tokens()
        with pytest.raises(KakaoLoginRequired, match="kakao login --account shop"):
            app.kakao_tokens.renew("shop", rejected=access)  # Kakao refused the token; the refresh is dead
    finally:
        app.close()

    result = run_cli(cli_config, env, "kakao", "status")
    assert result.exit_code == 1
    assert "shop: NEEDS LOGIN" in result.output
    assert "kakao login --account shop" in result.output
    assert access not in result.output


def test_cli_status_without_any_login_exits_1(cli_config, env, keep_root_logging):
    result = run_cli(cli_config, env, "kakao", "status")
    assert result.exit_code == 1
    assert "kakao login" in result.output


def test_cli_without_secret_key_is_a_usage_error_naming_the_variable(cli_config, env, sandbox, keep_root_logging):
    code = sandbox.issue_code("https://bot.example.com/kakao/callback")
    result = run_cli(cli_config, {**env, "BOT_SECRET_KEY": None}, "kakao", "login", "--code", code)
    assert result.exit_code == 2
    assert "BOT_SECRET_KEY" in result.output
    assert sandbox.count("/oauth/token") == 0  # nothing exchanged that could not be stored
