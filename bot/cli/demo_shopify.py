"""The Shopify half of `demo`: a shop connected, an order digest, a webhook-driven new-order alert.

Against the built-in Shopify stand-in (bot.sandbox.shopify) and the bot's own HTTP server and
webhook worker, on 127.0.0.1: the shop is connected with the client credentials grant and subscribed
to webhooks, today's orders become a digest to "me", and an order placed afterwards reaches "me" as
an alert through a signed `orders/create` webhook that the server stores and the worker processes —
the path a real order takes. The Kakao half (bot.cli.demo) supplies the login and the Kakao stand-in.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Callable

from bot.app import App
from bot.delivery.runner import Runner
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import serve
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.subscriptions import subscribe, webhook_uri
from bot.web.server import create_app
from bot.webhooks.worker import WebhookWorker

SHOP = "demo-store.myshopify.com"
APP = "default"
# The stand-in's own pretend credentials for the demo's app: not secrets of anyone.
API_KEY, API_SECRET = "demo-shopify-client-id", "demo-shopify-client-secret"
ALERT_DEADLINE = 20.0  # seconds for the worker to turn the stored webhook into a sent alert

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
to = ["me"]

[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{shop}"
to = ["me"]
"""

TODAYS_ORDERS = [  # (minutes ago, line items)
    (50, [{"name": "제주 감귤 5kg", "sku": "TANGERINE-5", "quantity": 2, "price": "24000"}]),
    (35, [{"name": "유기농 현미 4kg", "sku": "RICE-4", "quantity": 1, "price": "32000"},
          {"name": "참기름 350ml", "sku": "OIL-350", "quantity": 1, "price": "15000"}]),
    (20, [{"name": "제주 감귤 5kg", "sku": "TANGERINE-5", "quantity": 1, "price": "24000"}]),
]
NEW_ORDER = [{"name": "한라봉 3kg", "sku": "HALLABONG-3", "quantity": 1, "price": "39000"}]


def shopify_standin() -> ShopifySandbox:
    """The Shopify stand-in with the demo's app (allowed the client credentials grant) and shop."""
    standin = ShopifySandbox()
    standin.register_app(API_KEY, API_SECRET, own_shops=[SHOP])
    standin.add_shop(SHOP, currency="KRW", timezone="Asia/Seoul", name="데모 상점")
    return standin


def config_section(bot_url: str, shopify_url: str) -> str:
    return CONFIG.format(bot_url=bot_url, shopify_url=shopify_url, shop=SHOP)


def secrets() -> dict[str, str]:
    return {"SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET}


def shopify_half(app: App, standin: ShopifySandbox, kakao: KakaoSandbox, bot_port: int, step: int,
                 out: Callable[[str], None]) -> bool:
    """Steps `step`… of the demo; True if the digest and the alert both reached "me"."""
    _connect(app, out, step)
    digest_ok = _digest(app, standin, out, step + 1)
    alert_ok = _alert(app, standin, kakao, bot_port, out, step + 2)
    return digest_ok and alert_ok


def _connect(app: App, out: Callable[[str], None], step: int) -> None:
    answer = app.shopify_oauth(APP).client_credentials(SHOP)
    status = app.shopify_tokens.store(APP, SHOP, "client_credentials", answer)
    created = subscribe(app.shopify_graphql(SHOP), webhook_uri(app.config.server.public_url, APP))
    out(f"{step}. Shopify: {SHOP} connected with client credentials (like `shopify connect`): scopes "
        f"{', '.join(status.scopes)}; webhooks {', '.join(created)} → {webhook_uri(app.config.server.public_url, APP)}")


def _digest(app: App, standin: ShopifySandbox, out: Callable[[str], None], step: int) -> bool:
    now = app.clock()
    for minutes_ago, items in TODAYS_ORDERS:
        standin.add_order(SHOP, createdAt=now - timedelta(minutes=minutes_ago), lineItems=items)
    job = app.config.job("orders")
    out(f"{step}. job 'orders': the order digest of the last hour from the Admin GraphQL API, to me")
    # The window is explicit: "today so far" would be nearly empty just after midnight.
    report = Runner(app).run(job, "demo-digest", since=now - timedelta(hours=1), until=now)
    return _sent(report.fanout.results if report.fanout else [], report.error, out)


def _alert(app: App, standin: ShopifySandbox, kakao: KakaoSandbox, bot_port: int, out: Callable[[str], None],
           step: int) -> bool:
    before = len(kakao.received("me"))
    with serve(create_app(app), port=bot_port) as server:
        worker = WebhookWorker(app).start()
        try:
            order = standin.add_order(SHOP, lineItems=NEW_ORDER)
            answer = standin.send_webhook(server.url + f"/shopify/{APP}/webhooks", topic="orders/create", shop=SHOP,
                                          payload=standin.rest_order(SHOP, order["id"]), secret=API_SECRET)
            out(f"{step}. a new order {order['name']} at the shop: Shopify's signed orders/create webhook → "
                f"the bot's server answered HTTP {answer.status_code}; its worker sends the alert")
            arrived = _wait(lambda: len(kakao.received("me")) > before, ALERT_DEADLINE)
        finally:
            worker.stop(5)
    out(f"   me: {'sent' if arrived else f'nothing within {ALERT_DEADLINE:.0f} s'}")
    return answer.status_code == 200 and arrived


def _sent(results: list, error: str | None, out: Callable[[str], None]) -> bool:
    if not results:
        out(f"   the job did not run: {error}")
        return False
    for result in results:
        out(f"   {result.label}: {result.status} {result.reason}".rstrip())
    return all(result.status == "sent" for result in results)


def _wait(condition: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True
