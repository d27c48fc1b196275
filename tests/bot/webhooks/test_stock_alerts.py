"""inventory_levels/update → low / out-of-stock alerts: once per crossing, re-armed by a restock, never twice."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

import pytest
from sqlalchemy import select

from bot.app import App
from bot.delivery.alerts import AlertSender
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.service.scheduler import BotScheduler
from bot.store.models import Delivery
from bot.webhooks.stock import StockAlerts, stock_slot_key
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import SHOP, Hooks, events

if TYPE_CHECKING:
    from conftest import FakeClock

SCOPES = "read_orders,read_inventory,read_products"
ITEM = 40001
GID = f"gid://shopify/InventoryItem/{ITEM}"
STOCK_JOB = f"""
[[jobs]]
name = "stock"
kind = "shopify-stock-alert"
shop = "{SHOP}"
threshold = 5
thresholds = {{ "MUG-RED" = 2 }}
to = ["me"]
"""


@pytest.fixture
def make_stock_bot(make_bot: Callable[..., App], shopify: ShopifySandbox) -> Callable[..., App]:
    def make(jobs: str = STOCK_JOB, **kwargs: Any) -> App:
        app = make_bot(jobs, connect=False, **kwargs)
        app.shopify_tokens.store_legacy("default", SHOP, shopify.legacy_token(SHOP, scope=SCOPES), SCOPES)
        return app
    return make


@pytest.fixture
def bot(make_stock_bot: Callable[..., App]) -> App:
    return make_stock_bot()


@pytest.fixture
def item(shopify: ShopifySandbox) -> dict[str, Any]:
    return shopify.inventory(SHOP).add_item(ITEM, 50001, sku="TEE-BLK-M", product="티셔츠", variant="블랙 / M",
                                            levels={1: 10})


def at(clock: FakeClock, minutes: int = 0) -> datetime:
    return clock() + timedelta(minutes=minutes)


class Stock:
    """Changes a level at the stand-in and delivers its webhook, as Shopify would."""

    def __init__(self, shopify: ShopifySandbox, hooks: Hooks, worker: WebhookWorker, clock: FakeClock):
        self.shopify, self.hooks, self.worker, self.clock = shopify, hooks, worker, clock
        self.minute = 0

    def set(self, available: int, *, location: int = 1, item: int = ITEM) -> dict[str, Any]:
        self.minute += 1
        body = self.shopify.inventory(SHOP).set_available(item, location, available, at(self.clock, self.minute))
        self.send(body)
        return body

    def send(self, body: dict[str, Any], **kwargs: Any) -> None:
        assert self.hooks.send("inventory_levels/update", body, **kwargs).status_code == 200
        self.worker.drain_once()


@pytest.fixture
def stock(shopify: ShopifySandbox, hooks: Hooks, worker: WebhookWorker, clock: FakeClock) -> Stock:
    return Stock(shopify, hooks, worker, clock)


def texts(sandbox: KakaoSandbox) -> list[str]:
    return [template["text"] for template in sandbox.received("me")]


def test_one_alert_per_crossing_none_while_low_again_after_a_restock(bot: App, item: dict[str, Any], stock: Stock,
                                                                     sandbox: KakaoSandbox) -> None:
    stock.set(7)  # above 5: nothing
    stock.set(4)  # crosses: one alert
    stock.set(3)  # still low: nothing
    stock.set(0)  # out of stock, but already alerted as low: nothing until restocked
    assert texts(sandbox) == ["📦 재고 부족 티셔츠 - 블랙 / M\nSKU TEE-BLK-M · 남은 재고 4개 (기준 5개 이하)"]
    stock.set(12)  # restocked: re-armed, no message
    stock.set(0)  # crosses again, out of stock
    assert texts(sandbox)[1:] == ["🚫 품절 티셔츠 - 블랙 / M\nSKU TEE-BLK-M · 남은 재고 0개 (기준 5개 이하)"]
    with bot.db.session() as session:
        keys = sorted(session.scalars(select(Delivery.slot_key)))
    assert keys == [stock_slot_key(GID, 1), stock_slot_key(GID, 2)] == [f"stock:{GID}:1", f"stock:{GID}:2"]


def test_the_stock_is_summed_over_locations(bot: App, item: dict[str, Any], stock: Stock,
                                            sandbox: KakaoSandbox) -> None:
    stock.set(3, location=1)  # 3, and 0 elsewhere: low
    assert len(texts(sandbox)) == 1
    stock.set(9, location=2)  # 3 + 9 = 12: restocked
    stock.set(1, location=2)  # 3 + 1 = 4: low again
    assert len(texts(sandbox)) == 2
    assert "남은 재고 4개" in texts(sandbox)[1]


def test_a_per_sku_threshold_wins_over_the_jobs(bot: App, shopify: ShopifySandbox, stock: Stock,
                                                sandbox: KakaoSandbox) -> None:
    shopify.inventory(SHOP).add_item(40002, 50002, sku="MUG-RED", product="머그", levels={1: 10})
    stock.set(3, item=40002)  # at or below 5, not at or below 2
    assert texts(sandbox) == []
    stock.set(2, item=40002)
    assert texts(sandbox) == ["📦 재고 부족 머그\nSKU MUG-RED · 남은 재고 2개 (기준 2개 이하)"]


def test_a_redelivered_webhook_alerts_nothing_more(bot: App, item: dict[str, Any], stock: Stock,
                                                   sandbox: KakaoSandbox) -> None:
    body = stock.set(4)
    stock.send(body, webhook_id="same-delivery")
    stock.send(body, webhook_id="same-delivery")  # Shopify's retry of one delivery
    stock.send(body)  # the same change under another delivery id
    assert len(texts(sandbox)) == 1


def test_an_out_of_order_webhook_neither_fires_nor_rearms(bot: App, item: dict[str, Any], stock: Stock,
                                                          shopify: ShopifySandbox, clock: FakeClock,
                                                          sandbox: KakaoSandbox) -> None:
    inventory = shopify.inventory(SHOP)
    early = inventory.set_available(ITEM, 1, 20, at(clock, 1))  # restock at minute 1 …
    late = inventory.set_available(ITEM, 1, 4, at(clock, 2))  # … sold down at minute 2
    stock.send(late)
    assert len(texts(sandbox)) == 1
    stock.send(early)  # arrives last: older than what was handled
    (*_, stale) = events(bot)
    assert stale.status == "done" and "stale" in stale.result
    inventory.set_available(ITEM, 1, 3, at(clock, 3))
    stock.send(inventory_body(ITEM, 3, at(clock, 3)))  # still low: not re-armed by the stale event
    assert len(texts(sandbox)) == 1


def inventory_body(item: int, available: int, moment: datetime) -> dict[str, Any]:
    return {"inventory_item_id": item, "location_id": 1, "available": available,
            "updated_at": moment.astimezone(timezone.utc).isoformat()}


@pytest.mark.parametrize("body, reason", [
    ({"location_id": 1, "available": 3}, "no valid inventory_item_id"),
    ({"inventory_item_id": "abc", "available": 3}, "no valid inventory_item_id"),
    ({"inventory_item_id": True, "available": 3}, "no valid inventory_item_id"),
    ({"inventory_item_id": ITEM, "available": "3"}, "available is str"),
    ({"inventory_item_id": ITEM, "available": 3, "updated_at": "yesterday"}, "updated_at is not a time"),
    ({"inventory_item_id": 99999, "available": 3}, "unknown to Shopify"),
])
def test_a_malformed_or_unknown_body_is_ignored_with_a_reason(bot: App, item: dict[str, Any], stock: Stock,
                                                              sandbox: KakaoSandbox, body: dict[str, Any],
                                                              reason: str) -> None:
    stock.send(body)
    (event,) = events(bot)
    assert event.status == "ignored" and reason in event.result
    assert texts(sandbox) == []


def test_an_untracked_item_is_ignored(bot: App, shopify: ShopifySandbox, stock: Stock, sandbox: KakaoSandbox) -> None:
    shopify.inventory(SHOP).add_item(40003, 50003, sku="GIFT", product="기프트 카드", tracked=False)
    stock.set(0, item=40003)
    (event,) = events(bot)
    assert event.status == "ignored" and "does not track" in event.result


def test_a_failing_query_retries_the_event_and_then_alerts_once(bot: App, item: dict[str, Any], stock: Stock,
                                                                shopify: ShopifySandbox, clock: FakeClock,
                                                                sandbox: KakaoSandbox) -> None:
    shopify.fail_next("graphql.json", 503, {"errors": "unavailable"}, times=20)
    stock.set(4)
    (event,) = events(bot)
    assert event.status == "failed" and event.next_attempt_at is not None
    shopify.clear_faults()
    clock.advance(minutes=5)
    stock.worker.drain_once()
    assert len(texts(sandbox)) == 1
    assert events(bot)[0].status == "done"


def test_missing_read_inventory_scope_fails_the_event_loudly(make_bot: Callable[..., App], shopify: ShopifySandbox,
                                                            item: dict[str, Any], hooks: Hooks) -> None:
    app = make_bot(STOCK_JOB)  # connected with read_orders only
    worker = WebhookWorker(app)
    hooks.send("inventory_levels/update", inventory_body(ITEM, 1, datetime.now(timezone.utc)))
    worker.drain_once()
    (event,) = events(app)
    assert event.status == "failed" and "inventoryItem" in (event.error or "")


def test_quiet_hours_hold_a_stock_alert_for_the_summary(make_stock_bot: Callable[..., App], item: dict[str, Any],
                                                        shopify: ShopifySandbox, clock: FakeClock,
                                                        sandbox: KakaoSandbox) -> None:
    app = make_stock_bot(STOCK_JOB + 'quiet = "08:00-10:00"\n')  # the fake clock says 09:00 in Seoul
    (job,) = app.config.jobs
    alerts = AlertSender(app)
    handler = StockAlerts(app, alerts)
    body = shopify.inventory(SHOP).set_available(ITEM, 1, 0, at(clock, 1))
    assert handler.inventory_updated(SHOP, body, None)[0] == "done"
    assert texts(sandbox) == []
    (held,) = alerts.held(job)
    assert held[0] == f"stock:{GID}:1"
    end = datetime(2026, 11, 22, 1, 0, tzinfo=timezone.utc)  # 10:00 KST
    clock.now = end
    alerts.send_quiet_summary(job, end)
    assert texts(sandbox) == ["🔕 08:00~10:00 사이 품절 1건\n🚫 티셔츠 - 블랙 / M 품절"]


def test_two_instances_on_postgresql_alert_a_crossing_once(make_stock_bot: Callable[..., App], postgres_url: str,
                                                           item: dict[str, Any], shopify: ShopifySandbox,
                                                           clock: FakeClock, sandbox: KakaoSandbox) -> None:
    first = make_stock_bot(db_url=postgres_url)
    second = make_stock_bot(db_url=postgres_url, login=False)
    inventory = shopify.inventory(SHOP)
    bodies = [inventory.set_available(ITEM, 1, 4, at(clock, 1)), inventory.set_available(ITEM, 1, 3, at(clock, 2))]
    both = threading.Barrier(2)

    def fetch_together(handler: StockAlerts) -> Callable[..., Any]:
        plain = handler.fetch

        def fetch(app: App, shop: str, gid: str) -> Any:
            found = plain(app, shop, gid)
            both.wait(10)  # both have the stock in hand before either reads or writes the state
            return found
        return fetch

    handlers = [StockAlerts(app, AlertSender(app)) for app in (first, second)]
    for handler in handlers:
        handler.fetch = fetch_together(handler)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda h=h, b=b: results.append(h.inventory_updated(SHOP, b, None)))
               for h, b in zip(handlers, bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _ in results] == ["done", "done"]
    assert len(texts(sandbox)) == 1
    with first.db.session() as session:
        assert list(session.scalars(select(Delivery.slot_key))) == [f"stock:{GID}:1"]


def test_the_scheduler_sends_the_summary_of_a_stock_job_with_quiet_hours(make_stock_bot: Callable[..., App]) -> None:
    app = make_stock_bot(STOCK_JOB + 'quiet = "22:00-07:00"\n')
    scheduler = BotScheduler(app)
    start = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)  # 21:00 in Seoul
    assert scheduler.due(start, start + timedelta(days=1)) == [("stock", datetime(2026, 11, 22, 22, 0, tzinfo=timezone.utc))]
    (schedule,) = scheduler.next_runs(start)
    assert schedule.quiet == "22:00-07:00"
