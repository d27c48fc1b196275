"""bench/idle.py's growth runs: many slot runs, many webhooks, VmRSS read as they go, and the verdict.

Slot runs: a child process (`python bench/idle_growth.py CONFIG CALENDAR RUNS EVERY`, the checkout under
test first on its path) runs `run_service` in a thread — HTTP server, webhook workers, scheduler: all of
`run` — and drives RUNS slot runs through `BotScheduler(app).fire_at(job, instant, now=instant)`, the
APScheduler callback's own path. Each run is the noon slot of its own day, on the bot's clock and on the
Kakao stand-in's (bench/idle_setup.Calendar), so each is a run as in service on consecutive days: the
access token stored the day before has expired and is refreshed (Kakao's answer carries a new refresh
token in the old one's last month, as Kakao rotates it; the login never runs out), the page is fetched
and scraped, the message rendered, the slot and its 3 recipients claimed, 2 Kakao send calls made ("me";
the two friends in one call) and every outcome recorded. The bot's per-Korean-day QuotaBook never blocks,
and the periodic checks of `run` see a healthy login. VmRSS is read after the first run (the imports a
first send brings: cryptography, bs4) and every EVERY runs.

Webhooks: blocks of EVERY signed `orders/updated` deliveries (each a new order: parse, snapshot,
insert, done; no message) posted by 4 keep-alive connections of this process to the route of a
`python -m bot run`; once the block is processed (every event `done` in the database) the service's
VmRSS is read.

Verdict (`judge`): from the first reading at or after `warm_from` on, the least-squares slope times the
span (at least 9,000: a shortened run is projected to the goal's 10,000), and the last minus that first
warm reading; both must be <= 2 MB.
"""

from __future__ import annotations

import gc
import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_setup import JOB, SHOP, WEBHOOK_SECRET, Calendar, Deployment, sends, token_calls  # noqa: E402
from loadgen import order_body  # noqa: E402
from standin import rss_kb  # noqa: E402

GOAL_KB = 2 * 1024
GOAL_SPAN = 9000  # 10,000 runs or webhooks once warm (the first ~1,000)
CLIENTS = 4
PROCESSED_DEADLINE = 120.0


def judge(points: list[list[int]], warm_from: int) -> dict[str, Any]:
    """Growth once warm: least-squares slope (kB per count) × span, and last − first warm reading."""
    warm = [p for p in points if p[0] >= warm_from] or points[-2:]
    xs, ys = [p[0] for p in warm], [p[1] for p in warm]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0
    span = xs[-1] - xs[0]
    diff = ys[-1] - ys[0]
    # A shortened run (--runs 2000) is judged on the slope projected over the goal's own span, not its own.
    judged = max(span, GOAL_SPAN)
    return {"warm": warm[0], "slope_kb": slope, "span": judged, "slope_mb": slope * judged / 1024,
            "diff_mb": diff / 1024, "pass": slope * judged <= GOAL_KB and diff <= GOAL_KB}


# -- slot runs ----------------------------------------------------------------------------------------------


def slot_growth(tree: Path, deployment: Deployment, runs: int, every: int) -> dict[str, Any]:
    """RUNS slot runs in a child process running `run_service` of checkout `tree`."""
    kakao = deployment.standins.kakao
    before, tokens_before = kakao.ask(sends), kakao.ask(token_calls)
    calendar = deployment.standins.calendar
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(deployment.config),
                           str(calendar.path), str(runs), str(every)], cwd=deployment.folder,
                          env=deployment.env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"the slot-run child failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}")
    data = json.loads(lines[-1])
    calls, refreshes = kakao.ask(sends) - before, kakao.ask(token_calls) - tokens_before
    data["summary"] = (f"{runs} runs in {data['elapsed']:.1f} s ({runs / data['elapsed']:.0f}/s, child wall "
                       f"{wall:.1f} s); messages sent {data['sent']} (expected {3 * runs}), runs not fully sent "
                       f"{data['problems']}, Kakao send calls {calls}, token refreshes {refreshes} (expected "
                       f"{runs}), login problems at the end {data['login'] or 'none'}; after gc.collect() "
                       f"{data['after_gc'] / 1024:.1f} MB")
    data["problems"] = data["problems"] or data["service_code"] != 0 or refreshes != runs or data["login"]
    return data


