"""Benchmark: resident memory of an idle `run`, and after many slot runs; the time from start to READY.

Stand-ins in this process: Kakao (the owner and a few friends) and a web page to scrape. A
temporary config (SQLite in a temp dir, a free 127.0.0.1 port, one `scrape` job to "me" and
2 friends, `[delivery] quota_reserve = 0`) and a Kakao login stored as bench/fanout.py does.

1. `python -m bot run` is spawned with $NOTIFY_SOCKET bound here: the time from spawn to
   READY=1, its VmRSS right after READY and after IDLE seconds of idling; then SIGTERM.
2. A second process (this script with --child) runs `run_service` in a thread (HTTP server,
   webhook workers, scheduler: all of `run`) and, once it is ready, drives RUNS slot runs
   through `BotScheduler(app).fire_at(job, instant, now=instant)` — the APScheduler callback's
   own path: scrape, render, claim, send to Kakao, record. Each run is a distinct slot on its
   own day (instant = first noon + i days; the app's clock follows), so the bot's per-Korean-day
   QuotaBook never blocks and every run really sends 3 messages; token lifetimes stay on the real
   clock (the stand-in issues them on the real clock), and the stand-in's own daily caps are
   lifted. Its VmRSS is read after start-up, every 1,000 runs, at the end, and after gc.collect().

Baseline, same machine: the VmRSS of a bare `python -c "import flask, sqlalchemy, requests,
apscheduler, waitress"`. Goal: <= 80 MB, and no growth with runs.

    python bench/idle.py [--runs 10000] [--idle 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB = 80.0
JOB = "menu"
FRIENDS = ["직원A", "직원B", "직원C", "직원D"]  # the stand-in's friends; the job sends to the first two
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID")
BASELINE = ("import flask, sqlalchemy, requests, apscheduler, waitress\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1])")

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
web_domain = "{web}"

[[jobs]]
name = "{job}"
kind = "scrape"
url = "{web}/menu"
select = "ul.menu > li"
at = ["noon"]
to = ["me", "friend:{f1}", "friend:{f2}"]
"""


def rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def mb(kb: float) -> str:
    return f"{kb / 1024:6.1f} MB"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the child: `run` in a thread, slot runs driven through the scheduler --------------------------------


def child(config_path: str, runs: int) -> int:
    from bot.app import App, load_config
    from bot.config.secrets import Secrets
    from bot.service.run import run_service
    from bot.service.scheduler import BotScheduler
    from bot.service.systemd import Notifier
    from bot.store.db import utcnow

    config = load_config(Path(config_path))
    offset = [timedelta(0)]  # the simulated calendar: the app's clock is the real one plus this
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
    points = [(0, rss_kb())]

    scheduler = BotScheduler(app, stopping=stop)  # not started: fire_at is the callback's own path
    zone = config.timezone
    today = datetime.now(zone)
    first = today.replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)
    sent = problems = 0
    started = time.perf_counter()
    for i in range(1, runs + 1):
        instant = first + timedelta(days=i)
        offset[0] = instant - datetime.now(zone)  # "now" is the slot's own instant: on time, its own day
        report = scheduler.fire_at(JOB, instant, now=instant)
        ok = report is not None and report.fanout is not None
        statuses = [r.status for r in report.fanout.results] if ok else []
        sent += statuses.count("sent")
        problems += 0 if ok and statuses == ["sent"] * 3 else 1
        if i % 1000 == 0 or i == runs:
            points.append((i, rss_kb()))
    elapsed = time.perf_counter() - started
    offset[0] = timedelta(0)
    gc.collect()
    after_gc = rss_kb()
    stop.set()
    service.join(60)
    print(json.dumps({"points": points, "after_gc": after_gc, "elapsed": elapsed, "sent": sent,
                      "problems": problems, "service_code": result.get("code")}), flush=True)
    return 0


# -- the bench ----------------------------------------------------------------------------------------------


def wait_ready(sock: socket.socket, proc: subprocess.Popen, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        sock.settimeout(0.05)
        try:
            if "READY=1" in sock.recv(4096).decode("utf-8").split("\n"):
                return
        except socket.timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"`run` exited with {proc.returncode} before READY=1:\n{proc.stderr.read()}")
    raise RuntimeError(f"no READY=1 within {deadline_s} s")


