"""The Shopify half of `demo`: a shop connected, a comparison digest with its chart, and the alerts.

Against the built-in Shopify stand-in (bot.sandbox.shopify) and the bot's own HTTP server and
webhook worker, on 127.0.0.1: the shop is connected with the client credentials grant and
subscribed to the webhook topics its jobs need (bot.connect.webhook_needs.sync_shop). The shop has
orders in the last hour and in the same hour yesterday and a week ago, so the digest to "me"
compares real figures; its hourly chart is drawn once, uploaded to the Kakao stand-in and sent as a
feed message (the PNG is saved beside the demo's files). Then one of each alert kind goes the path
a real event takes (bot.cli.demo_alerts). The Kakao half (bot.cli.demo) supplies the login and the
Kakao stand-in.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from bot.app import App
from bot.cli.demo_alerts import ALERT_JOBS, SCOPES, alerts
from bot.connect.webhook_needs import needed_topics, sync_shop
from bot.delivery.runner import Runner
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox

SHOP = "demo-store.myshopify.com"
APP = "default"
# The stand-in's own pretend credentials for the demo's app: not secrets of anyone.
API_KEY, API_SECRET = "demo-shopify-client-id", "demo-shopify-client-secret"
CHART_FILE = "evening-digest.png"

# Appended to the demo's config (bot.cli.demo.CONFIG).
CONFIG = """
[server]
public_url = "{bot_url}"

[shopify]
origin = "{shopify_url}/{{shop}}"

[[jobs]]
name = "orders"
kind = "shopify-orders"
shop = "{shop}"
at = ["evening"]
chart = "hourly"
to = ["me"]
""" + ALERT_JOBS

TODAYS_ORDERS = [  # (minutes ago, line items)
    (50, [{"name": "제주 감귤 5kg", "sku": "TANGERINE-5", "quantity": 2, "price": "24000"}]),
    (35, [{"name": "유기농 현미 4kg", "sku": "RICE-4", "quantity": 1, "price": "32000"},
          {"name": "참기름 350ml", "sku": "OIL-350", "quantity": 1, "price": "15000"}]),
    (20, [{"name": "제주 감귤 5kg", "sku": "TANGERINE-5", "quantity": 1, "price": "24000"}]),
]
# The same hour yesterday and a week ago (minutes before now − 1 day / − 7 days, total): the comparisons.
YESTERDAY = [(55, 45000), (30, 55000)]  # ₩100,000 in 2 orders
WEEK_AGO = [(58, 24000), (45, 32000), (25, 30000), (10, 39000)]  # ₩125,000 in 4 orders
# For the chart only, outside every digest window: earlier today, and the rest of that day a week ago
# (hours before now, or before now − 7 days — negative: after it —, total).
EARLIER_TODAY = [(12, 18000), (11, 26000), (10, 41000), (9, 29000), (8, 15000), (7, 32000), (6, 47000),
                 (5, 24000), (4, 71000), (3, 36000), (2, 58000)]
WEEK_AGO_DAY = [(12, 22000), (11, 31000), (10, 27000), (9, 44000), (8, 36000), (7, 52000), (6, 28000), (5, 39000),
                (4, 61000), (3, 33000), (2, 48000), (-1, 35000), (-2, 19000)]


def shopify_standin(shift: timedelta = timedelta(0)) -> ShopifySandbox:
    """The Shopify stand-in with the demo's app (allowed the client credentials grant, with the scopes
    the demo's jobs need) and shop; its clock `shift`ed like the bot's."""
    standin = ShopifySandbox(wall_clock=lambda: time.time() + shift.total_seconds())
    standin.register_app(API_KEY, API_SECRET, scopes_granted=",".join(SCOPES), own_shops=[SHOP])
    standin.add_shop(SHOP, currency="KRW", timezone="Asia/Seoul", name="데모 상점")
    return standin


def config_section(bot_url: str, shopify_url: str) -> str:
    return CONFIG.format(bot_url=bot_url, shopify_url=shopify_url, shop=SHOP)


def secrets() -> dict[str, str]:
    return {"SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET}


def shopify_half(app: App, standin: ShopifySandbox, kakao: KakaoSandbox, bot_port: int, step: int,
                 out: Callable[[str], None]) -> bool:
    """Steps `step`… of the demo; True if the digest, its chart and every alert reached "me"."""
    connected = _connect(app, out, step)
    digest_ok = _digest(app, standin, kakao, out, step + 1)
    alerts_ok = alerts(app, standin, kakao, bot_port, out, step + 2, secret=API_SECRET)
    return connected and digest_ok and alerts_ok


def _connect(app: App, out: Callable[[str], None], step: int) -> bool:
    answer = app.shopify_oauth(APP).client_credentials(SHOP)
    status = app.shopify_tokens.store(APP, SHOP, "client_credentials", answer)
    synced = sync_shop(app, app.shopify_graphql(SHOP), SHOP, APP)
    out(f"{step}. Shopify: {SHOP} connected with client credentials (like `shopify connect`): scopes "
        f"{', '.join(status.scopes)}")
    if synced.error:
        out(f"   webhooks could not be subscribed: {synced.error}")
        return False
    out(f"   webhooks the jobs need ({', '.join(needed_topics(app, SHOP))}) → {synced.uri}: "
        f"subscribed {', '.join(synced.created)}")
    return True


def seed_orders(standin: ShopifySandbox, now: datetime) -> None:
    """The shop's orders: the last hour's, the same hour yesterday and a week ago, and the chart's others.
    Orders older than a day are fulfilled, so that only the demo's own late order is alerted as unfulfilled."""
    for minutes_ago, items in TODAYS_ORDERS:
        standin.add_order(SHOP, createdAt=now - timedelta(minutes=minutes_ago), lineItems=items)
    past = [(now - timedelta(days=1, minutes=minutes), total) for minutes, total in YESTERDAY]
    past += [(now - timedelta(days=7, minutes=minutes), total) for minutes, total in WEEK_AGO]
    past += [(now - timedelta(days=7, hours=hours), total) for hours, total in WEEK_AGO_DAY]
    for created, total in past:
        standin.add_order(SHOP, createdAt=created, total=total, displayFulfillmentStatus="FULFILLED")
    for hours, total in EARLIER_TODAY:
        standin.add_order(SHOP, createdAt=now - timedelta(hours=hours), total=total)


