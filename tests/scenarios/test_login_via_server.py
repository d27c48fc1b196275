"""`kakao login` while `run` serves the redirect port: the login goes through the server's
/kakao/callback (state in oauth_states), and the command waits until the login is stored."""

from __future__ import annotations

import socket
import textwrap
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import bot.connect.kakao_login
from bot.app import App, load_config
from bot.connect import oauth_states
from bot.connect.kakao_login import LoginFailed, kakao_login
from bot.service.run import run_service
from bot.util.retry import RetryPolicy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def apps(write_config, secrets, clock, kakao_server) -> Iterator[Callable[..., tuple[App, App]]]:
    """apps(path) → (server App, CLI App): one config and database, `run` listening on the redirect port."""
    made: list[App] = []

    def make(callback_path: str = "/kakao/callback") -> tuple[App, App]:
        port = free_port()
        path = write_config(textwrap.dedent(f"""\
            [database]
            url = "sqlite:///shared.sqlite3"

            [server]
            listen = "127.0.0.1:{port}"

            [kakao]
            redirect_uri = "http://127.0.0.1:{port}{callback_path}"
            auth_url = "{kakao_server.url}"
            api_url = "{kakao_server.url}"
            timeout = 1
            """), name="shared.toml")
        pair = tuple(App(load_config(path), secrets, clock=clock,
                         retry=RetryPolicy(attempts=2, base_delay=0, sleep=lambda _s: None)) for _ in range(2))
        made.extend(pair)
        return pair  # type: ignore[return-value]

    yield make
    for app in made:
        app.close()


@contextmanager
def running(app: App) -> Iterator[None]:
    stop, ready, outcome = threading.Event(), threading.Event(), {}

    def serve() -> None:
        try:
            outcome["code"] = run_service(app, ready=ready.set, stop_event=stop)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30) and not outcome, outcome
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive() and outcome == {"code": 0}, outcome


class Browser:
    def __init__(self) -> None:
        self.pages: list[requests.Response] = []
        self.urls: list[str] = []
        self.done = threading.Event()

    def follow(self, url: str) -> None:
        self.urls.append(url)
        try:
            self.pages.append(requests.get(url, timeout=20))  # the stand-in redirects to the server
        finally:
            self.done.set()


def token_exchanges(sandbox: Any) -> list[dict[str, str]]:
    return [form for form in sandbox.token_requests if form.get("grant_type") == "authorization_code"]


def test_login_goes_through_the_running_server_and_is_stored(apps, sandbox):
    server_app, cli_app = apps()
    browser, lines = Browser(), []
    with running(server_app):
        status = kakao_login(cli_app, "staff", out=lines.append, timeout=30, on_listening=browser.follow)

    assert status.account == "staff" and status.scopes == ("talk_message", "friends")
    assert status.needs_login_reason is None
    text = "\n".join(lines)
    assert "served by the running bot" in text and "python -m bot run" in text
    (url,) = browser.urls
    assert url in text
    # The state in the URL was issued in oauth_states for this account, and the server spent it.
    state = parse_qs(urlsplit(url).query)["state"][0]
    info = oauth_states.lookup(cli_app.db, state)
    assert info.purpose == "kakao:staff" and info.subject == "staff" and info.used_at is not None
    # The browser ended on the server's page; one exchange, with the configured redirect_uri.
    assert browser.done.wait(10)
    (page,) = browser.pages
    assert page.status_code == 200 and "로그인 완료" in page.text
    (exchange,) = token_exchanges(sandbox)
    assert exchange["redirect_uri"] == cli_app.config.kakao.redirect_uri
    # The stored login works from the command's side too.
    assert cli_app.kakao_api("staff").token_info()["id"] == sandbox.owner_id
    assert cli_app.kakao_tokens.status("default") is None


def test_declined_consent_through_the_server_fails_without_waiting_for_the_timeout(apps, sandbox, monkeypatch):
    monkeypatch.setattr(bot.connect.kakao_login, "SERVER_SETTLE_EXTRA", 0.5)
    server_app, cli_app = apps()
    sandbox.deny_consent = True
    browser = Browser()
    with running(server_app):
        with pytest.raises(LoginFailed) as caught:
            kakao_login(cli_app, "default", out=lambda _l: None, timeout=120, on_listening=browser.follow)
    assert "stored no login" in str(caught.value)
    assert browser.done.wait(10)
    (page,) = browser.pages
    assert page.status_code == 400 and page.json()["error"] == "access_denied"
    assert token_exchanges(sandbox) == [] and cli_app.kakao_tokens.all_status() == []


def test_no_redirect_through_the_server_times_out_suggesting_code(apps, sandbox):
    server_app, cli_app = apps()
    with running(server_app):
        with pytest.raises(LoginFailed) as caught:
            kakao_login(cli_app, "default", out=lambda _l: None, timeout=1)
    assert "--code" in str(caught.value)
    assert token_exchanges(sandbox) == []


def test_a_redirect_path_the_server_does_not_serve_is_not_delegated(apps, sandbox):
    server_app, cli_app = apps("/elsewhere")
    with running(server_app):
        with pytest.raises(LoginFailed) as caught:
            kakao_login(cli_app, "default", out=lambda _l: None, timeout=5, on_listening=lambda _u: None)
    assert "cannot listen" in str(caught.value) and "--code" in str(caught.value)