def measure_run(config_path: Path, env: dict[str, str], folder: Path, idle: float) -> tuple[float, int, int]:
    """`python -m bot run` under a fake $NOTIFY_SOCKET: (seconds to READY=1, VmRSS at READY, after idling)."""
    address = str(folder / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config_path), "run"], cwd=folder,
                                env={**env, "NOTIFY_SOCKET": address}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_ready(sock, proc)
            to_ready = time.perf_counter() - started
            at_ready = rss_kb(proc.pid)
            time.sleep(idle)
            after_idle = rss_kb(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return to_ready, at_ready, after_idle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000, help="simulated slot runs (default 10000)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds `run` idles before the second reading")
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.runs)

    from cryptography.fernet import Fernet

    from bot.app import App, load_config
    from bot.config.secrets import Secrets
    from bot.sandbox.kakao import KakaoSandbox
    from bot.sandbox.server import serve
    from bot.sandbox.web import DEMO_MENU_HTML, create_web_app

    sandbox = KakaoSandbox()
    sandbox.sender_daily = sandbox.recipient_daily = sandbox.pair_daily = 10**9  # the bot's QuotaBook is what binds
    for nickname in FRIENDS:
        sandbox.add_friend(nickname)
    secret_key = Fernet.generate_key().decode()
    secrets = {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": sandbox.rest_api_key,
               "KAKAO_CLIENT_SECRET": sandbox.client_secret or ""}
    skip = ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", *SYSTEMD_VARIABLES)
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update(secrets, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    folder = Path(tempfile.mkdtemp(prefix="bench-idle-", dir="/tmp"))  # short: AF_UNIX paths ≤ 107 bytes
    try:
        with serve(sandbox.wsgi_app()) as kakao, serve(create_web_app({"/menu": DEMO_MENU_HTML})) as web:
            def write_config(name: str) -> Path:
                path = folder / name
                path.write_text(CONFIG.format(db=folder / "idle.sqlite3", port=free_port(), kakao=kakao.url,
                                              web=web.url, job=JOB, f1=FRIENDS[0], f2=FRIENDS[1]), encoding="utf-8")
                return path

            config_path = write_config("run.toml")
            app = App(load_config(config_path), Secrets(secrets))
            app.db.migrate()
            code = sandbox.issue_code(app.config.kakao.redirect_uri)
            app.kakao_tokens.store_login("default", app.kakao_auth.exchange_code(code))
            app.close()

            to_ready, at_ready, after_idle = measure_run(config_path, env, folder, args.idle)

            sends_before = sandbox.count("/send")
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                                   str(write_config("child.toml")), "--runs", str(args.runs)],
                                  cwd=folder, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            sends = sandbox.count("/send") - sends_before
        base = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True)
        baseline = int(base.stdout.strip())
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        print(f"the child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}", file=sys.stderr)
        return 1
    data = json.loads(lines[-1])
    points = data["points"]
    start_kb, end_kb = points[0][1], points[-1][1]
    # growth per 1,000 runs, from the first 1,000-run reading on (the first runs warm caches, pools, imports)
    warm = points[1] if len(points) > 2 else points[0]
    span = (points[-1][0] - warm[0]) / 1000
    growth = (end_kb - warm[1]) / span if span > 0 else float("nan")

    print(f"baseline: bare `python -c \"import flask, sqlalchemy, requests, apscheduler, waitress\"`: {mb(baseline)}")
    print(f"`python -m bot run` (NOTIFY_SOCKET): start -> READY=1 {to_ready:.2f} s")
    print(f"  RSS at READY:                 {mb(at_ready)}   (baseline {mb(baseline)}, {at_ready - baseline:+.0f} kB)")
    print(f"  {f'RSS after {args.idle:g} s idle:':<30}{mb(after_idle)}   (goal <= {GOAL_MB:.0f} MB: "
          f"{'met' if after_idle <= GOAL_MB * 1024 else 'NOT met'})")
    print(f"run_service in-process, {args.runs} slot runs via BotScheduler.fire_at "
          f"({data['elapsed']:.1f} s, {args.runs / data['elapsed']:.0f} runs/s; child wall {wall:.1f} s):")
    print(f"  messages sent: {data['sent']} (expected {3 * args.runs}); runs not fully sent: {data['problems']}; "
          f"Kakao send calls seen by the stand-in: {sends}")
    print("  RSS by runs:  " + "  ".join(f"{n}: {kb / 1024:.1f}" for n, kb in points) + "  (MB)")
    print(f"  RSS after start-up:           {mb(start_kb)}")
    print(f"  {f'RSS after {points[-1][0]} runs:':<30}{mb(end_kb)}   ({end_kb - start_kb:+d} kB since start-up)")
    print(f"  RSS after gc.collect():       {mb(data['after_gc'])}")
    print(f"  growth per 1,000 runs:        {growth:+.1f} kB (from run {warm[0]} on; goal: no growth)")
    half = next((p for p in points if p[0] >= points[-1][0] / 2), None)
    if half is not None and 0 < half[0] < points[-1][0]:
        late = (end_kb - half[1]) / ((points[-1][0] - half[0]) / 1000)
        print(f"  growth per 1,000 runs, 2nd half: {late:+.1f} kB (runs {half[0]}..{points[-1][0]}: "
              f"warm-up excluded)")
    largest = max([kb for _, kb in points] + [at_ready, after_idle, data["after_gc"]])
    print(f"goal: <= {GOAL_MB:.0f} MB -> {'met' if largest <= GOAL_MB * 1024 else 'NOT met'} "
          f"(largest reading, every one above counted: {mb(largest).strip()}); no growth -> "
          f"see growth per 1,000 runs above")
    ok = data["problems"] == 0 and data["service_code"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
