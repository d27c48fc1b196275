"""`kakao login`: the authorization code flow from a terminal.

Prints the authorize URL, then waits for Kakao's redirect on `[kakao].redirect_uri` with a
one-shot listener on this machine (or takes a pasted `--code`), checks `state` in constant
time, exchanges the code and stores the tokens, encrypted, under an account name.

When `python -m bot run` already serves the redirect port (redirect_uri path `/kakao/callback`),
the login goes through it instead: a single-use state is stored in `oauth_states` with purpose
`kakao:<account>`, the server's /kakao/callback checks it, exchanges the code and stores the
tokens, and this side polls the database until the login has been stored.
"""

from __future__ import annotations

import errno
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import requests

from bot.app import App
from bot.connect import oauth_states
from bot.kakao.errors import KakaoOAuthError
from bot.util.compare import constant_time_equal
from tokens.kakao import LoginStatus

KAKAO_STATE_PREFIX = "kakao:"  # oauth_states purpose of a Kakao login: "kakao:<account>"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
IDLE_CONNECTION_TIMEOUT = 5.0  # seconds a connection to the listener may stay silent
SERVER_CALLBACK_PATH = "/kakao/callback"  # the route of `run` that completes a login
SERVER_POLL_INTERVAL = 0.5  # seconds between looks at the database while the server completes a login
SERVER_PROBE_TIMEOUT = 2.0  # seconds to wait for the /healthz of whatever holds the redirect port
SERVER_SETTLE_EXTRA = 5.0  # seconds, beyond the code exchange's own timeout, before a spent state means "failed"


class LoginFailed(Exception):
    pass


class _PortBusy(LoginFailed):
    """The redirect port is in use (maybe by `run`, which can complete the login)."""

    def __init__(self, message: str, host: str, port: int, path: str):
        super().__init__(message)
        self.host, self.port, self.path = host, port, path


@dataclass
class Redirect:
    code: str | None
    state: str | None
    error: str | None
    error_description: str | None


def kakao_login(app: App, account: str, *, code: str | None = None, out: Callable[[str], None] = print,
                timeout: float = 300.0, on_listening: Callable[[str], None] | None = None) -> LoginStatus:
    """Log in and store the tokens under `account`; `on_listening(url)` is told the authorize URL."""
    # Everything needed to store the tokens first (BOT_SECRET_KEY above all): a code is single
    # use, and tokens Kakao issued that cannot be kept would be lost (and count against the
    # issuance limit).
    tokens = app.kakao_tokens
    if code is None:
        state = secrets.token_hex(16)
        url = app.kakao_auth.authorize_url(state)
        try:
            redirect = _wait_for_redirect(app.config.kakao.redirect_uri, url, out, timeout, on_listening,
                                          code_hint(account))
        except _PortBusy as busy:
            if busy.path != SERVER_CALLBACK_PATH or not _bot_server_at(busy.host, busy.port):
                raise
            return _login_via_server(app, account, out, timeout, on_listening)
        if redirect.error:
            raise LoginFailed(_denied_message(redirect))
        if not redirect.state or not constant_time_equal(state, redirect.state):
            raise LoginFailed("the redirect's state does not match this login: ignored (possible forgery); try again")
        code = redirect.code
    if not code:
        raise LoginFailed("Kakao's redirect carried no code")
    try:
        answer = app.kakao_auth.exchange_code(code)
    except KakaoOAuthError as exc:
        raise LoginFailed(str(exc)) from None
    granted = set((answer.scope or "").split())
    status = tokens.store_login(account, answer)
    missing = {"talk_message", "friends"} - granted if answer.scope else set()
    if missing:
        out(f"warning: Kakao did not grant {', '.join(sorted(missing))}: enable those consent items "
            "([카카오 로그인] > [동의항목]) and log in again to send to friends")
    return status


def _denied_message(redirect: Redirect) -> str:
    if redirect.error == "access_denied":
        return ("consent was declined at Kakao (access_denied). Log in again and agree to "
                "'카카오톡 메시지 전송' (talk_message) and '친구 목록' (friends)")
    return f"Kakao answered {redirect.error}: {redirect.error_description or ''}".strip()


def code_hint(account: str) -> str:
    """The command that finishes this login with a pasted code: it keeps the account the login is for."""
    return "`kakao login --code CODE" + (f" --account {account}`" if account != "default" else "`")


