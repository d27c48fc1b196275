"""Reconciliation: orders whose webhook never came are alerted, once, and only once overall."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

import pytest
from sqlalchemy import select

from bot.app import App
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.service.run import register_reconciliation
from bot.service.scheduler import BotScheduler
from bot.store.job_memory import StoredJobState
from bot.store.models import Delivery
from bot.webhooks.reconcile import Reconciler, state_key
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import ALERT_JOB, OTHER_SHOP, SHOP, Hooks, wait_for

if TYPE_CHECKING:
    from conftest import FakeClock


@pytest.fixture
def clock(clock: FakeClock) -> FakeClock:
    """The shared fake clock, set near the real time: Shopify's read_orders window is measured from the real now."""
    clock.now = datetime.now(timezone.utc).replace(microsecond=0)
    return clock


def alerted(sandbox: KakaoSandbox) -> list[str]:
    return [template["text"].splitlines()[0] for template in sandbox.received("me")]


def test_an_order_whose_webhook_never_came_is_alerted_once(bot: App, shopify: ShopifySandbox,
                                                           sandbox: KakaoSandbox, clock: FakeClock, caplog) -> None:  # noqa: ANN001
    order = shopify.add_order(SHOP, lineItems=[{"name": "텀블러", "sku": "TUMB-01", "quantity": 2, "price": 25000}])
    clock.advance(minutes=1)
    reconciler = Reconciler(bot)
    with caplog.at_level(logging.WARNING):
        assert reconciler.run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {order['name']}"]
    assert sandbox.received("me")[0]["text"] == f"🛒 새 주문 {order['name']}\n₩50,000 · 2개\n• 텀블러 ×2"
    assert "its webhook did not come" in caplog.text
    with bot.db.session() as session:
        (delivery,) = session.scalars(select(Delivery))
    assert (delivery.job, delivery.slot_key, delivery.status) == ("new-orders", f"order:{order['id']}", "sent")

    clock.advance(minutes=5)  # the next pass overlaps the previous one: nothing twice
    assert reconciler.run_once() == 0
    assert len(sandbox.received("me")) == 1
    assert StoredJobState(bot.db, state_key(SHOP)).get("since") == clock().isoformat()


def test_an_order_already_alerted_by_its_webhook_is_not_alerted_again(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                                                      sandbox: KakaoSandbox, clock: FakeClock,
                                                                      worker: WebhookWorker) -> None:
    created = shopify.add_order(SHOP)
    assert hooks.send("orders/create", shopify.rest_order(SHOP, created["id"])).status_code == 200
    assert worker.drain_once() == 1
    clock.advance(minutes=1)
    missed = shopify.add_order(SHOP)  # its webhook is lost
    clock.advance(minutes=1)
    assert Reconciler(bot).run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {created['name']}", f"🛒 새 주문 {missed['name']}"]


def test_a_late_webhook_after_reconciliation_alerts_nothing(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                                            sandbox: KakaoSandbox, clock: FakeClock,
                                                            worker: WebhookWorker) -> None:
    created = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    assert Reconciler(bot).run_once() == 1
    assert hooks.send("orders/create", shopify.rest_order(SHOP, created["id"])).status_code == 200
    assert worker.drain_once() == 1
    assert len(sandbox.received("me")) == 1
    with bot.db.session() as session:
        assert len(list(session.scalars(select(Delivery)))) == 1


