"""A load generator for the webhook benchmarks that is not the bottleneck: raw sockets, keep-alive.

Requests are signed Shopify `orders/updated` deliveries built once, as bytes, before the clock
starts: the body (a REST-shaped order of about 1.5 KB) and the headers Shopify sends
(`X-Shopify-Topic`, `-Hmac-Sha256` made with bot.shopify.signing.webhook_hmac, `-Shop-Domain`,
`-API-Version`, `-Webhook-Id`, `-Event-Id`, `-Triggered-At`, Shopify's User-Agent and Accept
headers). A share of them (`duplicates`) resends an earlier delivery with its webhook id, as
Shopify's retries do: the bot must answer those 200 "duplicate" and not process them again.

`LoadClients` keeps PROCESSES spawned processes (each its own interpreter and GIL), each driving
CONNECTIONS keep-alive HTTP/1.1 connections from one selector loop: a connection sends its next
request as soon as the answer to the previous one is in, so the load is "as fast as the server
answers" with a fixed concurrency. An answer is parsed only as far as needed: the status line,
Content-Length and whether the body says "accepted" or "duplicate". Request k goes to connection
k mod (processes × connections), so a redelivery is sent after its original in all but the
closest cases. Each process reports the latency of every request, the answers by kind, the
monotonic time of its first send and last answer, and the CPU time it used, so the benchmark can
show that the client was not the limit.

    clients = LoadClients(processes=4, connections=2)
    result = clients.run(port, [delivery.request() for delivery in deliveries(3000, 0.1)])
    clients.close()
"""

from __future__ import annotations

import json
import multiprocessing
import random
import selectors
import socket
import time
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from typing import Any

from bot.shopify.signing import webhook_hmac

SHOP = "bench-shop.myshopify.com"
SECRET = "bench-webhook-secret"
PATH = "/shopify/default/webhooks"
API_VERSION = "2025-10"
FIRST_UPDATE = datetime(2026, 11, 22, 0, 5, tzinfo=timezone.utc)  # updated_at of an order's first update
SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    duplicate: bool

    def request(self, host: str = "127.0.0.1") -> bytes:
        """The whole HTTP/1.1 request, keep-alive, as bytes."""
        head = [f"POST {PATH} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(self.body)}",
                *(f"{name}: {value}" for name, value in self.headers.items())]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def order_body(number: int, updated: datetime = FIRST_UPDATE) -> dict[str, Any]:
    """A REST-shaped order (about 1.5 KB, like a small real one); its address and items never change."""
    order_id = 6_100_000_000_000 + number
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": f"#{1000 + number}",
        "created_at": "2026-11-22T09:00:00+09:00", "updated_at": updated.isoformat().replace("+00:00", "Z"),
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


