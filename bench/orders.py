"""Benchmark: pull 10,000 orders from the Shopify stand-in through `fetch_orders`.

The stand-in answers after LATENCY seconds and keeps Shopify's leaky cost bucket (BUCKET
points, refilled at RESTORE points/s). The floor is the time the throttle itself imposes,
max(0, total requested cost − bucket) / restore rate, plus one latency per request; the
figures printed are the requests made, the cost spent, the THROTTLED answers seen (the goal
is none) and the wall time next to that floor (goal: at most 1.2×).

At 100 points/s the throttle alone imposes about 25 minutes for 10,000 orders, so by
default the client and the stand-in share a simulated clock: a throttle wait advances it
instantly instead of sleeping, while latency and all other work pass in real time. The
bucket refills by that same clock, so pacing is judged exactly as with real sleeps.
`--real-time` sleeps for real.

    python bench/orders.py [--orders 10000] [--latency 0.05] [--restore-rate 100] [--bucket 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone

from bot.sandbox.server import serve
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.client import ShopifyHttp
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.orders_query import fetch_orders
from bot.util.http import new_session
from bot.util.retry import RetryPolicy

SHOP = "bench-shop.myshopify.com"
KST = timezone(timedelta(hours=9))


class SimulatedTime:
    """A monotonic clock in which `sleep` passes instantly: real elapsed time + slept time."""

    def __init__(self) -> None:
        self.slept = 0.0

    def clock(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += max(0.0, seconds)


class RealTime:
    slept = 0.0

    def clock(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.slept += max(0.0, seconds)
        time.sleep(seconds)


class FixedToken:
    """A ShopTokenSource holding one legacy token."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def renew_refused(self) -> bool:
        return False

    def rejected(self, reason: str) -> None:
        raise SystemExit(f"the stand-in refused the token: {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--restore-rate", type=float, default=100.0)
    parser.add_argument("--bucket", type=int, default=2000)
    parser.add_argument("--line-items", type=int, default=10, help="lineItems(first: N) asked per order")
    parser.add_argument("--order-line-items", type=int, default=10, help="line items each stand-in order has")
    parser.add_argument("--real-time", action="store_true", help="sleep for real during throttle waits")
    args = parser.parse_args()

    timing = RealTime() if args.real_time else SimulatedTime()
    sandbox = ShopifySandbox(clock=timing.clock, latency=args.latency, bucket_size=args.bucket,
                             restore_rate=args.restore_rate)
    sandbox.add_shop(SHOP)
    start = datetime.now(KST) - timedelta(days=30)
    sandbox.add_orders(SHOP, args.orders, start=start, every=timedelta(days=29) / args.orders,
                       line_items=args.order_line_items)
    token = sandbox.legacy_token(SHOP)

    with serve(sandbox.wsgi_app()) as server:
        http = ShopifyHttp(new_session(), retry=RetryPolicy(attempts=3, base_delay=0.1))
        gql = ShopifyGraphQL(http, origin=f"{server.url}/{{shop}}", shop=SHOP, api_version="2025-10",
                             tokens=FixedToken(token), clock=timing.clock, sleep=timing.sleep)
        began = timing.clock()
        pulled = sum(1 for _ in fetch_orders(gql, created_from=start - timedelta(minutes=1),
                                             line_items=args.line_items))
        wall = timing.clock() - began

    records = sandbox.graphql_requests
    requested = sum(r["requested_cost"] or 0 for r in records if not r["throttled"])
    actual = sum(r["actual_cost"] or 0 for r in records)
    throttled = sum(1 for r in records if r["throttled"])
    throttle_floor = max(0.0, requested - args.bucket) / args.restore_rate
    floor = throttle_floor + len(records) * args.latency
    print(f"orders: {pulled}/{args.orders}; latency {args.latency * 1000:.0f} ms, bucket {args.bucket}, "
          f"restore {args.restore_rate:g} points/s; {'real' if args.real_time else 'simulated'} throttle waits")
    print(f"requests made:      {len(records)} (client counted {gql.requests_made})")
    print(f"requested cost:     {requested:,}  (of answered queries)")
    print(f"actual cost:        {actual:,}  (client counted {gql.cost_spent:,.0f})")
    print(f"THROTTLED answers:  {throttled} (client saw {gql.throttled_seen})")
    print(f"throttle waits:     {timing.slept:.2f} s")
    print(f"wall time:          {wall:.2f} s   (floor: {floor:.2f} s = {throttle_floor:.2f} s throttle + "
          f"{len(records)} x {args.latency * 1000:.0f} ms; {wall / floor:.3f}x)")
    if actual < requested:
        # Shopify refunds requested − actual: the bucket then drains by actual cost, not requested.
        actual_floor = max(0.0, actual - args.bucket) / args.restore_rate + len(records) * args.latency
        print(f"                    (actual-cost floor: {actual_floor:.2f} s; {wall / actual_floor:.3f}x)")
    ok = pulled == args.orders and throttled == 0 and wall <= 1.2 * floor
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
