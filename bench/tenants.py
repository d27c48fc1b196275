"""Benchmark: many merchants on one deployment — N shops, each with its own Kakao login and settings
(three recipients: "me" and two friends; an order digest at one slot), served by several `python -m bot run`
instances on one scratch PostgreSQL database, with the Kakao and Shopify stand-ins in processes of their own
at `--latency` seconds a call.

Set-up (not timed): N shops with orders in the Shopify stand-in, a token of each shop and a Kakao login per
merchant stored in the bot's database, each merchant's settings saved with the digest at the next whole
minute at least `--lead` seconds away (local time, Asia/Seoul) — the slot. Then the instances start; at the
slot every instance's scheduler fires every merchant's digest, and the deliveries table decides who sends.

Printed: every message delivered exactly once (sent rows = N × 3, the stand-in's received messages the
same, no status but `sent`), the delay of each shop's last message after the slot (p50 / p99 / max; goal:
the last within 60 s), the Kakao calls made (message sends, friends-list pages) and Shopify GraphQL queries
with their cost,
the app-wide count of the day against Kakao's 30,000, and each instance's RSS with N tenants loaded (before
the slot and after it).

Each merchant is a user of the Kakao stand-in with two friends of their own (KakaoSandbox users): their own
"me", friends list and sender cap, as on Kakao; the stand-in's token-issuance limits are raised (they are
per user on Kakao, and N logins come from one process here).

    python bench/tenants.py [--shops 1000] [--instances 2] [--latency 0.05] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import StandinProcess, free_port, rss_kb, scratch_postgres, spread  # noqa: E402

from bot.app import App, load_config  # noqa: E402
from bot.config.secrets import Secrets  # noqa: E402
from bot.kakao.quota import APP_DAILY  # noqa: E402
from bot.sandbox.kakao import KakaoSandbox  # noqa: E402
from bot.sandbox.shopify import ShopifySandbox  # noqa: E402
from bot.store.merchant_settings import merchant_account  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEOUL = ZoneInfo("Asia/Seoul")
GOAL_SECONDS = 60.0
CONFIG = """\
[database]
url = "{database}"

