"""Benchmark: resident memory of an idle `python -m bot run`, first and warm start, SQLite and PostgreSQL,
and its growth over 10,000 slot runs and 10,000 webhooks.

Every process is its own: the service (`python -m bot run`, under a fake $NOTIFY_SOCKET), the Kakao
stand-in and the scraped web page (spawned, bench/standin.py), the webhook client (this process). The
deployment is a temporary config — one `scrape` job to "me" and 2 friends, one `shopify-order-alert`
job, `[delivery] quota_reserve = 0` — and a database: a SQLite file in a temp dir, or a scratch
PostgreSQL database (`<prefix><random>` on --postgres, dropped after).

1. Starts (--starts N of each, alternating with the baseline): a **first start** on an empty
   database (migrations run) and a **warm start** on a migrated one holding a Kakao login. Read:
   seconds to READY=1, VmRSS at READY and after --idle seconds. Baseline, same run: a bare python
   that imports flask, sqlalchemy, requests, apscheduler, waitress (+ psycopg on PostgreSQL).
2. Growth (bench/idle_growth.py): RUNS slot runs driven through the scheduler's own callback in a
   process running `run_service` (each run its own day, so every run really sends 3 messages), and
   WEBHOOKS signed `orders/updated` deliveries posted to the `run` process's route, each block of
   --every processed (the events are `done` in the database) before its VmRSS is read. Judged once
   warm (the readings from --warm on): least-squares slope × the span, and last − first warm reading;
   PASS if both are <= 2 MB.

--code DIR (repeatable) measures another checkout's `bot` too (e.g. --code /work/main --code .), in the
same run, alternating: before and after side by side.

    python bench/idle.py [--starts 3] [--runs 10000] [--webhooks 10000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import os
import secrets as token
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_growth import judge, slot_growth, webhook_growth  # noqa: E402
from idle_setup import Deployment, Standins  # noqa: E402
from standin import rss_kb, scratch_postgres  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB = 80.0
GROWTH_GOAL_MB = 2.0
BASE_IMPORTS = {"sqlite": "flask, sqlalchemy, requests, apscheduler, waitress",
                "postgres": "flask, sqlalchemy, requests, apscheduler, waitress, psycopg"}
BASELINE = "import {imports}\nprint([l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1])"


def baseline_kb(backend: str) -> int:
    """VmRSS of a bare python importing the service's stack."""
    done = subprocess.run([sys.executable, "-c", BASELINE.format(imports=BASE_IMPORTS[backend])],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def wait_ready(sock: socket.socket, proc: subprocess.Popen, log: Path, deadline_s: float = 120.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        sock.settimeout(0.05)
        try:
            if "READY=1" in sock.recv(4096).decode("utf-8").split("\n"):
                return
        except socket.timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"`run` exited with {proc.returncode} before READY=1:\n{_tail(log)}")
    raise RuntimeError(f"no READY=1 within {deadline_s} s")


@contextmanager
def running(tree: Path, deployment: Deployment) -> Iterator[tuple[subprocess.Popen, float]]:
    """`python -m bot run` of `tree` under a fake $NOTIFY_SOCKET: (the process, seconds to READY=1);
    SIGTERM on exit (exit code checked)."""
    address = str(deployment.folder / f"notify-{token.token_hex(4)}")
    env = deployment.env(tree)
    log = deployment.folder / "run.log"  # a file, not a pipe: a full pipe would stall the service's logging
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, open(log, "w+", encoding="utf-8") as err:
        sock.bind(address)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(deployment.config), "run"],
                                cwd=deployment.folder, env={**env, "NOTIFY_SOCKET": address},
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            wait_ready(sock, proc, log)
            yield proc, time.perf_counter() - started
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"`run` exited with {proc.returncode} after SIGTERM:\n{_tail(log)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.unlink(address)


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


@dataclass
class StartReading:
    to_ready: float
    at_ready: int
    idle: int


def one_start(tree: Path, deployment: Deployment, idle: float) -> StartReading:
    with running(tree, deployment) as (proc, to_ready):
        at_ready = rss_kb(proc.pid)
        time.sleep(idle)
        return StartReading(to_ready, at_ready, rss_kb(proc.pid))


@contextmanager
def fresh_database(backend: str, folder: Path, args: argparse.Namespace) -> Iterator[str]:
    if backend == "postgres":
        with scratch_postgres(args.postgres, args.db_prefix) as url:
            yield url
        return
    path = folder / f"bot-{token.token_hex(4)}.sqlite3"
    try:
        yield f"sqlite:///{path}"
    finally:
        for leftover in folder.glob(path.name + "*"):
            leftover.unlink()


def measure_starts(backend: str, trees: list[Path], standins: Standins, folder: Path,
                   args: argparse.Namespace) -> dict[str, list]:
    """{"baseline": [kB…], (tree, "first"): [StartReading…], (tree, "warm"): […]}, alternating."""
    readings: dict = {"baseline": []}
    with fresh_database(backend, folder, args) as warm_url:
        warm = Deployment.make(folder, warm_url, standins, name="warm")
        warm.prepare(login=True)  # migrated (in this process), a Kakao login stored
        for _ in range(args.starts):
            readings["baseline"].append(baseline_kb(backend))
            for tree in trees:
                with fresh_database(backend, folder, args) as url:
                    first = Deployment.make(folder, url, standins, name="first")
                    readings.setdefault((tree, "first"), []).append(one_start(tree, first, args.idle))
                readings.setdefault((tree, "warm"), []).append(one_start(tree, warm, args.idle))
    return readings


