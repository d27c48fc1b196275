"""Benchmark: a `shopify-orders` digest with both comparison windows over 10,000 orders.

The Shopify stand-in runs in its own process (spawned, its own GIL: bench/standin.py), answering after LATENCY
seconds and keeping Shopify's leaky cost bucket (BUCKET points, refilled at RESTORE points/s).
Its shop holds ORDERS orders spread evenly over the three windows the digest reads: today
08:00–20:00 (in the shop's zone), and the same hours yesterday and a week ago. Each run is one
`jobs.shopify_orders.collect` — the digest and its two comparisons, one client — on a full bucket.

The floor is a real limit: a run must pay its total actual query cost from a bucket that starts
full and refills at the restore rate, so it cannot end before
(total actual cost − bucket) / restore rate; nothing is added for latency or work. Printed: the
requests made, the costs, THROTTLED answers (the goal is none), and min/median/max wall time over
the runs next to that floor (goal: at most 1.1×).

As in bench/orders.py, by default the client and the stand-in share a simulated clock (the stand-in
process reads an offset the client's throttle waits advance, on the system-wide monotonic clock):
a wait passes instantly, latency and all other work pass in real time, and the bucket refills by
that same clock. `--real-time` sleeps for real (try `--restore-rate 1000`: Shopify Plus).

    python bench/digest.py [--orders 10000] [--runs 3] [--latency 0.05] [--restore-rate 100] [--bucket 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

from bot.config.model import JobConfig
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.client import ShopifyHttp
from bot.shopify.graphql import ShopifyGraphQL
from bot.util.http import new_session
from bot.util.retry import RetryPolicy
from jobs.base import JobContext
from jobs.digest_compare import COMPARISONS, shifted
from jobs.shopify_orders import ShopifyOrdersParams, collect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import SPAWN, FixedToken, SharedClock, StandinProcess  # noqa: E402

SHOP = "bench-shop.myshopify.com"
ZONE = "Asia/Seoul"


class State:
    def get(self, key: str, default: Any = None) -> Any:
        return default

    def set(self, key: str, value: Any) -> None:
        pass


def windows(end: datetime) -> list[tuple[datetime, datetime]]:
    """The digest's window [end − 12 h, end) and its comparisons, in the configured order."""
    start = end - timedelta(hours=12)
    return [(start, end)] + [(shifted(start, c.days), shifted(end, c.days)) for c in COMPARISONS.values()]


def build(args: dict[str, Any]) -> tuple[ShopifySandbox, Any, str]:
    """In the stand-in's process: the shop with its orders over the three windows; greets with its token."""
    offset = args["offset"]
    sandbox = ShopifySandbox(clock=lambda: time.monotonic() + offset.value, latency=args["latency"],
                             bucket_size=args["bucket"], restore_rate=args["restore_rate"])
    sandbox.add_shop(SHOP, timezone=ZONE)
    spans = windows(args["end"])
    for i, (lo, hi) in enumerate(spans):
        count = args["orders"] // len(spans) + (1 if i < args["orders"] % len(spans) else 0)
        sandbox.add_orders(SHOP, count, start=lo, every=(hi - lo) / count, line_items=args["order_line_items"],
                           cancelled_every=20, refunded_every=15)
    return sandbox, sandbox.wsgi_app(), sandbox.legacy_token(SHOP)


def take_records(sandbox: ShopifySandbox, payload: Any = None) -> list[dict[str, Any]]:
    """A query: the GraphQL requests' costs since the last call, forgotten afterwards."""
    records = [{k: r[k] for k in ("requested_cost", "actual_cost", "throttled")} for r in sandbox.graphql_requests]
    sandbox.graphql_requests.clear()
    return records