def test_the_first_pass_looks_back_one_hour_and_later_passes_from_where_the_last_ended(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    clock.advance(hours=-3)
    bot = make_bot()  # connected, and its alert job seen, three hours ago: only the window limits the pass
    clock.advance(hours=3)
    old = shopify.add_order(SHOP, createdAt=clock() - timedelta(hours=2))
    recent = shopify.add_order(SHOP, createdAt=clock() - timedelta(minutes=30))
    reconciler = Reconciler(bot)
    assert reconciler.run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {recent['name']}"]
    # Down for three hours: the next pass covers the whole gap.
    clock.advance(hours=3)
    during = shopify.add_order(SHOP, createdAt=clock() - timedelta(hours=2))
    assert reconciler.run_once() == 1
    assert alerted(sandbox)[-1] == f"🛒 새 주문 {during['name']}"
    assert f"🛒 새 주문 {old['name']}" not in alerted(sandbox)
    search = shopify.graphql_requests[-1]["variables"]["query"]
    assert search.startswith("created_at:>=")


def test_a_failed_query_does_not_move_the_window(bot: App, shopify: ShopifySandbox, sandbox: KakaoSandbox,
                                                 clock: FakeClock) -> None:
    reconciler = Reconciler(bot)
    reconciler.run_once()
    start = StoredJobState(bot.db, state_key(SHOP)).get("since")
    clock.advance(minutes=5)
    order = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    attempts = bot.retry.attempts  # every try of the query fails
    shopify.fail_next("/graphql.json", 500, {"errors": "Internal Server Error"}, times=attempts)
    assert reconciler.run_once() == 0
    assert StoredJobState(bot.db, state_key(SHOP)).get("since") == start
    assert reconciler.run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {order['name']}"]


def test_a_shop_that_is_not_connected_is_reported_and_the_others_go_on(make_bot: Callable[..., App],
                                                                       shopify: ShopifySandbox,
                                                                       sandbox: KakaoSandbox, clock: FakeClock,
                                                                       caplog) -> None:  # noqa: ANN001
    other_job = ALERT_JOB.replace('"new-orders"', '"other-orders"').replace(SHOP, OTHER_SHOP)
    app = make_bot(other_job + ALERT_JOB)  # OTHER_SHOP is not connected; SHOP is
    shopify.add_order(OTHER_SHOP)
    order = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    with caplog.at_level(logging.ERROR):
        assert Reconciler(app).run_once() == 1
    assert f"order reconciliation of {OTHER_SHOP} failed" in caplog.text and "not connected" in caplog.text
    assert alerted(sandbox) == [f"🛒 새 주문 {order['name']}"]
    assert StoredJobState(app.db, state_key(OTHER_SHOP)).get("since") is None


def test_two_jobs_of_one_shop_each_alert_once(make_bot: Callable[..., App], shopify: ShopifySandbox,
                                              sandbox: KakaoSandbox, clock: FakeClock) -> None:
    friend = sandbox.add_friend("직원01")
    second = ALERT_JOB.replace('"new-orders"', '"staff-orders"').replace('["me"]', '["friend:직원01"]')
    app = make_bot(ALERT_JOB + second)
    shopify.add_order(SHOP)
    clock.advance(minutes=1)
    assert Reconciler(app).run_once() == 1
    assert Reconciler(app).run_once() == 0
    assert len(sandbox.received("me")) == 1 and len(sandbox.received(friend)) == 1


def test_the_reconciliation_is_a_scheduler_job_passing_at_start_and_waited_for_at_stop(
        bot: App, shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    shopify.add_order(SHOP)
    clock.advance(minutes=1)
    scheduler = BotScheduler(bot)
    reconciler = register_reconciliation(bot, scheduler, interval=3600)
    assert reconciler is not None and reconciler.stopping is scheduler.stopping
    scheduler.start()
    try:
        wait_for(lambda: sandbox.received("me"))
    finally:
        assert scheduler.stop(10)
    assert StoredJobState(bot.db, state_key(SHOP)).get("since") == clock().isoformat()


def test_a_pass_asked_to_stop_queries_no_further_shop(bot: App, shopify: ShopifySandbox,
                                                      sandbox: KakaoSandbox) -> None:
    stopping = threading.Event()
    stopping.set()
    queries = shopify.count("graphql.json")
    assert Reconciler(bot, stopping=stopping).run_once() == 0
    assert shopify.count("graphql.json") == queries and sandbox.received("me") == []


def test_without_alert_jobs_nothing_is_scheduled(make_bot: Callable[..., App]) -> None:
    class Scheduler:
        def __init__(self) -> None:
            self.stopping = threading.Event()
            self.names: list[str] = []

        def every(self, name: str, seconds: float, fn: Callable[[], object], *, run_now: bool = False) -> None:
            self.names.append(name)

    scheduler = Scheduler()
    assert register_reconciliation(make_bot(jobs="", login=False, connect=False), scheduler) is None
    assert scheduler.names == []


def test_state_key_fits_the_job_memory_column() -> None:
    assert state_key(SHOP) == f"reconcile:{SHOP}"
    long_shop = "a" * 120 + ".myshopify.com"
    assert len(state_key(long_shop)) <= 100 and state_key(long_shop) != state_key("b" * 120 + ".myshopify.com")