def child_main(argv: list[str]) -> int:
    """In the child: `run_service` in a thread, RUNS slot runs, a JSON line with the VmRSS readings."""
    from bot.app import App, load_config
    from bot.config.secrets import Secrets
    from bot.service.run import run_service
    from bot.service.scheduler import BotScheduler
    from bot.service.systemd import Notifier
    from bot.store.db import utcnow
    from tokens.login_health import login_problems

    config_path, calendar, runs, every = argv[0], Calendar(argv[1]), int(argv[2]), int(argv[3])
    config = load_config(Path(config_path))
    offset = [timedelta(seconds=calendar.ahead())]  # the app's clock is the real one plus this; from the login's day
    app = App(config, Secrets.load(config.base_dir), clock=lambda: utcnow() + offset[0])
    ready, stop = threading.Event(), threading.Event()
    result: dict[str, Any] = {}
    service = threading.Thread(target=lambda: result.setdefault("code", run_service(
        app, ready=ready.set, stop_event=stop, notifier=Notifier(None))), name="run-service")
    service.start()
    if not ready.wait(120):
        stop.set()
        service.join(30)
        print(json.dumps({"error": "run_service was not ready within 120 s"}), flush=True)
        return 1
    time.sleep(1.0)
    points = [(0, rss_kb())]
    scheduler = BotScheduler(app, stopping=stop)  # not started: fire_at is the callback's own path
    first = (app.clock().astimezone(config.timezone).replace(hour=12, minute=0, second=0, microsecond=0)
             + timedelta(days=1))
    sent = problems = 0
    started = time.perf_counter()
    for i in range(1, runs + 1):
        instant = first + timedelta(days=i)
        offset[0] = instant - datetime.now(config.timezone)  # "now" is the slot's own instant: its own day
        calendar.set(offset[0].total_seconds())  # and the Kakao stand-in's
        report = scheduler.fire_at(JOB, instant, now=instant)
        statuses = [r.status for r in report.fanout.results] if report is not None and report.fanout else []
        sent += statuses.count("sent")
        problems += statuses != ["sent"] * 3
        if i % every == 0 or i in (1, runs):
            points.append((i, rss_kb()))
    elapsed = time.perf_counter() - started
    login = login_problems(app.db, app.vault, app.clock())  # what /healthz and the periodic checks would say
    gc.collect()
    after_gc = rss_kb()
    stop.set()
    service.join(60)
    print(json.dumps({"points": points, "after_gc": after_gc, "elapsed": elapsed, "sent": sent, "login": login,
                      "problems": problems, "service_code": result.get("code")}), flush=True)
    return 0


# -- webhooks -----------------------------------------------------------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    from bot.shopify.signing import webhook_hmac

    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
            "X-Shopify-Hmac-Sha256": webhook_hmac(body, WEBHOOK_SECRET), "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-API-Version": "2025-10", "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()), "X-Shopify-Triggered-At": "2026-11-22T00:05:00.000000Z"}


def post_block(port: int, first: int, count: int) -> dict[int, int]:
    """`count` deliveries of new orders from CLIENTS keep-alive connections: answers by status code."""
    numbers = iter(range(first, first + count))
    lock = threading.Lock()
    answers: dict[int, int] = {}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                break
            body = json.dumps(order_body(number), ensure_ascii=False, separators=(",", ":")).encode()
            connection.request("POST", "/shopify/default/webhooks", body=body, headers=signed(body))
            answer = connection.getresponse()
            answer.read()
            with lock:
                answers[answer.status] = answers.get(answer.status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def webhook_growth(tree: Path, deployment: Deployment, total: int, every: int, running: Callable) -> dict[str, Any]:
    """TOTAL webhooks to a `python -m bot run` of checkout `tree`; its VmRSS after each processed block."""
    engine = create_engine(deployment.url)
    count_done = text("SELECT count(*) FROM webhook_events WHERE status IN ('done', 'ignored')")
    try:
        with engine.connect() as connection:
            base = connection.execute(count_done).scalar_one()
        with running(tree, deployment) as (proc, _):
            time.sleep(1.0)
            points, answers, started, sent, waited = [(0, rss_kb(proc.pid))], {}, time.perf_counter(), 0, True
            while sent < total:
                block = min(every, total - sent)
                for status, n in post_block(deployment.port, base + sent + 1, block).items():
                    answers[status] = answers.get(status, 0) + n
                sent += block
                deadline = time.monotonic() + PROCESSED_DEADLINE
                while True:
                    with engine.connect() as connection:
                        done = connection.execute(count_done).scalar_one() - base
                    if done >= sent or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                waited &= done >= sent
                points.append((sent, rss_kb(proc.pid)))
            elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    summary = (f"{total} webhooks in {elapsed:.1f} s ({total / elapsed:.0f}/s posted and processed); answers "
               f"{', '.join(f'{n} x {status}' for status, n in sorted(answers.items()))}; every block processed: "
               f"{'yes' if waited else 'NO'}")
    return {"points": points, "summary": summary, "problems": not waited or answers != {200: total}}


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
