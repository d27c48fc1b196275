"""Benchmark: signed webhooks answered while 1,000 idle and 100 slow connections hold the server.

A real `python -m bot run` (its own process; temporary config and SQLite database, a free
127.0.0.1 port, the `shopify-order-alert` job of bench/webhooks.py) is sent REQUESTS signed
`orders/updated` webhooks from CLIENTS threads of another process, each on a new connection with
Shopify's 5 s timeout, in two phases:

1. baseline: nothing else connected;
2. under attack: a third process keeps IDLE connections open that never send a byte and SLOW
   clients that send a request's headers one line a second (each reconnects at once when the server
   closes it, as an attacker would).

Per phase: webhooks answered 200 within 5 s, and p50 / p99 / max answer time; over ROUNDS rounds
the min / median / max of each. `--root` runs another checkout's code (e.g. the one before the
connection limits) with the same load.

    python bench/connections.py [--requests 1000] [--clients 8] [--idle 1000] [--slow 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import PATH, SECRET, SHOP, deliveries, percentile  # noqa: E402
from standin import free_port  # noqa: E402
from webhook_targets import CONFIG  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHOPIFY_TIMEOUT = 5.0  # seconds Shopify waits for a webhook's answer


def start_run(root: Path, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (folder / "config.toml").write_text(CONFIG.format(database="sqlite:///bench.sqlite3", port=port, shop=SHOP),
                                        encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in ("BOT_CONFIG", "BOT_DATABASE_URL")}
    env.update(BOT_SECRET_KEY=Fernet.generate_key().decode(), KAKAO_REST_API_KEY="unused",
               SHOPIFY_API_KEY="bench-client-id", SHOPIFY_API_SECRET=SECRET, PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", "config.toml", "run"], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(folder / "run.log", "wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503):
                return proc, port
        except requests.RequestException:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"`run` did not start; its log:\n{(folder / 'run.log').read_text()[-2000:]}")


# -- the load: signed webhooks, each on a new connection -----------------------------------------------


def send(port: int, work: list[tuple[bytes, dict[str, str]]], clients: int) -> dict[str, Any]:
    """In a process of its own: (answered 200 within 5 s, latencies of those, other outcomes)."""
    url = f"http://127.0.0.1:{port}{PATH}"
    latencies: list[float] = []
    others: dict[str, int] = {}
    lock = threading.Lock()
    items = iter(work)

    def client() -> None:
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            began = time.perf_counter()
            try:
                answer = requests.post(url, data=item[0], headers=item[1], timeout=SHOPIFY_TIMEOUT)
                outcome = "ok" if answer.status_code == 200 else str(answer.status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            took = time.perf_counter() - began
            with lock:
                if outcome == "ok":
                    latencies.append(took)
                else:
                    others[outcome] = others.get(outcome, 0) + 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "others": others}


# -- the attack: idle and slow connections, kept up ----------------------------------------------------


def attack(port: int, idle: int, slow: int, ready: Any, stop: Any) -> None:
    """In a process of its own: keep `idle` silent and `slow` trickling connections open until `stop`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, idle + slow + 256)), hard))
    selector = selectors.DefaultSelector()

    def open_one(kind: str) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return
        sock.setblocking(False)
        if kind == "slow":
            sock.send(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: bench\r\n")
        selector.register(sock, selectors.EVENT_READ, kind)

    for _ in range(idle):
        open_one("idle")
    for _ in range(slow):
        open_one("slow")
    ready.set()
    dripped = time.monotonic()
    while not stop.is_set():
        for key, _events in selector.select(timeout=0.2):
            try:
                gone = key.fileobj.recv(65536) == b""
            except OSError:
                gone = True
            if gone:  # closed by the server: come back at once
                selector.unregister(key.fileobj)
                key.fileobj.close()
                open_one(key.data)
        if time.monotonic() - dripped >= 1.0:  # one header line a second on every slow connection
            dripped = time.monotonic()
            for key in list(selector.get_map().values()):
                if key.data == "slow":
                    try:
                        key.fileobj.send(b"X-Slow: x\r\n")
                    except OSError:
                        pass
    for key in list(selector.get_map().values()):
        key.fileobj.close()


def phase(port: int, work: list[tuple[bytes, dict[str, str]]], clients: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(send, (port, work, clients))


def under_attack(port: int, work: list, clients: int, idle: int, slow: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    attacker = context.Process(target=attack, args=(port, idle, slow, ready, stop), daemon=True)
    attacker.start()
    try:
        if not ready.wait(120):
            raise SystemExit("the attacking connections could not be opened")
        return phase(port, work, clients)
    finally:
        stop.set()
        attacker.join(30)


def summary(label: str, rounds: list[dict[str, Any]], total: int) -> list[str]:
    answered = [len(r["latencies"]) for r in rounds]
    p50 = [statistics.median(r["latencies"]) * 1000 if r["latencies"] else float("nan") for r in rounds]
    p99 = [percentile(r["latencies"], 0.99) * 1000 if r["latencies"] else float("nan") for r in rounds]
    top = [max(r["latencies"]) * 1000 if r["latencies"] else float("nan") for r in rounds]
    others: dict[str, int] = {}
    for r in rounds:
        for kind, n in r["others"].items():
            others[kind] = others.get(kind, 0) + n

    def three(values: list[float], fmt: str) -> str:
        return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))

    lines = [f"{label}: answered within 5 s {three(answered, 'd')} of {total}; "
             f"p50 {three(p50, '.0f')} ms; p99 {three(p99, '.0f')} ms; max {three(top, '.0f')} ms"]
    if others:
        lines.append(f"  not answered: {', '.join(f'{kind} {n}' for kind, n in sorted(others.items()))}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose `bot` is run (default: this one)")
    args = parser.parse_args()
    work = [(d.body, d.headers) for d in deliveries(args.requests * args.rounds * 2, 0.0)]
    folder = Path(tempfile.mkdtemp(prefix="bench-connections-"))
    proc, port = start_run(args.root.resolve(), folder)
    baseline, attacked = [], []
    try:
        for index in range(args.rounds):
            batch = work[index * 2 * args.requests:(index * 2 + 1) * args.requests]
            baseline.append(phase(port, batch, args.clients))
            batch = work[(index * 2 + 1) * args.requests:(index * 2 + 2) * args.requests]
            attacked.append(under_attack(port, batch, args.clients, args.idle, args.slow))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"`run` of {args.root.resolve()}: {args.requests} signed webhooks from {args.clients} clients, "
          f"a new connection each, {args.rounds} round(s); min / median / max over the rounds")
    for line in summary("baseline", baseline, args.requests) + summary(
            f"with {args.idle} idle + {args.slow} slow connections", attacked, args.requests):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