def mb(kb: float) -> float:
    return kb / 1024


def spread(values: list[float], fmt: str = "{:5.1f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def start_table(backend: str, trees: list[Path], readings: dict[str, list]) -> bool:
    base = [mb(kb) for kb in readings["baseline"]]
    print(f"\n== {backend}: idle `python -m bot run`, min / median / max of {len(base)} starts each (MB)")
    print(f"{'':<34} {'to READY s':>18} {'RSS at READY':>20} {'RSS idle':>20} {'idle - base':>8}  goal")
    print(f"{'baseline: import ' + BASE_IMPORTS[backend].replace(', ', ','):<34.34} {'':>18} {'':>20} "
          f"{spread(base):>20}")
    ok = True
    for tree in trees:
        for kind in ("first", "warm"):
            rows: list[StartReading] = readings[(tree, kind)]
            idle = [mb(r.idle) for r in rows]
            worst = max(max(idle), max(mb(r.at_ready) for r in rows))
            met = worst <= GOAL_MB
            ok &= met
            print(f"{_label(tree, trees) + kind + ' start':<34} {spread([r.to_ready for r in rows], '{:5.2f}'):>18} "
                  f"{spread([mb(r.at_ready) for r in rows]):>20} {spread(idle):>20} "
                  f"{statistics.median(idle) - statistics.median(base):+8.1f}  "
                  f"{'PASS' if met else 'FAIL'} (max {worst:.1f} <= {GOAL_MB:.0f})")
    return ok


def _label(tree: Path, trees: list[Path]) -> str:
    return "" if len(trees) == 1 else f"{tree.name}: "


def growth_table(title: str, trees: list[Path], results: dict[Path, dict], warm_from: int) -> bool:
    print(f"\n== {title}")
    ok = True
    for tree in trees:
        data = results[tree]
        points = data["points"]
        verdict = judge(points, warm_from)
        ok &= verdict["pass"] and not data.get("problems")
        print(f"{_label(tree, trees)}RSS by count (MB): " + "  ".join(f"{n}: {mb(kb):.1f}" for n, kb in points))
        print(f"  {data['summary']}")
        print(f"  once warm (from {verdict['warm'][0]}): slope {verdict['slope_kb'] * 1000:+.1f} kB per 1,000 "
              f"= {verdict['slope_mb']:+.2f} MB over {verdict['span']} (projected if fewer); last - warm {verdict['diff_mb']:+.2f} MB "
              f"-> {'PASS' if verdict['pass'] else 'FAIL'} (<= {GROWTH_GOAL_MB:.0f} MB)")
    return ok


def growth(backend: str, trees: list[Path], standins: Standins, folder: Path, args: argparse.Namespace) -> bool:
    """The slot-run and the webhook growth of each checkout, each on a fresh, migrated database."""
    ok = True
    for what, count, title in (
            ("runs", args.runs, "slot runs (run_service in the process; scheduler callback)"),
            ("webhooks", args.webhooks, "signed orders/updated webhooks to `python -m bot run`, each block processed")):
        if not count:
            continue
        results = {}
        for tree in trees:
            with fresh_database(backend, folder, args) as url:
                deployment = Deployment.make(folder, url, standins, name=f"growth-{what}")
                deployment.prepare(login=True)
                results[tree] = (slot_growth(tree, deployment, count, args.every) if what == "runs"
                                 else webhook_growth(tree, deployment, count, args.every, running))
        ok &= growth_table(f"{backend}: {count} {title}", trees, results, args.warm)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="starts of each kind (default 3)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idling before the idle reading")
    parser.add_argument("--runs", type=int, default=10000, help="slot runs for the growth (0: skip)")
    parser.add_argument("--webhooks", type=int, default=10000, help="webhooks for the growth (0: skip)")
    parser.add_argument("--every", type=int, default=500, help="read VmRSS every this many runs / webhooks")
    parser.add_argument("--warm", type=int, default=1000, help="growth judged from this count on")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--growth-backends", default="sqlite", help="backends of the growth runs")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="server for the scratch databases (its own database is only connected to)")
    parser.add_argument("--db-prefix", default="bench_idle_", help="name prefix of the scratch databases")
    parser.add_argument("--code", action="append", type=Path, help="checkout(s) whose bot is measured "
                        "(default: this one); several: alternated, side by side")
    args = parser.parse_args()
    trees = [path.resolve() for path in (args.code or [ROOT])]
    backends = [b for b in args.backends.split(",") if b]
    folder = Path(tempfile.mkdtemp(prefix="bench-idle-", dir="/tmp"))  # short: AF_UNIX paths <= 107 bytes
    ok = True
    try:
        with Standins(folder) as standins:
            for backend in backends:
                ok &= start_table(backend, trees, measure_starts(backend, trees, standins, folder, args))
            for backend in [b for b in args.growth_backends.split(",") if b]:
                ok &= growth(backend, trees, standins, folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{'all goals met' if ok else 'NOT all goals met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