def _digest(app: App, standin: ShopifySandbox, kakao: KakaoSandbox, out: Callable[[str], None],
            step: int) -> bool:
    now = app.clock()
    seed_orders(standin, now)
    job = app.config.job("orders")
    uploads = len(kakao.images.uploads)
    out(f"{step}. job 'orders': the order digest of the last hour from the Admin GraphQL API, compared with the "
        f"same hour yesterday and a week ago, with today's sales by hour as a chart (chart = \"hourly\"), to me")
    # The window is explicit: "today so far" would be nearly empty just after midnight.
    report = Runner(app).run(job, "demo-digest", since=now - timedelta(hours=1), until=now)
    ok = _sent(report.fanout.results if report.fanout else [], report.error, out)
    drawn = kakao.images.uploads[uploads:]
    if report.chart_error or len(drawn) != 1:
        out(f"   the chart: {report.chart_error or f'{len(drawn)} uploads'}")
        return False
    out(f"   the chart: drawn once, uploaded to Kakao ({drawn[0].width}×{drawn[0].height}), "
        f"sent as a feed message")
    return ok


def save_chart(kakao: KakaoSandbox, folder: Path) -> Path | None:
    """The PNG the Kakao stand-in received, written into `folder`; None if none was uploaded."""
    if not kakao.images.uploads:
        return None
    path = folder / CHART_FILE
    path.write_bytes(kakao.images.uploads[-1].data)
    return path


def _sent(results: list[Any], error: str | None, out: Callable[[str], None]) -> bool:
    if not results:
        out(f"   the job did not run: {error}")
        return False
    for result in results:
        out(f"   {result.label}: {result.status} {result.reason}".rstrip())
    return all(result.status == "sent" for result in results)

