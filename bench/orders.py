"""Benchmark: pull 10,000 orders from the Shopify stand-in through `fetch_orders`.

The Shopify stand-in runs in its own process (spawned, its own GIL: bench/standin.py), answering
after LATENCY seconds and keeping Shopify's leaky cost bucket (BUCKET points, refilled at RESTORE
points/s, drained by each query's ACTUAL cost: Shopify refunds requested − actual). Each run pulls
every order, one client, on a full bucket.

Two floors, each a real limit, and the run is judged against the larger:
- the throttle floor: the run must pay its total actual query cost from a bucket that starts full
  and refills at the restore rate, so it cannot end before (total actual cost − bucket) / restore
  rate; nothing is added for latency (Shopify refills the bucket while answers travel);
- the network floor: requests × latency, since the client makes its requests one after another.
Printed per run: orders pulled, requests, requested and actual cost, THROTTLED answers (the goal
is none), throttle waits, wall time and its ratio to max(throttle floor, network floor); then
min / median / max over the runs (goal: every run at most 1.2× that floor).

At 100 points/s the throttle alone imposes about 25 minutes for 10,000 orders, so by default the
client and the stand-in share a simulated clock (the stand-in's process reads an offset that the
client's throttle waits advance, on the system-wide monotonic clock): a wait passes instantly,
latency and all other work pass in real time, and the bucket refills by that same clock, so pacing
is judged exactly as with real sleeps. `--real-time` sleeps for real.

    python bench/orders.py [--orders 10000] [--runs 3] [--latency 0.05] [--restore-rate 100] [--bucket 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.client import ShopifyHttp
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.orders_query import fetch_orders
from bot.util.http import new_session
from bot.util.retry import RetryPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import SPAWN, FixedToken, SharedClock, StandinProcess, spread  # noqa: E402

SHOP = "bench-shop.myshopify.com"
KST = timezone(timedelta(hours=9))
GOAL = 1.2


def build(args: dict[str, Any]) -> tuple[ShopifySandbox, Any, str]:
    """In the stand-in's process: the shop with its orders; greets with the shop's token."""
    offset = args["offset"]
    sandbox = ShopifySandbox(clock=lambda: time.monotonic() + offset.value, latency=args["latency"],
                             bucket_size=args["bucket"], restore_rate=args["restore_rate"])
    sandbox.add_shop(SHOP)
    sandbox.add_orders(SHOP, args["orders"], start=args["start"], every=timedelta(days=29) / args["orders"],
                       line_items=args["order_line_items"])
    return sandbox, sandbox.wsgi_app(), sandbox.legacy_token(SHOP)


def take_records(sandbox: ShopifySandbox, payload: Any = None) -> list[dict[str, Any]]:
    """A query: the GraphQL requests' costs since the last call, forgotten afterwards."""
    records = [{k: r[k] for k in ("requested_cost", "actual_cost", "throttled")} for r in sandbox.graphql_requests]
    sandbox.graphql_requests.clear()
    return records


def one_run(url: str, token: str, timing: SharedClock, start: datetime, line_items: int) -> tuple[int, float]:
    """Orders pulled and the wall time (on the shared clock) of one full pull by a fresh client."""
    http = ShopifyHttp(new_session(), retry=RetryPolicy(attempts=3, base_delay=0.1))
    gql = ShopifyGraphQL(http, origin=f"{url}/{{shop}}", shop=SHOP, api_version="2025-10",
                         tokens=FixedToken(token), clock=timing.clock, sleep=timing.sleep)
    began = timing.clock()
    pulled = sum(1 for _ in fetch_orders(gql, created_from=start - timedelta(minutes=1), line_items=line_items))
    return pulled, timing.clock() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--restore-rate", type=float, default=100.0)
    parser.add_argument("--bucket", type=int, default=2000)
    parser.add_argument("--line-items", type=int, default=10, help="lineItems(first: N) asked per order")
    parser.add_argument("--order-line-items", type=int, default=10, help="line items each stand-in order has")
    parser.add_argument("--port", type=int, default=0, help="the stand-in's port (0: any free one)")
    parser.add_argument("--real-time", action="store_true", help="sleep for real during throttle waits")
    args = parser.parse_args()

    offset = SPAWN.Value("d", 0.0)
    timing = SharedClock(offset, args.real_time)
    start = datetime.now(KST) - timedelta(days=30)
    walls: list[float] = []
    ratios: list[float] = []
    ok = True
    with StandinProcess(build, dict(vars(args), offset=offset, start=start), port=args.port,
                        name="shopify-standin") as standin:
        print(f"orders: {args.orders:,}; latency {args.latency * 1000:.0f} ms, bucket {args.bucket}, "
              f"restore {args.restore_rate:g} points/s; stand-in in process {standin.pid}; "
              f"{'real' if args.real_time else 'simulated'} throttle waits")
        for run in range(1, args.runs + 1):
            if run > 1:  # a full bucket again, as at the first run
                timing.sleep(args.bucket / args.restore_rate + 1)
            timing.slept = 0.0
            pulled, wall = one_run(standin.url, standin.greeting, timing, start, args.line_items)
            records = standin.ask(take_records)
            requested = sum(r["requested_cost"] or 0 for r in records if not r["throttled"])
            actual = sum(r["actual_cost"] or 0 for r in records)
            throttled = sum(1 for r in records if r["throttled"])
            throttle_floor = max(0.0, actual - args.bucket) / args.restore_rate
            network_floor = len(records) * args.latency
            floor = max(throttle_floor, network_floor)
            walls.append(wall)
            ratios.append(wall / floor if floor else float("inf"))
            ok = ok and pulled == args.orders and throttled == 0
            print(f"run {run}: orders {pulled:,}/{args.orders:,}; requests {len(records)}; requested cost "
                  f"{requested:,}; actual cost {actual:,}; THROTTLED {throttled}; throttle waits "
                  f"{timing.slept:.2f} s; wall {wall:.2f} s")
            print(f"        floors: throttle {throttle_floor:.2f} s = ({actual:,} − {args.bucket}) / "
                  f"{args.restore_rate:g}; network {network_floor:.2f} s = {len(records)} x "
                  f"{args.latency * 1000:.0f} ms; wall / max = {ratios[-1]:.3f}x")
    print(f"wall time over {len(walls)} runs: {spread(walls, '{:.2f}', ' s')}")
    print(f"ratio to max(throttle floor, network floor): {spread(ratios, unit='x')} (goal: ≤ {GOAL}x)")
    return 0 if ok and max(ratios) <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
