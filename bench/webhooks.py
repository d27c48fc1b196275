"""Benchmark: sustained signed Shopify webhooks against `run` on loopback, 10% redeliveries.

The real service (`bot.service.run.run_service`: waitress, the Flask app, the webhook worker) is
started on a free 127.0.0.1 port with a temporary config and database (SQLite unless
`--database-url`). CLIENTS threads (in a process of their own, so that client and server do not share one
GIL) send REQUESTS signed `orders/updated` deliveries, as fast as
the answers come; about 10% of them resend an earlier delivery with its webhook id (Shopify's
retries), which must be answered 200 "duplicate" and not processed again.

The shop has a `shopify-order-alert` job, and every order is new to the bot, so processing
each event is real work — parse, snapshot of address and line items, insert, mark done — but
sends no KakaoTalk message (a first update only records a snapshot): Kakao's quota of 100
messages a day per sender could not sustain a benchmark anyway.

Printed: answer throughput, p50/p99/max answer time, the answers by kind, and whether the
events processed equal the unique events sent (waiting for the worker with a deadline). Then
the same load against a bare Flask app whose route returns 200, served by waitress with the
same number of threads: the floor of the HTTP stack itself.

    python bench/webhooks.py [--requests 3000] [--clients 8] [--duplicates 0.1] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import waitress
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import func, select

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.shopify.signing import webhook_hmac
from bot.store.models import WebhookEvent

SHOP = "bench-shop.myshopify.com"
SECRET = "bench-webhook-secret"
PATH = "/shopify/default/webhooks"
DRAIN_DEADLINE = 120.0

CONFIG = """\
[database]
url = "{database}"

[server]
listen = "127.0.0.1:{port}"

