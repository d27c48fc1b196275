"""The alerts of `demo`: one of each kind, each through the path a real event takes.

With the bot's own HTTP server and webhook worker running on 127.0.0.1, the Shopify stand-in sends
signed webhooks that the server stores and the worker turns into KakaoTalk alerts to "me": an order
above `min_total` (`orders/create`), a high-risk order below it (its `orders/create` raises only the
risk alert), the first order cancelled (`orders/cancelled`) and refunded (`refunds/create`), and a
variant falling below its stock threshold (`inventory_levels/update`). The unfulfilled-orders check,
which the service runs every 30 minutes, is run once and alerts the order left unshipped for a day.
Each step waits until its alert arrived, so the order of the messages is the order of the steps.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Callable

from bot.app import App
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import serve
from bot.sandbox.shopify import ShopifySandbox
from bot.web.server import create_app
from bot.webhooks.unfulfilled import UnfulfilledCheck
from bot.webhooks.worker import WebhookWorker

SHOP = "demo-store.myshopify.com"
APP = "default"
ALERT_DEADLINE = 20.0  # seconds for the worker to turn a stored webhook into a sent alert
SCOPES = ("read_orders", "read_inventory", "read_products")  # what the demo's app is granted

# Appended to the demo's config after the digest job (bot.cli.demo_shopify.CONFIG).
ALERT_JOBS = """
[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{shop}"
min_total = 30000
to = ["me"]

[[jobs]]
name = "cancels-refunds"
kind = "shopify-refund-alert"
shop = "{shop}"
to = ["me"]

[[jobs]]
name = "stock"
kind = "shopify-stock-alert"
shop = "{shop}"
threshold = 3
to = ["me"]

[[jobs]]
name = "risk"
kind = "shopify-risk-alert"
shop = "{shop}"
to = ["me"]

[[jobs]]
name = "unshipped"
kind = "shopify-unfulfilled-alert"
shop = "{shop}"
hours = 24
to = ["me"]
"""

NEW_ORDER = [{"name": "한라봉 3kg", "sku": "HALLABONG-3", "quantity": 1, "price": "39000"}]
RISKY_ORDER = [{"name": "참기름 350ml", "sku": "OIL-350", "quantity": 1, "price": "15000"}]
LATE_ORDER = [{"name": "유기농 현미 4kg", "sku": "RICE-4", "quantity": 1, "price": "32000"}]
RISK_FACTS = [("결제 카드의 청구지와 배송지가 다른 나라입니다", "NEGATIVE"),
              ("짧은 시간에 여러 카드로 결제가 시도되었습니다", "NEGATIVE")]
STOCK_ITEM, STOCK_VARIANT, STOCK_LOCATION = 7001, 7101, 1


def alerts(app: App, standin: ShopifySandbox, kakao: KakaoSandbox, bot_port: int, out: Callable[[str], None],
           step: int, *, secret: str) -> bool:
    """Steps `step` and `step + 1`: each alert kind once; True if each reached "me" and nothing more did."""
    now = app.clock()
    late = standin.add_order(SHOP, createdAt=now - timedelta(hours=30), lineItems=LATE_ORDER)
    standin.inventory(SHOP).add_item(STOCK_ITEM, STOCK_VARIANT, sku="TANGERINE-5", product="제주 감귤 5kg",
                                     levels={STOCK_LOCATION: 12})
    arrived = []
    with serve(create_app(app), port=bot_port) as server:
        url = server.url + f"/shopify/{APP}/webhooks"

        def webhook(topic: str, payload: dict[str, Any], what: str) -> None:
            before = len(kakao.received("me"))
            answer = standin.send_webhook(url, topic=topic, shop=SHOP, payload=payload, secret=secret)
            came = answer.status_code == 200 and _wait(lambda: len(kakao.received("me")) > before, ALERT_DEADLINE)
            arrived.append(came)
            out(f"   {what}: {topic} → HTTP {answer.status_code} → "
                f"{'me: sent' if came else f'nothing within {ALERT_DEADLINE:.0f} s'}")

        worker = WebhookWorker(app).start()
        try:
            out(f"{step}. alerts: Shopify's signed webhooks → the bot's server → its worker → KakaoTalk")
            _events(standin, webhook, now)
        finally:
            worker.stop(5)
    before = len(kakao.received("me"))
    UnfulfilledCheck(app).run_once()
    arrived.append(len(kakao.received("me")) == before + 1)
    out(f"{step + 1}. the unfulfilled-orders check (every 30 minutes in `run`), once: {late['name']}, unfulfilled "
        f"for 30 hours → {'me: sent' if arrived[-1] else 'no alert'}")
    return all(arrived)


def _events(standin: ShopifySandbox, webhook: Callable[[str, dict[str, Any], str], None], now: datetime) -> None:
    order = standin.add_order(SHOP, lineItems=NEW_ORDER)
    webhook("orders/create", standin.rest_order(SHOP, order["id"]),
            f"a new order {order['name']} of ₩39,000 (min_total ₩30,000)")
    risky = standin.add_order(SHOP, lineItems=RISKY_ORDER)
    standin.set_risk(SHOP, risky["id"], "CANCEL", ["HIGH"], RISK_FACTS)
    webhook("orders/create", standin.rest_order(SHOP, risky["id"]),
            f"a high-risk order {risky['name']} of ₩15,000 (below min_total: no new-order alert)")
    standin.update_order(SHOP, order["id"], cancelledAt=now, cancelReason="CUSTOMER")
    webhook("orders/cancelled", standin.rest_order(SHOP, order["id"]), f"{order['name']} cancelled by the customer")
    webhook("refunds/create", standin.add_refund(SHOP, order["id"]), f"{order['name']} refunded")
    level = standin.inventory(SHOP).set_available(STOCK_ITEM, STOCK_LOCATION, 2, now)
    webhook("inventory_levels/update", level, "제주 감귤 5kg down from 12 to 2 (threshold 3)")


def _wait(condition: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True

