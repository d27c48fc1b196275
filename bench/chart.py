"""Benchmark: the digest chart's render time, and the memory of a `run`-like process after a week of evenings.

1. Render time: `bot.util.chart_process.draw_png` for an hourly and a daily7 chart, RUNS times each,
   the child process included (start, matplotlib import, font, draw, PNG out): min / median / max.
2. Memory: a second process (this script with --child) runs `run_service` in a thread (HTTP server,
   webhook workers, scheduler: all of `run`, as bench/idle.py does) against the Kakao and Shopify
   stand-ins served here, and once it is idle drives 7 evening slots of a `shopify-orders` job with
   `chart = "hourly"` to "me" and 2 friends through `BotScheduler.fire_at` — collect (3 GraphQL
   windows), draw (child process), upload once, send 3 feeds. Its VmRSS is read when ready (idle:
   the baseline, same process), after each evening, and after gc.collect(); and whether matplotlib
   ever entered it.

Goal: RSS after the week back under the idle budget of 80 MB, and matplotlib never in the service.

    python bench/chart.py [--runs 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import free_port, rss_kb  # noqa: E402

GOAL_MB = 80.0
JOB = "evening"
SHOP = "bench-store.myshopify.com"
FRIENDS = ["직원A", "직원B"]
API_KEY, API_SECRET = "bench-client-id", "bench-client-secret"
EVENINGS = 7

CONFIG = """\
[database]
url = "sqlite:///{db}"

[server]
listen = "127.0.0.1:{port}"

[delivery]
quota_reserve = 0

[kakao]
redirect_uri = "http://127.0.0.1:8080/kakao/callback"
auth_url = "{kakao}"
api_url = "{kakao}"
web_domain = "https://bot.example.com"

[shopify]
origin = "{shopify}/{{shop}}"

[[shopify.apps]]
name = "default"

