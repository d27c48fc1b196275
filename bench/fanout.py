"""Benchmark: one message to 100 friends (a sender's daily maximum) through the Kakao stand-in.

Every Kakao call costs LATENCY seconds at the stand-in. The floor for this work is one
friends-list page plus ceil(100 / 5) = 20 send calls, made one after another; the figures
printed are the calls actually made and the wall time, next to that floor.

    python bench/fanout.py [--friends 100] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.delivery.runner import Runner
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import serve
from bot.sandbox.web import DEMO_MENU_HTML, create_web_app

SEND_PATH = "/v1/api/talk/friends/message/default/send"
FRIENDS_PATH = "/v1/api/talk/friends"

CONFIG = """\
[database]
url = "sqlite:///bench.sqlite3"

[delivery]
quota_reserve = 0   # the whole daily quota goes to friends in this benchmark

[kakao]
redirect_uri = "http://127.0.0.1:8080/kakao/callback"
auth_url = "{kakao}"
api_url = "{kakao}"
web_domain = "{web}"

[[jobs]]
name = "menu"
kind = "scrape"
url = "{web}/menu"
select = "ul.menu > li"
at = ["noon"]
to = [{to}]
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--friends", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()

    sandbox = KakaoSandbox(latency=args.latency)
    nicknames = [f"직원{i:03d}" for i in range(args.friends)]
    for nickname in nicknames:
        sandbox.add_friend(nickname)
    folder = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    try:
        with serve(sandbox.wsgi_app()) as kakao, serve(create_web_app({"/menu": DEMO_MENU_HTML})) as web:
            to = ", ".join(f'"friend:{nickname}"' for nickname in nicknames)
            config_path = folder / "config.toml"
            config_path.write_text(CONFIG.format(kakao=kakao.url, web=web.url, to=to), encoding="utf-8")
            secrets = Secrets({"BOT_SECRET_KEY": Fernet.generate_key().decode(),
                               "KAKAO_REST_API_KEY": sandbox.rest_api_key,
                               "KAKAO_CLIENT_SECRET": sandbox.client_secret or ""})
            app = App(load_config(config_path), secrets)
            app.db.migrate()
            code = sandbox.issue_code(app.config.kakao.redirect_uri)
            app.kakao_tokens.store_login("default", app.kakao_auth.exchange_code(code))
            calls_before = len(sandbox.calls)

            started = time.perf_counter()
            report = Runner(app).run(app.config.job("menu"), "bench")
            wall = time.perf_counter() - started
            app.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    sends = sandbox.count(SEND_PATH)
    pages = sandbox.count(FRIENDS_PATH)
    kakao_calls = len(sandbox.calls) - calls_before
    delivered = sum(1 for uuid in sandbox.friends if sandbox.received(uuid))
    floor_sends = math.ceil(args.friends / 5)
    floor_calls = floor_sends + math.ceil(args.friends / 100)
    floor_wall = floor_calls * args.latency
    print(f"friends: {args.friends}, latency per Kakao call: {args.latency * 1000:.0f} ms")
    print(f"delivered:        {delivered}/{args.friends} "
          f"({report.fanout.count('sent') if report.fanout else 0} recorded sent)")
    print(f"send calls:       {sends}   (floor: {floor_sends}, at most 5 receivers per call)")
    print(f"all Kakao calls:  {kakao_calls}   (floor: {floor_calls} = {floor_sends} sends + "
          f"{math.ceil(args.friends / 100)} friends page; made: {pages} friends page(s))")
    print(f"wall time:        {wall:.3f} s   (floor: {floor_wall:.3f} s = {floor_calls} calls x "
          f"{args.latency * 1000:.0f} ms; overhead {wall - floor_wall:+.3f} s, {wall / floor_wall:.2f}x)")
    return 0 if delivered == args.friends else 1


if __name__ == "__main__":
    sys.exit(main())