def one_run(url: str, token: str, timing: SharedClock, end: datetime, line_items: int) -> tuple[float, dict]:
    http = ShopifyHttp(new_session(), retry=RetryPolicy(attempts=3, base_delay=0.1))
    gql = ShopifyGraphQL(http, origin=f"{url}/{{shop}}", shop=SHOP, api_version="2025-10",
                         tokens=FixedToken(token), clock=timing.clock, sleep=timing.sleep)
    job = JobConfig(name="digest", kind="shopify-orders", at=("evening",), to=(), template=None,
                    params=ShopifyOrdersParams(SHOP, line_items=line_items, compare=("day", "week")))
    start = end - timedelta(hours=12)
    ctx = JobContext(state=State(), http=requests.Session(), now=end, since=start, until=end,
                     shopify=lambda shop: gql)
    began = timing.clock()
    outcome = collect(job, ctx)
    return timing.clock() - began, outcome.context


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders over the three windows")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--restore-rate", type=float, default=100.0)
    parser.add_argument("--bucket", type=int, default=2000)
    parser.add_argument("--line-items", type=int, default=10, help="lineItems(first: N) the digest asks per order")
    parser.add_argument("--order-line-items", type=int, default=10, help="line items each stand-in order has")
    parser.add_argument("--port", type=int, default=0, help="the stand-in's port (0: any free one)")
    parser.add_argument("--real-time", action="store_true", help="sleep for real during throttle waits")
    args = parser.parse_args()

    offset = SPAWN.Value("d", 0.0)
    timing = SharedClock(offset, args.real_time)
    end = datetime.now(ZoneInfo(ZONE)).replace(hour=20, minute=0, second=0, microsecond=0) - timedelta(days=1)
    walls: list[float] = []
    floors: list[float] = []
    with StandinProcess(build, dict(vars(args), offset=offset, end=end), port=args.port,
                        name="shopify-standin") as standin:
        url, token = standin.url, standin.greeting
        print(f"orders: {args.orders:,} over 3 windows of 12 h ({ZONE}); latency {args.latency * 1000:.0f} ms, "
              f"bucket {args.bucket}, restore {args.restore_rate:g} points/s; stand-in in process {standin.pid}; "
              f"{'real' if args.real_time else 'simulated'} throttle waits")
        for run in range(1, args.runs + 1):
            if run > 1:  # a full bucket again, as at the first run
                timing.sleep(args.bucket / args.restore_rate + 1)
            timing.slept = 0.0
            wall, c = one_run(url, token, timing, end, args.line_items)
            records = standin.ask(take_records)
            requested = sum(r["requested_cost"] or 0 for r in records if not r["throttled"])
            actual = sum(r["actual_cost"] or 0 for r in records)
            throttled = sum(1 for r in records if r["throttled"])
            floor = max(0.0, actual - args.bucket) / args.restore_rate
            walls.append(wall)
            floors.append(floor)
            counts = [c["count"]] + [w["count"] for w in c["compare"]]
            print(f"run {run}: orders {'+'.join(map(str, counts))} = {sum(counts):,}; requests {len(records)}; "
                  f"requested cost {requested:,}; actual cost {actual:,}; THROTTLED {throttled}; "
                  f"throttle waits {timing.slept:.2f} s; wall {wall:.2f} s; floor {floor:.2f} s "
                  f"({wall / floor if floor else float('inf'):.3f}x)")
            print(f"        {c['compare_text']['revenue']} | {c['compare_text']['count']}")
    floor = statistics.median(floors)
    ratios = sorted(w / f for w, f in zip(walls, floors) if f)
    print(f"wall time over {len(walls)} runs: min {min(walls):.2f} s, median {statistics.median(walls):.2f} s, "
          f"max {max(walls):.2f} s; floor {floor:.2f} s = (actual cost − bucket {args.bucket}) / "
          f"{args.restore_rate:g} points/s")
    print(f"ratio to the floor: min {ratios[0]:.3f}x, median {statistics.median(ratios):.3f}x, "
          f"max {ratios[-1]:.3f}x (goal: ≤ 1.1x)")
    return 0 if ratios[-1] <= 1.1 else 1


if __name__ == "__main__":
    sys.exit(main())
