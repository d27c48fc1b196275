"""Constants and helpers of the tests that use the Shopify stand-in (the fixtures are in tests/conftest.py),
imported by name."""

from __future__ import annotations

import time
from typing import Any, Callable

import requests
from sqlalchemy import select

from bot.app import App
from bot.sandbox.shopify import ShopifySandbox
from bot.store.models import WebhookEvent

REST_KEY = "sandbox-rest-key"  # the Kakao stand-in's
CLIENT_SECRET = "sandbox-client-secret"
API_KEY = "shopify-client-id"
API_SECRET = "shopify-client-secret"
OLD_SECRET = "shopify-previous-secret"
SHOP = "my-store.myshopify.com"
OTHER_SHOP = "other-store.myshopify.com"
HOOK_PATH = "/shopify/default/webhooks"
ALERT_JOB = f"""
[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{SHOP}"
to = ["me"]
"""


def shopify_config(origin: str) -> str:
    return f"""
[shopify]
origin = "{origin}/{{shop}}"

[[shopify.apps]]
name = "default"
old_api_secret_env = "SHOPIFY_API_SECRET_OLD"
"""


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `condition` until it is truthy; fail after `timeout` seconds (a deadline, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def events(app: App) -> list[WebhookEvent]:
    with app.db.session() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


class Hooks:
    """Sends webhooks to the bot's server the way Shopify does (signed by the stand-in)."""

    def __init__(self, shopify: ShopifySandbox, url: str):
        self.shopify, self.url = shopify, url

    def send(self, topic: str, payload: dict[str, Any], *, shop: str = SHOP, secret: str = API_SECRET,
             **kwargs: Any) -> requests.Response:
        return self.shopify.send_webhook(self.url + HOOK_PATH, topic=topic, shop=shop, payload=payload,
                                         secret=secret, **kwargs)

    def post(self, body: bytes, headers: dict[str, str], path: str = HOOK_PATH) -> requests.Response:
        return requests.post(self.url + path, data=body, headers=headers, timeout=10)


def new_order(shopify: ShopifySandbox, shop: str = SHOP, **fields: Any) -> dict[str, Any]:
    """An order at the stand-in, as its orders/create webhook body."""
    created = shopify.add_order(shop, **fields)
    return shopify.rest_order(shop, created["id"])