[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[kakao]
redirect_uri = "http://127.0.0.1:{port}/kakao/callback"
auth_url = "{kakao}"
api_url = "{kakao}"
web_domain = "http://127.0.0.1:{port}"

[shopify]
origin = "{shopify}/{{shop}}"
"""


def shop_name(number: int) -> str:
    return f"tenant-{number:05d}.myshopify.com"


# -- the stand-ins' processes -------------------------------------------------------------------------------


def user_of(number: int) -> str:
    return f"merchant-{number:05d}"


def friends_of(number: int) -> tuple[str, str]:
    return f"t{number:05d}-staff-a", f"t{number:05d}-staff-b"


def build_kakao(args: dict[str, Any]) -> tuple[KakaoSandbox, Any, dict[str, str]]:
    sandbox = KakaoSandbox()
    for number in range(args["shops"]):
        for staff, uuid in enumerate(friends_of(number)):
            sandbox.add_friend(f"직원{staff + 1}", uuid=uuid, of=user_of(number))
    sandbox.refresh_limit_per_hour = sandbox.access_limit_per_10min = 10 * args["shops"]
    return sandbox, sandbox.wsgi_app(), {"rest_api_key": sandbox.rest_api_key,
                                         "client_secret": sandbox.client_secret or ""}


def build_shopify(args: dict[str, Any]) -> tuple[ShopifySandbox, Any, list[str]]:
    sandbox = ShopifySandbox()
    start = datetime.now(timezone.utc) - timedelta(hours=20)
    tokens = []
    for number in range(args["shops"]):
        shop = shop_name(number)
        sandbox.add_shop(shop, name=f"상점 {number}")
        sandbox.add_orders(shop, 3, start=start, every=timedelta(hours=5))
        tokens.append(sandbox.legacy_token(shop))
    return sandbox, sandbox.wsgi_app(), tokens


def set_latency(sandbox: Any, seconds: float) -> None:
    sandbox.latency = seconds


def issue_codes(sandbox: KakaoSandbox, payload: tuple[str, int]) -> list[str]:
    """A query: each merchant's authorization code, as if they had just consented."""
    redirect_uri, count = payload
    return [sandbox.issue_code(redirect_uri, user=user_of(number)) for number in range(count)]


def kakao_tally(sandbox: KakaoSandbox, payload: Any = None) -> dict[str, int]:
    return {"memo": sandbox.count("/v2/api/talk/memo/default/send"),
            "friends_send": sandbox.count("/v1/api/talk/friends/message/default/send"),
            "friends_pages": sandbox.count("/v1/api/talk/friends"),
            "received": sum(len(sandbox.received(key)) for number in range(payload)
                            for key in (f"me:{user_of(number)}", *friends_of(number)))}


def shopify_tally(sandbox: ShopifySandbox, payload: Any = None) -> dict[str, int]:
    """A query: GraphQL queries answered, their requested and actual cost (points), THROTTLED answers."""
    records = sandbox.graphql_requests
    return {"graphql": len(records), "requested": sum(r["requested_cost"] or 0 for r in records),
            "actual": sum(r["actual_cost"] or 0 for r in records), "throttled": sum(r["throttled"] for r in records)}


# -- the deployment -------------------------------------------------------------------------------------------


class Instance:
    """`python -m bot run` with the deployment's config, in a child process."""

    def __init__(self, folder: Path, config: str, env: dict[str, str], port: int):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.toml").write_text(config, encoding="utf-8")
        self.log, self.port = folder / "run.log", port
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "--config", "config.toml", "run"], cwd=folder,
                                        env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit(f"`run` did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def rss_mb(self) -> float:
        return rss_kb(self.process.pid) / 1024

    def close(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL after 60 s."""
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def prepare(args: argparse.Namespace, url: str, kakao: StandinProcess, shopify: StandinProcess,
            tokens: list[str], secrets: Secrets, folder: Path) -> datetime:
    """Tokens, logins and settings of every merchant stored; the slot their digests share."""
    config = folder / "setup.toml"
    config.write_text(CONFIG.format(database=url, port=1, kakao=kakao.url, shopify=shopify.url), encoding="utf-8")
    app = App(load_config(config), secrets)
    try:
        app.db.migrate()
        codes = kakao.ask(issue_codes, (app.config.kakao.redirect_uri, args.shops))
        for number, (token, code) in enumerate(zip(tokens, codes)):
            shop = shop_name(number)
            app.shopify_tokens.store_legacy("default", shop, token, "read_orders")
            app.kakao_tokens.store_login(merchant_account("default", shop), app.kakao_auth.exchange_code(code))
        now = datetime.now(SEOUL)
        slot = (now + timedelta(seconds=args.lead + 60)).replace(second=0, microsecond=0)
        for number in range(args.shops):
            document = {"recipients": ["me", *(f"uuid:{uuid}" for uuid in friends_of(number))],
                        "digest": {"at": [f"{slot:%H:%M}"]}}
            app.merchant_settings.save("default", shop_name(number), document, expected_version=0)
        return slot
    finally:
        app.close()


def wait_for_deliveries(url: str, expected: int, slot: datetime, timeout: float) -> dict[str, Any]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    deadline = slot.timestamp() + timeout
    try:
        while True:
            with engine.connect() as connection:
                sent = connection.execute(text("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")).scalar_one()
            if sent >= expected or time.time() > deadline:
                break
            time.sleep(0.5)
        with engine.connect() as connection:
            statuses = dict(connection.execute(text("SELECT status, COUNT(*) FROM deliveries GROUP BY status")).all())
            last = connection.execute(text("SELECT sender, MAX(updated_at), COUNT(*) FROM deliveries "
                                           "WHERE status = 'sent' GROUP BY sender")).all()
    finally:
        engine.dispose()
    delays = sorted((row[1] - slot).total_seconds() for row in last)
    return {"statuses": statuses, "delays": delays, "shops_complete": sum(1 for row in last if row[2] == 3)}


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shops", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--lead", type=float, default=20.0,
                        help="seconds at least between the instances' start and the slot")
    parser.add_argument("--postgres", default=os.environ.get("BOT_TEST_POSTGRES_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-tenants-"))
    key = Fernet.generate_key().decode()
    with StandinProcess(build_kakao, {"shops": args.shops}, name="kakao-standin") as kakao, \
            StandinProcess(build_shopify, {"shops": args.shops}, name="shopify-standin") as shopify, \
            scratch_postgres(args.postgres, "bench_tenants_") as url:
        secrets = Secrets({"BOT_SECRET_KEY": key, "KAKAO_REST_API_KEY": kakao.greeting["rest_api_key"],
                           "KAKAO_CLIENT_SECRET": kakao.greeting["client_secret"]})
        started = time.monotonic()
        slot = prepare(args, url, kakao, shopify, shopify.greeting, secrets, folder)
        print(f"{args.shops} merchants stored in {time.monotonic() - started:.1f} s; their digests at "
              f"{slot:%H:%M:%S %Z} (local), {args.instances} instance(s), stand-ins at {args.latency * 1000:.0f} ms")
        kakao.ask(set_latency, args.latency)
        shopify.ask(set_latency, args.latency)
        env = {k: v for k, v in os.environ.items() if k not in ("BOT_CONFIG", "BOT_DATABASE_URL", "NOTIFY_SOCKET")}
        env.update(BOT_SECRET_KEY=key, KAKAO_REST_API_KEY=kakao.greeting["rest_api_key"],
                   KAKAO_CLIENT_SECRET=kakao.greeting["client_secret"], SHOPIFY_API_KEY="tenants-client-id",
                   SHOPIFY_API_SECRET="tenants-secret-0123456789abcdef0123", PYTHONPATH=str(ROOT))
        instances = []
        try:
            for number in range(args.instances):
                port = free_port()
                instances.append(Instance(folder / f"run{number}", CONFIG.format(
                    database=url, port=port, kakao=kakao.url, shopify=shopify.url), env, port))
            loaded = [instance.rss_mb() for instance in instances]
            outcome = wait_for_deliveries(url, args.shops * 3, slot, timeout=180)
            after = [instance.rss_mb() for instance in instances]
        finally:
            for instance in instances:
                instance.close()
        report(args, outcome, kakao.ask(kakao_tally, args.shops), shopify.ask(shopify_tally), loaded, after)
    return 0


def report(args: argparse.Namespace, outcome: dict[str, Any], kakao: dict[str, int], shopify: dict[str, int],
           loaded: list[float], after: list[float]) -> None:
    expected, delays, statuses = args.shops * 3, outcome["delays"], outcome["statuses"]
    sent = statuses.get("sent", 0)
    print(f"deliveries: {statuses} (expected {expected} sent); shops with all 3 sent: {outcome['shops_complete']}"
          f"/{args.shops}; the Kakao stand-in received {kakao['received']}: "
          + ("exactly once" if sent == expected == kakao["received"] and len(statuses) == 1 else "NOT exactly once"))
    if delays:
        print(f"last message of each shop after the slot: p50 {percentile(delays, 0.5):.1f} s, p99 "
              f"{percentile(delays, 0.99):.1f} s, max {delays[-1]:.1f} s (goal: the last within {GOAL_SECONDS:.0f} s: "
              f"{'met' if delays[-1] <= GOAL_SECONDS and sent == expected else 'NOT met'})")
    print(f"Kakao calls: {kakao['memo']} to me + {kakao['friends_send']} to friends + {kakao['friends_pages']} "
          f"friends-list pages; Shopify GraphQL: {shopify['graphql']} queries, cost {shopify['requested']:,} points "
          f"requested / {shopify['actual']:,} actual ({shopify['actual'] / args.shops:.1f} a shop), "
          f"{shopify['throttled']} THROTTLED")
    print(f"app-wide messages today: {sent:,} of Kakao's {APP_DAILY:,} per app")
    print(f"RSS per instance with {args.shops} tenants loaded: {spread(loaded, '{:.1f}', ' MB')}; after the slot: "
          f"{spread(after, '{:.1f}', ' MB')}")


if __name__ == "__main__":
    sys.exit(main())
