"""Issue 8 item 5: orders created before a shop was connected, or before its alert job was first
seen, are never alerted — not by the reconciliation, not by a webhook."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

import pytest

from bot.app import App
from bot.delivery.alert_start import alerting_since, mark_jobs_seen
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.service.run import register_reconciliation
from bot.service.scheduler import BotScheduler
from bot.store.job_memory import StoredJobState
from bot.webhooks.reconcile import Reconciler, state_key
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import ALERT_JOB, SHOP, Hooks, events, new_order, wait_for

if TYPE_CHECKING:
    from conftest import FakeClock


@pytest.fixture
def clock(clock: FakeClock) -> FakeClock:
    """Near the real time: Shopify's read_orders window is measured from the real now."""
    clock.now = datetime.now(timezone.utc).replace(microsecond=0)
    return clock


def alerted(sandbox: KakaoSandbox) -> list[str]:
    return [template["text"].splitlines()[0] for template in sandbox.received("me")]


def connect(app: App, shopify: ShopifySandbox) -> None:
    app.shopify_tokens.store_legacy("default", SHOP, shopify.legacy_token(SHOP), "read_orders")


def test_the_first_pass_after_connecting_alerts_no_order_placed_before(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock,
        caplog) -> None:  # noqa: ANN001
    app = make_bot(connect=False)
    for minutes in (50, 20, 1):
        shopify.add_order(SHOP, createdAt=clock() - timedelta(minutes=minutes))
    connect(app, shopify)
    clock.advance(minutes=1)
    reconciler = Reconciler(app)
    with caplog.at_level(logging.WARNING):
        assert reconciler.run_once() == 0
    assert sandbox.received("me") == []
    assert "did not come" not in caplog.text

    clock.advance(minutes=1)
    new = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    assert reconciler.run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {new['name']}"]


def test_the_first_pass_of_run_after_connecting_alerts_nothing_old_and_the_next_new_order_once(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    app = make_bot(connect=False)
    for minutes in (40, 5):
        shopify.add_order(SHOP, createdAt=clock() - timedelta(minutes=minutes))
    connect(app, shopify)  # `shopify connect`, then `run` ten minutes later
    clock.advance(minutes=10)
    scheduler = BotScheduler(app)
    reconciler = register_reconciliation(app, scheduler, interval=3600)
    assert reconciler is not None
    scheduler.start()
    try:
        wait_for(lambda: StoredJobState(app.db, state_key(SHOP)).get("since") == clock().isoformat())
    finally:
        assert scheduler.stop(10)
    assert sandbox.received("me") == []
    clock.advance(minutes=1)
    new = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    assert Reconciler(app).run_once() == 1  # the next pass (the stopped scheduler's reconciler stops at once)
    assert alerted(sandbox) == [f"🛒 새 주문 {new['name']}"]


def test_orders_before_the_alert_job_was_first_seen_are_not_alerted(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    clock.advance(hours=-3)
    connected_long_ago = make_bot(jobs="")  # connected three hours ago, without an alert job
    connected_long_ago.close()
    clock.advance(hours=3)
    before = shopify.add_order(SHOP, createdAt=clock() - timedelta(minutes=30))
    app = make_bot(connect=False)  # same database: the job appears now
    assert Reconciler(app).run_once() == 0
    assert sandbox.received("me") == []
    since = alerting_since(app, app.config.jobs[0], SHOP)
    assert since == clock()
    clock.advance(minutes=2)
    after = shopify.add_order(SHOP)
    clock.advance(minutes=1)
    assert Reconciler(app).run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {after['name']}"]
    assert f"🛒 새 주문 {before['name']}" not in alerted(sandbox)


def test_a_second_job_added_later_starts_alone_while_the_first_keeps_its_start(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock) -> None:
    first = make_bot()
    mark_jobs_seen(first, clock())
    start = clock()
    clock.advance(hours=1)
    order = shopify.add_order(SHOP, createdAt=clock() - timedelta(minutes=30))
    friend = sandbox.add_friend("직원01")
    second = ALERT_JOB.replace('"new-orders"', '"staff-orders"').replace('["me"]', '["friend:직원01"]')
    app = make_bot(ALERT_JOB + second, connect=False)
    mark_jobs_seen(app, clock())  # as `run` does at start: the second job is seen now, the first keeps its time
    assert [alerting_since(app, job, SHOP) for job in app.config.jobs] == [start, clock()]
    assert Reconciler(app).run_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {order['name']}"]
    assert sandbox.received(friend) == []


def test_a_webhook_for_an_order_placed_before_the_connection_alerts_nothing(
        bot: App, hooks: Hooks, shopify: ShopifySandbox, sandbox: KakaoSandbox, clock: FakeClock,
        worker: WebhookWorker) -> None:
    old = new_order(shopify, createdAt=clock() - timedelta(minutes=10))
    assert hooks.send("orders/create", old).status_code == 200
    assert worker.drain_once() == 1
    assert sandbox.received("me") == []
    event = events(bot)[-1]
    assert event.status == "ignored" and "before" in event.result

    clock.advance(minutes=1)
    fresh = new_order(shopify)
    assert hooks.send("orders/create", fresh).status_code == 200
    assert worker.drain_once() == 1
    assert alerted(sandbox) == [f"🛒 새 주문 {fresh['name']}"]


def test_the_start_is_recorded_once_and_never_moves(bot: App, clock: FakeClock) -> None:
    job = bot.config.jobs[0]
    mark_jobs_seen(bot, clock())
    first = clock()
    clock.advance(days=2)
    mark_jobs_seen(bot, clock())
    assert alerting_since(bot, job, SHOP, seen_at=clock()) == first