[[jobs]]
name = "{job}"
kind = "shopify-orders"
shop = "{shop}"
at = ["evening"]
to = ["me", "friend:{f1}", "friend:{f2}"]
chart = "hourly"
"""


# -- the child: `run` in a thread, 7 evenings driven through the scheduler -----------------------------------


def child(config_path: str) -> int:
    from bot.app import App, load_config
    from bot.config.secrets import Secrets
    from bot.service.run import run_service
    from bot.service.scheduler import BotScheduler
    from bot.service.systemd import Notifier
    from bot.store.db import utcnow

    config = load_config(Path(config_path))
    offset = [timedelta(0)]
    app = App(config, Secrets.load(config.base_dir), clock=lambda: utcnow() + offset[0])
    app.kakao_tokens.clock = utcnow  # token lifetimes: real time, as the stand-in issues them
    ready, stop = threading.Event(), threading.Event()
    result: dict = {}
    service = threading.Thread(target=lambda: result.setdefault("code", run_service(
        app, ready=ready.set, stop_event=stop, notifier=Notifier(None))), name="run-service")
    service.start()
    if not ready.wait(60):
        print(json.dumps({"error": "run_service was not ready within 60 s"}), flush=True)
        stop.set()
        service.join(30)
        return 1
    time.sleep(1.0)
    gc.collect()
    points = [("ready", rss_kb())]
    scheduler = BotScheduler(app, stopping=stop)
    zone = config.timezone
    today = datetime.now(zone).replace(hour=18, minute=0, second=0, microsecond=0)
    feeds = problems = 0
    started = time.perf_counter()
    for back in range(EVENINGS, 0, -1):  # the last 7 evenings: within read_orders' 60 days
        instant = today - timedelta(days=back)
        offset[0] = instant - datetime.now(zone)
        report = scheduler.fire_at(JOB, instant, now=instant)
        fanout = getattr(report, "fanout", None)
        statuses = [r.status for r in fanout.results] if fanout is not None else []
        problems += 0 if statuses == ["sent"] * 3 and not report.chart_error else 1
        feeds += statuses.count("sent") if not getattr(report, "chart_error", "x") else 0
        points.append((f"{instant:%m/%d}", rss_kb()))
    elapsed = time.perf_counter() - started
    offset[0] = timedelta(0)
    gc.collect()
    after_gc = rss_kb()
    matplotlib_loaded = "matplotlib" in sys.modules
    stop.set()
    service.join(60)
    print(json.dumps({"points": points, "after_gc": after_gc, "elapsed": elapsed, "feeds": feeds,
                      "problems": problems, "matplotlib": matplotlib_loaded, "service_code": result.get("code")}),
          flush=True)
    return 0


# -- the bench ----------------------------------------------------------------------------------------------


def render_times(runs: int) -> dict[str, list[float]]:
    from bot.util.chart_process import draw_png, png_size

    hourly = {"kind": "hourly", "title": "오늘 시간대별 매출 · 12/3(목) 18:00까지", "currency": "KRW",
              "labels": [f"{h}시" for h in range(24)],
              "series": [{"name": "오늘", "values": [float((h * 7919) % 90000) for h in range(24)]},
                         {"name": "지난주 목요일", "values": [float((h * 4243) % 80000) for h in range(24)]}]}
    daily7 = {"kind": "daily7", "title": "최근 7일 매출", "currency": "KRW", "labels": [f"11/{d}" for d in range(21, 28)],
              "series": [{"name": "", "values": [1234000.0, 560000.0, 2300000.0, 0.0, 870000.0, 1500000.0, 257000.0]}]}
    times: dict[str, list[float]] = {}
    for name, spec in (("hourly", hourly), ("daily7", daily7)):
        for _ in range(runs):
            started = time.perf_counter()
            png = draw_png(spec)
            times.setdefault(name, []).append(time.perf_counter() - started)
            assert png_size(png) == (800, 400)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="renders per chart kind (default 10)")
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    from cryptography.fernet import Fernet

    from bot.app import App, load_config
    from bot.config.secrets import Secrets
    from bot.sandbox.kakao import KakaoSandbox
    from bot.sandbox.server import serve
    from bot.sandbox.shopify import ShopifySandbox

    times = render_times(args.runs)

    kakao = KakaoSandbox()
    kakao.sender_daily = kakao.recipient_daily = kakao.pair_daily = 10**9
    for nickname in FRIENDS:
        kakao.add_friend(nickname)
    shopify = ShopifySandbox()
    shopify.register_app(API_KEY, API_SECRET)
    shopify.add_shop(SHOP)
    start = datetime.now() - timedelta(days=16)
    shopify.add_orders(SHOP, 16 * 48, start=start.replace(hour=0, minute=10), every=timedelta(minutes=30),
                       cancelled_every=9, refunded_every=13)
    secrets = {"BOT_SECRET_KEY": Fernet.generate_key().decode(), "KAKAO_REST_API_KEY": kakao.rest_api_key,
               "KAKAO_CLIENT_SECRET": kakao.client_secret or "", "SHOPIFY_API_KEY": API_KEY,
               "SHOPIFY_API_SECRET": API_SECRET}
    skip = ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET")
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update(secrets, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    folder = Path(tempfile.mkdtemp(prefix="bench-chart-"))
    try:
        with serve(kakao.wsgi_app()) as kakao_server, serve(shopify.wsgi_app()) as shopify_server:
            config_path = folder / "config.toml"
            config_path.write_text(CONFIG.format(db=folder / "chart.sqlite3", port=free_port(), kakao=kakao_server.url,
                                                 shopify=shopify_server.url, job=JOB, shop=SHOP, f1=FRIENDS[0],
                                                 f2=FRIENDS[1]), encoding="utf-8")
            app = App(load_config(config_path), Secrets(secrets))
            app.db.migrate()
            code = kakao.issue_code(app.config.kakao.redirect_uri)
            app.kakao_tokens.store_login("default", app.kakao_auth.exchange_code(code))
            app.shopify_tokens.store_legacy("default", SHOP, shopify.legacy_token(SHOP), "read_orders")
            app.close()
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(config_path)],
                                  cwd=folder, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            uploads = len(kakao.images.uploads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        print(f"the child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}", file=sys.stderr)
        return 1
    data = json.loads(lines[-1])
    print(f"chart render, child process included ({args.runs} runs each, {os.cpu_count()} CPUs):")
    for name, samples in times.items():
        print(f"  {name:7} min {min(samples):.2f} s  median {statistics.median(samples):.2f} s  max {max(samples):.2f} s")
    ready_kb = data["points"][0][1]
    print(f"run_service in-process, {EVENINGS} evenings of a chart digest to 3 recipients via BotScheduler.fire_at "
          f"({data['elapsed']:.1f} s; child wall {wall:.1f} s): uploads {uploads} (expected {EVENINGS}), "
          f"feeds sent {data['feeds']} (expected {3 * EVENINGS}), evenings with a problem {data['problems']}")
    print("  RSS: " + "  ".join(f"{label}: {kb / 1024:.1f}" for label, kb in data["points"]) + "  (MB)")
    print(f"  RSS before (idle, ready): {ready_kb / 1024:.1f} MB; after the week: {data['points'][-1][1] / 1024:.1f} MB "
          f"({data['points'][-1][1] - ready_kb:+d} kB); after gc.collect(): {data['after_gc'] / 1024:.1f} MB")
    print(f"  matplotlib imported by the service process: {'YES' if data['matplotlib'] else 'no'}")
    met = data["after_gc"] <= GOAL_MB * 1024 and not data["matplotlib"]
    print(f"goal: back under {GOAL_MB:.0f} MB after the week, matplotlib never in the service -> "
          f"{'met' if met else 'NOT met'}")
    return 0 if met and data["problems"] == 0 and uploads == EVENINGS else 1


if __name__ == "__main__":
    sys.exit(main())