def deliveries(count: int, duplicates: float, seed: int = 7, *, orders: int | None = None, first_order: int = 1,
               epoch: int = 0) -> list[Delivery]:
    """`count` signed `orders/updated` deliveries; a `duplicates` share resends an earlier one (same webhook id).

    orders=None: every unique delivery is the first update of a new order (first_order, first_order + 1, …).
    orders=N: the unique deliveries cycle over N orders, the k-th update of an order `k` seconds after
    `epoch` hours past FIRST_UPDATE (a later epoch is newer than every update of an earlier one)."""
    rng = random.Random(seed)
    made: list[Delivery] = []
    unique: list[Delivery] = []
    for _ in range(count):
        if unique and rng.random() < duplicates:
            original = rng.choice(unique)
            made.append(Delivery(original.body, original.headers, True))
            continue
        index = len(unique)
        number = first_order + (index if orders is None else index % orders)
        updated = FIRST_UPDATE + timedelta(hours=epoch, seconds=0 if orders is None else index // orders)
        body = json.dumps(order_body(number, updated), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"User-Agent": "Shopify-Captain-Hook", "Accept": "*/*",
                   "Accept-Encoding": "gzip;q=1.0,deflate;q=0.6,identity;q=0.3",
                   "Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
                   "X-Shopify-Hmac-Sha256": webhook_hmac(body, SECRET), "X-Shopify-Shop-Domain": SHOP,
                   "X-Shopify-API-Version": API_VERSION,
                   "X-Shopify-Webhook-Id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "X-Shopify-Event-Id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "X-Shopify-Triggered-At": updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        delivery = Delivery(body, headers, False)
        unique.append(delivery)
        made.append(delivery)
    return made


def parse_answer(buffer: bytes) -> tuple[int, bytes, int, bool] | None:
    """(status, body, bytes used, whether the server closes the connection) of the first complete HTTP
    answer in `buffer`; None while incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].lower()
    status = int(head[9:12])
    length = 0
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:line_end if line_end >= 0 else len(head)])
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return status, buffer[end + 4:total], total, b"\r\nconnection: close" in head


def answer_kind(status: int, body: bytes) -> str:
    """"accepted", "duplicate", or the status for anything else (a bare 200 is "200")."""
    if status == 200:
        if b'"accepted"' in body:
            return "accepted"
        if b'"duplicate"' in body:
            return "duplicate"
    return str(status)


@dataclass
class LoadResult:
    """One run of all the client processes."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    answers: dict[str, int] = field(default_factory=dict)
    first: float = 0.0  # time.monotonic() of the first send (all processes)
    last: float = 0.0  # time.monotonic() of the last answer
    client_cpu: float = 0.0  # CPU seconds of all the client processes during the run
    reconnects: int = 0

    @property
    def wall(self) -> float:
        return self.last - self.first

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else 0.0

    def latency_ms(self, share: float) -> float:
        return percentile(self.latencies, share) * 1000


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0.5 = median, 1.0 = max)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class LoadClients:
    """PROCESSES client processes of CONNECTIONS keep-alive connections each; `run()` one load, `close()`."""

    def __init__(self, processes: int = 4, connections: int = 2):
        self.processes, self.connections = processes, connections
        self._pipes: list[Connection] = []
        self._children = []
        for number in range(processes):
            mine, theirs = SPAWN.Pipe()
            child = SPAWN.Process(target=_client_process, args=(theirs,), name=f"loadgen-{number}", daemon=True)
            child.start()
            self._pipes.append(mine)
            self._children.append(child)

    def run(self, port: int, requests: list[bytes]) -> LoadResult:
        """Send `requests` to 127.0.0.1:`port` (request k on connection k mod all), as fast as answered."""
        slots = self.processes * self.connections
        for number, pipe in enumerate(self._pipes):
            lanes = [requests[lane::slots] for lane in range(number * self.connections,
                                                             (number + 1) * self.connections)]
            pipe.send((port, lanes))
        for pipe in self._pipes:  # every process connected: start together
            if pipe.recv() != "ready":
                raise RuntimeError("a load client could not connect")
        for pipe in self._pipes:
            pipe.send("go")
        result = LoadResult(first=float("inf"))
        for pipe in self._pipes:
            part = pipe.recv()
            result.latencies.extend(part["latencies"])
            for kind, count in part["answers"].items():
                result.answers[kind] = result.answers.get(kind, 0) + count
            result.first, result.last = min(result.first, part["first"]), max(result.last, part["last"])
            result.client_cpu += part["cpu"]
            result.reconnects += part["reconnects"]
        return result

    def close(self) -> None:
        for pipe, child in zip(self._pipes, self._children):
            try:
                pipe.send(None)
            except OSError:
                pass
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()

    def __enter__(self) -> "LoadClients":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Lane:
    """One keep-alive connection and the requests it sends in turn."""

    def __init__(self, port: int, requests: list[bytes]):
        self.port, self.requests, self.next, self.buffer, self.sent_at = port, requests, 0, b"", 0.0
        self.reconnects = 0
        self.sock = self.connect()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(self) -> bool:
        """Send the lane's next request; False if the server had closed the connection."""
        self.sent_at = time.perf_counter()
        try:
            self.sock.sendall(self.requests[self.next])
        except OSError:
            return False
        return True

    def reconnect(self) -> None:
        """A new connection, and the request in hand sent again (the server closed the old one unanswered)."""
        self.sock.close()
        self.sock, self.buffer, self.reconnects = self.connect(), b"", self.reconnects + 1
        self.sock.sendall(self.requests[self.next])


def _client_process(pipe: Connection) -> None:
    """A client process: for each (port, lanes) it is sent, connect, wait for "go", drive, report."""
    while (job := pipe.recv()) is not None:
        port, lanes = job
        try:
            active = [_Lane(port, requests) for requests in lanes if requests]
        except OSError:
            pipe.send("failed")
            continue
        pipe.send("ready")
        pipe.recv()
        pipe.send(_drive(active))
        for lane in active:
            lane.sock.close()


def _drive(lanes: list[_Lane]) -> dict[str, Any]:
    """Send every lane's requests, each after the previous answer; latencies, answers, times, CPU used."""
    selector = selectors.DefaultSelector()
    latencies, answers = array("d"), {}
    cpu, first = time.process_time(), time.monotonic()
    for lane in lanes:
        if not lane.send():
            lane.reconnect()
        selector.register(lane.sock, selectors.EVENT_READ, lane)
    waiting = len(lanes)
    while waiting:
        for key, _ in selector.select():
            lane: _Lane = key.data
            try:
                chunk = lane.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:  # closed before answering: the request again, on a new connection
                selector.unregister(key.fileobj)
                lane.reconnect()
                selector.register(lane.sock, selectors.EVENT_READ, lane)
                continue
            lane.buffer += chunk
            answer = parse_answer(lane.buffer)
            if answer is None:
                continue
            latencies.append(time.perf_counter() - lane.sent_at)
            status, body, used, closing = answer
            kind = answer_kind(status, body)
            answers[kind] = answers.get(kind, 0) + 1
            lane.buffer = lane.buffer[used:]
            lane.next += 1
            if lane.next == len(lane.requests):
                selector.unregister(lane.sock)
                waiting -= 1
            elif closing or not lane.send():  # "Connection: close" (not keep-alive): counted as a reconnect
                selector.unregister(lane.sock)
                lane.reconnect()
                selector.register(lane.sock, selectors.EVENT_READ, lane)
    last = time.monotonic()
    return {"latencies": latencies.tolist(), "answers": answers, "first": first, "last": last,
            "cpu": time.process_time() - cpu, "reconnects": sum(lane.reconnects for lane in lanes)}
