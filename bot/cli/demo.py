"""`demo`: the whole pipeline once, against local stand-ins of Kakao, Shopify and a web page.

Kakao login (authorize → redirect → code exchange) → access token minted from the stored
refresh token → a page scraped → one message to "me" and two friends → a Shopify shop connected,
a digest compared with yesterday and last week, with its chart (bot.cli.demo_shopify), one of each
alert kind (bot.cli.demo_alerts) → what each received. Everything runs on 127.0.0.1 in a temporary
folder; no account is needed. Without --keep that folder is removed except the chart's PNG, whose
path is printed.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import requests
from cryptography.fernet import Fernet

from bot.app import App, load_config
from bot.cli import demo_shopify
from bot.cli.preview import preview
from bot.config.secrets import Secrets
from bot.connect.kakao_login import kakao_login
from bot.delivery.runner import Runner
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import serve
from bot.sandbox.web import DEMO_MENU_HTML, create_web_app
from bot.store.db import utcnow

FRIENDS = ("김민지", "이준호")

CONFIG = """\
timezone = "Asia/Seoul"

[database]
url = "sqlite:///bot.sqlite3"

[kakao]
redirect_uri = "http://127.0.0.1:{callback_port}/kakao/callback"
auth_url = "{kakao_url}"
api_url = "{kakao_url}"
web_domain = "{web_url}"

[[jobs]]
name = "menu"
kind = "scrape"
url = "{web_url}/menu"
select = "ul.menu > li"
at = ["noon"]
to = ["me", "friend:{friend_1}", "friend:{friend_2}"]
"""


def run_demo(out: Callable[[str], None] = print, keep: bool = False, shift: timedelta = timedelta(0)) -> bool:
    """The demo; `shift` moves the bot's and the Shopify stand-in's clocks (docs/evening-digest.png was drawn
    with the evening's digest: `run_demo(keep=True, shift=<to 21:00 in Seoul>)`)."""
    sandbox = KakaoSandbox()
    uuids = {sandbox.add_friend(nickname): nickname for nickname in FRIENDS}
    standin = demo_shopify.shopify_standin(shift)
    folder = Path(tempfile.mkdtemp(prefix="kakao-shopify-bot-demo-"))
    bot_port = _free_port()  # the bot's own server, started for the webhook step
    with serve(sandbox.wsgi_app()) as kakao_server, serve(create_web_app({"/menu": DEMO_MENU_HTML})) as web, \
            serve(standin.wsgi_app()) as shopify_server:
        config_file = folder / "config.toml"
        config_file.write_text(CONFIG.format(callback_port=_free_port(), kakao_url=kakao_server.url,
                                             web_url=web.url, friend_1=FRIENDS[0], friend_2=FRIENDS[1])
                               + demo_shopify.config_section(f"http://127.0.0.1:{bot_port}", shopify_server.url),
                               encoding="utf-8")
        secrets = Secrets({"BOT_SECRET_KEY": Fernet.generate_key().decode(),
                           "KAKAO_REST_API_KEY": sandbox.rest_api_key,
                           "KAKAO_CLIENT_SECRET": sandbox.client_secret or "", **demo_shopify.secrets()})
        app = App(load_config(config_file), secrets, clock=lambda: utcnow() + shift)
        try:
            with _narrated():
                ok = _pipeline(app, sandbox, uuids, out)
                ok = demo_shopify.shopify_half(app, standin, sandbox, bot_port, 4, out) and ok
                _received(sandbox, uuids, out, 8)
        finally:
            app.close()
    chart = demo_shopify.save_chart(sandbox, folder)
    if keep:
        out(f"\n(demo files kept in {folder}; the chart sent in the digest: {chart})")
    else:
        for path in folder.iterdir():
            if path != chart:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if chart is None:
            folder.rmdir()
        else:
            out(f"\n(the chart sent in the digest, kept: {chart}; the demo's other files were removed)")
    return ok and chart is not None


def _pipeline(app: App, sandbox: KakaoSandbox, uuids: dict[str, str], out: Callable[[str], None]) -> bool:
    app.db.migrate()
    out("1. Kakao login (the stand-in consents at once)")
    status = kakao_login(app, "default", out=lambda line: out("   " + line.strip()) if line.strip() else None,
                         timeout=30, on_listening=lambda url: requests.get(url, timeout=10))
    out(f"   stored login 'default': scopes {' '.join(status.scopes)}, encrypted in {app.db.engine.url.database}")
    sandbox.expire_access_tokens()
    app.kakao_tokens.access_token("default")
    minted = app.kakao_tokens.status("default")
    out(f"2. access token expired → minted a new one from the refresh token "
        f"(valid until {minted.access_expires_at.astimezone(app.config.timezone):%H:%M})")
    job = app.config.job("menu")
    out(f"3. job 'menu': scrape {job.params.url} and send to {', '.join(map(str, job.to))}")
    report = Runner(app).run(job, "demo")
    if report.fanout is None:
        out(f"   the job did not run: {report.error}")
        return False
    for result in report.fanout.results:
        out(f"   {result.label}: {result.status} {result.reason}".rstrip())
    return all(result.status == "sent" for result in report.fanout.results)


def _received(sandbox: KakaoSandbox, uuids: dict[str, str], out: Callable[[str], None], step: int) -> None:
    out(f"{step}. what each recipient received in KakaoTalk:")
    for key, label in [("me", "me (사장님)")] + [(uuid, nickname) for uuid, nickname in uuids.items()]:
        for template in sandbox.received(key):
            out(f"\n── {label}")
            out("   " + preview(template).replace("\n", "\n   "))


@contextmanager
def _narrated() -> Iterator[None]:
    """The demo tells each step itself: the bot's INFO lines would only repeat them (warnings still show)."""
    root = logging.getLogger()
    level = root.level
    if level == logging.INFO:  # not under --verbose
        root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