[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{shop}"
to = ["me"]
"""


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    duplicate: bool


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    answered_at: float = 0.0  # time.time() of the last answer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def order_body(number: int) -> dict[str, Any]:
    """A REST-shaped order (about 1.5 KB, like a small real one)."""
    order_id = 6_100_000_000_000 + number
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": f"#{1000 + number}",
        "created_at": "2026-11-22T09:00:00+09:00", "updated_at": "2026-11-22T09:05:00+09:00",
        "currency": "KRW", "financial_status": "paid", "total_price": "42000.00",
        "total_price_set": {"shop_money": {"amount": "42000.00", "currency_code": "KRW"},
                            "presentment_money": {"amount": "42000.00", "currency_code": "KRW"}},
        "line_items": [{"id": order_id * 10 + i, "admin_graphql_api_id": f"gid://shopify/LineItem/{order_id * 10 + i}",
                        "name": name, "title": name, "sku": sku, "quantity": 1 + i, "price": "12000.00"}
                       for i, (name, sku) in enumerate([("드립백 10개입", "DRIP-10"), ("콜드브루 500ml", "COLD-500"),
                                                        ("머그컵", "MUG-01")])],
        "shipping_address": {"first_name": "민지", "last_name": "김", "address1": "테헤란로 1", "address2": "101호",
                             "city": "서울", "province": "서울특별시", "zip": "06234", "country": "South Korea",
                             "country_code": "KR", "phone": "+82 10-0000-0000"},
        "tags": "", "note": None, "test": False,
    }


def deliveries(count: int, duplicates: float, seed: int = 7) -> list[Delivery]:
    """`count` signed deliveries; a `duplicates` share resends an earlier one (same webhook id)."""
    rng = random.Random(seed)
    made: list[Delivery] = []
    unique: list[Delivery] = []
    for _ in range(count):
        if unique and rng.random() < duplicates:
            original = rng.choice(unique)
            made.append(Delivery(original.body, original.headers, True))
            continue
        body = json.dumps(order_body(len(unique) + 1), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
                   "X-Shopify-Hmac-Sha256": webhook_hmac(body, SECRET), "X-Shopify-Shop-Domain": SHOP,
                   "X-Shopify-API-Version": "2025-10", "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                   "X-Shopify-Event-Id": str(uuid.uuid4()),
                   "X-Shopify-Triggered-At": "2026-11-22T00:05:00.000000Z"}
        delivery = Delivery(body, headers, False)
        unique.append(delivery)
        made.append(delivery)
    return made


def load(url: str, work: list[Delivery], clients: int) -> Result:
    """Send `work` from `clients` threads of a separate process (the server keeps its own GIL)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        raw = pool.apply(_load_here, (url, [(d.body, d.headers) for d in work], clients))
    return Result(**raw)


def _load_here(url: str, work: list[tuple[bytes, dict[str, str]]], clients: int) -> dict[str, Any]:
    """In the client process: each thread its own keep-alive connection, sending as fast as answered."""
    latencies: list[float] = []
    answers: dict[str, int] = {}
    lock = threading.Lock()
    next_index = iter(range(len(work)))
    start = threading.Barrier(clients + 1)

    def client() -> None:
        session = requests.Session()
        mine, kinds = [], {}
        start.wait()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            body, headers = work[index]
            began = time.perf_counter()
            try:
                answer = session.post(url, data=body, headers=headers, timeout=30)
                kind = str(answer.status_code)
                if answer.status_code == 200 and answer.headers.get("Content-Type", "").startswith("application/json"):
                    kind = answer.json().get("status", kind)
            except requests.RequestException as exc:
                kind = type(exc).__name__
            mine.append(time.perf_counter() - began)
            kinds[kind] = kinds.get(kind, 0) + 1
        session.close()
        with lock:
            latencies.extend(mine)
            for kind, n in kinds.items():
                answers[kind] = answers.get(kind, 0) + n

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    first = time.perf_counter()
    for thread in threads:
        thread.join()
    last = time.perf_counter()
    return {"latencies": latencies, "answers": answers, "wall": last - first, "answered_at": time.time()}


def processed(app: App, after_id: int = 0) -> tuple[int, int]:
    """(events finished by the worker, events stored), of those with an id above `after_id`."""
    this_run = WebhookEvent.id > after_id
    with app.db.session() as session:
        done = session.scalar(select(func.count()).select_from(WebhookEvent)
                              .where(this_run, WebhookEvent.status.in_(("done", "ignored")))) or 0
        stored = session.scalar(select(func.count()).select_from(WebhookEvent).where(this_run)) or 0
    return done, stored


def _last_id(app: App) -> int:
    """The id of the last stored event (0 if none): a --database-url may hold earlier runs."""
    with app.db.session() as session:
        return session.scalar(select(func.max(WebhookEvent.id))) or 0


def bench_bot(work: list[Delivery], clients: int, database_url: str | None, folder: Path) -> tuple[Result, dict]:
    from bot.service.run import run_service

    port = free_port()
    config_path = folder / "config.toml"
    config_path.write_text(CONFIG.format(database=database_url or "sqlite:///bench.sqlite3", port=port, shop=SHOP),
                           encoding="utf-8")
    secrets = Secrets({"BOT_SECRET_KEY": Fernet.generate_key().decode(), "KAKAO_REST_API_KEY": "unused",
                       "SHOPIFY_API_KEY": "bench-client-id", "SHOPIFY_API_SECRET": SECRET})
    app = App(load_config(config_path), secrets)
    ready, stop = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    service = threading.Thread(target=lambda: outcome.setdefault("code", run_service(app, ready=ready.set,
                                                                                    stop_event=stop)),
                               name="bench-service", daemon=True)
    service.start()
    if not ready.wait(60):
        raise SystemExit("the service did not start")
    try:
        after = _last_id(app)  # run_service migrated before ready()
        result = load(f"http://127.0.0.1:{port}{PATH}", work, clients)
        unique = sum(1 for item in work if not item.duplicate)
        deadline = time.monotonic() + DRAIN_DEADLINE
        done, stored = processed(app, after)
        while done < unique and time.monotonic() < deadline:
            time.sleep(0.05)
            done, stored = processed(app, after)
        drained = max(0.0, time.time() - result.answered_at)
        with app.db.session() as session:
            attempts = session.scalar(select(func.max(WebhookEvent.attempts)).where(WebhookEvent.id > after)) or 0
    finally:
        stop.set()
        service.join(30)
        app.close()
    return result, {"unique": unique, "done": done, "stored": stored, "drained": drained, "attempts": attempts,
                    "code": outcome.get("code")}


def bench_baseline(work: list[Delivery], clients: int) -> Result:
    """The same load against a bare Flask route returning 200, on waitress with the same threads."""
    from bot.service.run import THREADS

    bare = Flask("bare")

    @bare.post(PATH)
    def ok() -> tuple[str, int]:
        return "", 200

    server = waitress.create_server(bare, host="127.0.0.1", port=0, threads=THREADS, ident=None)
    thread = threading.Thread(target=server.run, name="bench-baseline", daemon=True)
    thread.start()
    try:
        return load(f"http://127.0.0.1:{server.effective_port}{PATH}", work, clients)
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=5)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def row(label: str, result: Result) -> str:
    ms = [value * 1000 for value in result.latencies]
    return (f"{label:<28} {len(ms) / result.wall:>10.0f} {statistics.median(ms):>8.2f} {percentile(ms, 0.99):>8.2f} "
            f"{max(ms):>8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duplicates", type=float, default=0.10, help="share of redeliveries (0–1)")
    parser.add_argument("--database-url", help="e.g. postgresql+psycopg://…; default: a temporary SQLite file")
    args = parser.parse_args()
    if not 0 <= args.duplicates < 1 or args.requests < 1 or args.clients < 1:
        parser.error("--requests and --clients must be positive, --duplicates in [0, 1)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The reconciliation of the job's shop has no shop to ask here (no Shopify behind it).
    logging.getLogger("bot.webhooks.reconcile").setLevel(logging.CRITICAL)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth": that is the load

    work = deliveries(args.requests, args.duplicates)
    folder = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        result, check = bench_bot(work, args.clients, args.database_url, folder)
        baseline = bench_baseline(work, args.clients)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    database = "PostgreSQL" if args.database_url else "SQLite"
    duplicates = len(work) - check["unique"]
    print(f"{len(work)} signed webhooks from {args.clients} clients over loopback, {duplicates} of them "
          f"redeliveries ({duplicates / len(work):.0%}); database {database}")
    print(f"{'':<28} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(row("run: POST /shopify/…/webhooks", result))
    print(row("bare Flask 'return 200'", baseline))
    print(f"answers (run):      {', '.join(f'{n} {kind}' for kind, n in sorted(result.answers.items()))}")
    print(f"answers (baseline): {', '.join(f'{n} {kind}' for kind, n in sorted(baseline.answers.items()))}")
    same = check["done"] == check["unique"] == check["stored"]
    print(f"events processed:   {check['done']} of {check['unique']} unique sent ({check['stored']} stored) — "
          f"{'equal' if same else 'NOT EQUAL'}; most attempts per event: {check['attempts']}; the worker "
          f"finished {check['drained']:.2f} s after the last answer")
    expected = {"accepted": check["unique"], "duplicate": duplicates}
    ok = same and result.answers == {k: v for k, v in expected.items() if v} and check["attempts"] <= 1 \
        and check["code"] == 0
    if not ok:
        print("FAILED: answers or processing not as expected", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