def _wait_for_redirect(redirect_uri: str, authorize_url: str, out: Callable[[str], None], timeout: float,
                       on_listening: Callable[[str], None] | None, hint: str) -> Redirect:
    parts = urlsplit(redirect_uri)
    if parts.hostname not in LOOPBACK_HOSTS or parts.scheme != "http":
        # An https:// loopback address cannot be served by this plain-HTTP listener either.
        raise LoginFailed(f"redirect_uri {redirect_uri} is not on this machine: open the URL below, then run "
                          f"{hint} with the code from the address bar.\n{authorize_url}")
    port = parts.port or 80
    holder: list[Redirect] = []
    # The browser connects to the redirect_uri's own address: [::1] needs an IPv6 listener.
    host = "::1" if parts.hostname == "::1" else "127.0.0.1"
    server = _one_shot_server(host, port, parts.path or "/", holder, hint)
    out("Open this address in a browser and log in with Kakao:\n")
    out(f"  {authorize_url}\n")
    out(f"Waiting for Kakao to redirect to {redirect_uri} …")
    if on_listening:
        threading.Thread(target=on_listening, args=(authorize_url,), daemon=True).start()
    server.timeout = 1.0
    deadline = timeout
    try:
        while not holder and deadline > 0:
            server.handle_request()
            deadline -= server.timeout
    finally:
        server.server_close()
    if not holder:
        raise LoginFailed(f"no redirect arrived within {int(timeout)} s; run {hint} instead")
    return holder[0]


def _one_shot_server(host: str, port: int, path: str, holder: list[Redirect], hint: str) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        # Browsers open speculative connections they never use; without a timeout the one-shot
        # loop would block on such a socket forever and never see the real redirect.
        timeout = IDLE_CONNECTION_TIMEOUT

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != path:
                self.send_error(404)
                return
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            holder.append(Redirect(query.get("code"), query.get("state"), query.get("error"),
                                   query.get("error_description")))
            ok = "code" in query and "error" not in query
            # Neutral on purpose: whether the state matches is decided (and told) in the terminal.
            body = ("<h1>카카오 응답을 받았습니다</h1><p>Return to the terminal; you can close this tab.</p>" if ok
                    else "<h1>로그인 실패</h1><p>See the terminal.</p>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # the query holds the code: never log it
            pass

    class Server(HTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        return Server((host, port), Handler)
    except OSError as exc:
        message = (f"cannot listen on {where} for the redirect ({exc.strerror}); "
                   f"stop what uses that port, or use {hint}")
        if exc.errno == errno.EADDRINUSE:
            raise _PortBusy(message, host, port, path) from None
        raise LoginFailed(message) from None


# -- through the running server ---------------------------------------------------------------------


def _bot_server_at(host: str, port: int) -> bool:
    """True if what holds host:port answers /healthz like `python -m bot run` does."""
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        answer = requests.get(f"http://{netloc}/healthz", timeout=SERVER_PROBE_TIMEOUT)
        body = answer.json()
    except (requests.RequestException, ValueError):
        return False
    return isinstance(body, dict) and "kakao" in body and "status" in body


def _login_via_server(app: App, account: str, out: Callable[[str], None], timeout: float,
                      on_listening: Callable[[str], None] | None) -> LoginStatus:
    """The running server completes the login; wait (bounded) until it has stored it."""
    redirect_uri = app.config.kakao.redirect_uri
    state = oauth_states.issue(app.db, f"{KAKAO_STATE_PREFIX}{account}", account,
                               ttl=timedelta(seconds=max(timeout, 60)), clock=app.clock)
    url = app.kakao_auth.authorize_url(state)
    out(f"{redirect_uri} is served by the running bot (`python -m bot run`): it will receive Kakao's "
        "redirect, check it and store the login; this command waits until it has (the server must use "
        "the same database).\n")
    out("Open this address in a browser and log in with Kakao:\n")
    out(f"  {url}\n")
    out(f"Waiting for the login {account!r} to be stored …")
    if on_listening:
        threading.Thread(target=on_listening, args=(url,), daemon=True).start()
    # After the server spends the state it still exchanges the code (retries included) before storing.
    settle = 2 * app.config.kakao.timeout + SERVER_SETTLE_EXTRA
    deadline = time.monotonic() + timeout
    used_seen: float | None = None
    while True:
        info = oauth_states.lookup(app.db, state)
        if info is not None and info.used_at is not None:
            status = app.kakao_tokens.status(account)
            if _stored_since(status, info.used_at):
                _warn_missing_scopes(status.scopes, out)
                return status
            used_seen = used_seen if used_seen is not None else time.monotonic()
            if time.monotonic() - used_seen > settle:
                raise LoginFailed("the running server received Kakao's redirect but stored no login (consent "
                                  "declined, or the code exchange failed): see the browser page and the server's "
                                  "log, then try again")
        if time.monotonic() >= deadline and used_seen is None:
            raise LoginFailed(f"no redirect reached the running server within {int(timeout)} s; "
                              f"run {code_hint(account)} instead")
        time.sleep(SERVER_POLL_INTERVAL)


def _stored_since(status: LoginStatus | None, used_at: datetime) -> bool:
    return (status is not None and status.needs_login_reason is None and status.refreshed_at is not None
            and status.refreshed_at >= used_at)


def _warn_missing_scopes(scopes: tuple[str, ...], out: Callable[[str], None]) -> None:
    missing = {"talk_message", "friends"} - set(scopes)
    if scopes and missing:
        out(f"warning: Kakao did not grant {', '.join(sorted(missing))}: enable those consent items "
            "([카카오 로그인] > [동의항목]) and log in again to send to friends")
