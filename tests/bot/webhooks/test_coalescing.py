"""orders/updated coalescing: of one order's updates claimed together only the newest is compared; the
snapshot ends at the newest state, one alert at most, each row final once — across batches, a pass
broken off mid-way, and two workers on PostgreSQL. And the worker count, its log, the backlog."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

import pytest
from sqlalchemy import select, update

from bot.app import App
from bot.config.model import ConfigError
from bot.sandbox.kakao import KakaoSandbox
from bot.store.models import Delivery, WebhookEvent
from bot.web.server import create_app
from bot.webhooks.inbox import store_event
from bot.webhooks.stored import Handled, StoredEvent
from bot.webhooks.worker import WebhookWorker, start_background
from bot.webhooks.worker_log import Tally

from test_webhook_worker import ADDRESS, order_body, put, row, snapshot, t, texts
from webhook_helpers import events

CHANGED_ADDRESS = {**ADDRESS, "address2": "102호"}


def change_alerts(sandbox: KakaoSandbox) -> list[str]:
    return [text for text in texts(sandbox) if text.startswith("✏️")]


def created(bot: App, worker: WebhookWorker, sandbox: KakaoSandbox, order_id: int = 6100000000101) -> None:
    put(bot, "orders/create", order_body(order_id, updated=t(0)), webhook_id=f"create-{order_id}", triggered_at=t(0))
    assert worker.drain_once() == 1 and len(texts(sandbox)) == 1  # the new-order alert; the snapshot at t(0)


def test_updates_claimed_together_end_in_the_newest_snapshot_with_one_alert(
        bot: App, worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    created(bot, worker, sandbox)
    # Stored out of order. One by one they would alert twice (u2 the address, then u4 the items).
    put(bot, "orders/updated", order_body(updated=t(2), address=CHANGED_ADDRESS), webhook_id="u2", triggered_at=t(2))
    put(bot, "orders/updated", order_body(updated=t(4), address=CHANGED_ADDRESS, items=(("BEAN-200", 7),)),
        webhook_id="u4", triggered_at=t(4))
    put(bot, "orders/updated", order_body(updated=t(1)), webhook_id="u1", triggered_at=t(1))
    put(bot, "orders/updated", order_body(updated=t(3), address=CHANGED_ADDRESS), webhook_id="u3", triggered_at=t(3))
    assert worker.drain_once() == 4

    (alert,) = change_alerts(sandbox)
    assert alert.startswith("✏️ 주문 변경 #1001\n변경: 배송지, 상품 구성")
    stored = snapshot(bot)
    assert stored.updated_at == t(4) and json.loads(stored.snapshot_json)["items"] == [["sku:BEAN-200", 7]]
    assert row(bot, "u4").status == "done" and "shipping_address, line_items" in row(bot, "u4").result
    superseded = row(bot, "u2")  # stored before the newest: superseded
    assert superseded.status == "done" and superseded.result.startswith("superseded by webhook u4")
    for late in ("u1", "u3"):  # stored after it: stale, as if handled after it
        assert row(bot, late).status == "ignored" and row(bot, late).result.startswith("stale")
    assert all(event.attempts == 1 and event.body == "" for event in events(bot))
    with bot.db.session() as session:
        keys = sorted(session.scalars(select(Delivery.slot_key)))
    assert keys == ["order-update:gid://shopify/Order/6100000000101:2026-11-22T00:04:00Z",
                    "order:gid://shopify/Order/6100000000101"]


def test_updates_of_other_orders_and_topics_in_the_same_claim_keep_their_own_outcome(
        bot: App, worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    created(bot, worker, sandbox)
    put(bot, "orders/updated", order_body(updated=t(1), items=(("BEAN-200", 2),)), webhook_id="a1", triggered_at=t(1))
    put(bot, "orders/create", order_body(6100000000202, updated=t(1)), webhook_id="b-create", triggered_at=t(1))
    put(bot, "orders/updated", order_body(6100000000202, updated=t(2), items=(("MUG-01", 1),)), webhook_id="b2",
        triggered_at=t(2))
    put(bot, "orders/updated", order_body(updated=t(3), items=(("BEAN-200", 3),)), webhook_id="a3", triggered_at=t(3))
    assert worker.drain_once() == 4
    # The create of order b ends the first run: a1 is compared before it, a3 after (one alert each);
    # b2 is compared with the snapshot its create stored.
    assert [row(bot, w).status for w in ("a1", "b-create", "b2", "a3")] == ["done"] * 4
    assert len(change_alerts(sandbox)) == 3
    assert json.loads(snapshot(bot).snapshot_json)["items"] == [["sku:BEAN-200", 3]]
    assert json.loads(snapshot(bot, 6100000000202).snapshot_json)["items"] == [["sku:MUG-01", 1]]


@pytest.mark.parametrize("order", [
    ["u5", "u1", "u3", "u2", "u4"],  # the newest first: every later batch is stale
    ["u1", "u2", "u3", "u4", "u5"],  # in order: each batch compares its newest with the last
])
def test_updates_across_batches_end_in_the_newest_snapshot_with_one_alert(
        bot: App, sandbox: KakaoSandbox, order: list[str]) -> None:
    worker = WebhookWorker(bot, claim_batch=2)
    created(bot, worker, sandbox)
    # u2 changes the items; u3, u4, u5 keep that change (helper apps touching the order again).
    for webhook_id in order:
        minute = int(webhook_id[1])
        items = (("BEAN-200", 1), ("DRIP-10", 2)) if minute < 2 else (("BEAN-200", 6),)
        put(bot, "orders/updated", order_body(updated=t(minute), items=items), webhook_id=webhook_id,
            triggered_at=t(minute))
    assert worker.drain_once() == 5
    assert len(change_alerts(sandbox)) == 1
    assert snapshot(bot).updated_at == t(5)
    assert all(event.status in ("done", "ignored") and event.attempts == 1 for event in events(bot))


def test_a_run_broken_off_after_its_alert_is_retaken_whole_and_alerts_once(
        bot: App, worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    created(bot, worker, sandbox)
    for minute in (1, 2, 3):
        put(bot, "orders/updated", order_body(updated=t(minute), items=(("BEAN-200", minute),)),
            webhook_id=f"u{minute}", triggered_at=t(minute))
    real, calls = worker._record, []

    def record_fails_once(connection: Any, outcomes: list) -> None:
        calls.append(len(outcomes))
        if len(calls) == 1:  # the alert went out; the database goes away before the outcomes are written
            raise RuntimeError("database went away while recording the outcomes")
        real(connection, outcomes)

    worker._record = record_fails_once
    with pytest.raises(RuntimeError):
        worker.drain_once()
    assert [row(bot, f"u{m}").status for m in (1, 2, 3)] == ["processing"] * 3
    assert snapshot(bot).updated_at == t(0)  # rolled back with the outcomes
    assert len(change_alerts(sandbox)) == 1

    assert worker.drain_once() == 3  # its own leftovers, taken again together
    assert [row(bot, f"u{m}").status for m in (1, 2, 3)] == ["done"] * 3
    assert all(row(bot, f"u{m}").attempts == 2 for m in (1, 2, 3))
    assert snapshot(bot).updated_at == t(3)
    assert len(change_alerts(sandbox)) == 1  # the deliveries table knew it was sent


@pytest.mark.postgres
def test_two_workers_on_postgresql_take_disjoint_rows_and_coalesce_each_order_once(
        make_bot: Callable[..., App], sandbox: KakaoSandbox, postgres_url: str) -> None:
    app = make_bot(db_url=postgres_url)
    orders = [6100000001000 + n for n in range(12)]
    for order_id in orders:
        put(app, "orders/create", order_body(order_id, updated=t(0)), webhook_id=f"c{order_id}", triggered_at=t(0))
    WebhookWorker(app).drain_once()
    new_alerts = len(texts(sandbox))
    # Ten updates per order, interleaved; only the last changes anything (the items).
    for minute in range(1, 11):
        for order_id in orders:
            items = (("BEAN-200", 9),) if minute == 10 else (("BEAN-200", 1), ("DRIP-10", 2))
            put(app, "orders/updated", order_body(order_id, updated=t(minute), items=items),
                webhook_id=f"u{order_id}-{minute}", triggered_at=t(minute))
    workers = [WebhookWorker(app, claim_batch=15), WebhookWorker(app, claim_batch=15)]
    taken: list[list[int]] = [[], []]
    for index, worker in enumerate(workers):
        real = worker._handle_updates

        def handle(run: list[StoredEvent], real: Callable = real, index: int = index) -> None:
            taken[index].extend(event.id for event in run)
            real(run)

        worker._handle_updates = handle
    barrier, errors = threading.Barrier(2), []

    def drain(worker: WebhookWorker) -> None:
        try:
            barrier.wait(10)
            worker.drain_once()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert not set(taken[0]) & set(taken[1]) and len(taken[0]) + len(taken[1]) == 120
    updates = [event for event in events(app) if event.topic == "orders/updated"]
    assert all(event.attempts == 1 and event.status in ("done", "ignored") for event in updates)
    assert all(event.id in taken[workers.index(next(w for w in workers if w.owner == event.claimed_by))]
               for event in updates)
    assert len(texts(sandbox)) - new_alerts == len(orders)  # one change alert per order
    for order_id in orders:
        stored = snapshot(app, order_id)
        assert stored.updated_at == t(10) and json.loads(stored.snapshot_json)["items"] == [["sku:BEAN-200", 9]]


# -- the worker count, its log, the backlog ---------------------------------------------------------


def test_start_background_starts_the_configured_workers(make_app: Callable[..., App]) -> None:
    default = start_background(make_app())
    try:
        assert len(default) == 1 and default[0].alive()  # SQLite: one writer at a time
    finally:
        assert all(worker.stop(10) for worker in default)
    three = start_background(make_app("[webhooks]\nworkers = 3\n"))
    try:
        assert len(three) == 3 and all(worker.alive() for worker in three)
        assert len({worker.owner for worker in three}) == 3  # each its own claimant
    finally:
        assert all(worker.stop(10) for worker in three)


@pytest.mark.parametrize("value", ["0", "17", '"2"'])
def test_a_worker_count_out_of_range_is_refused(make_app: Callable[..., App], value: str) -> None:
    with pytest.raises(ConfigError, match="webhooks.workers"):
        make_app(f"[webhooks]\nworkers = {value}\n")


def test_the_worker_logs_a_debug_line_per_event_and_an_info_summary(caplog: pytest.LogCaptureFixture) -> None:
    tally = Tally(every=0.0)
    event = StoredEvent(1, "default", "s.myshopify.com", "orders/updated", "w1", None, 1, "")
    with caplog.at_level(logging.DEBUG, logger="bot.webhooks.worker"):
        tally.count(event, Handled("done", "order 1: unchanged"))
        tally.count(event, Handled("done", "superseded by webhook w2, a newer update of order 1"))
        tally.count(event, Handled("ignored", "stale"))
        tally.report_if_due()
        tally.report_if_due()  # nothing since: no line
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.DEBUG] * 3 + [logging.INFO]
    assert "3 processed" in caplog.records[-1].getMessage()
    assert "1 done, 1 superseded, 1 ignored" in caplog.records[-1].getMessage()


def test_healthz_counts_every_event_not_processed_yet(make_app: Callable[..., App], clock: Any) -> None:
    app = make_app()
    for number in range(5):
        store_event(app, app="default", shop="s.myshopify.com", topic="orders/create", webhook_id=f"w{number}",
                    body="{}")
    with app.db.session() as session:
        session.execute(update(WebhookEvent).where(WebhookEvent.webhook_id == "w0")
                        .values(status="processing", claimed_by="x", claimed_at=clock()))
        session.execute(update(WebhookEvent).where(WebhookEvent.webhook_id == "w1")
                        .values(status="failed", next_attempt_at=clock()))
        session.execute(update(WebhookEvent).where(WebhookEvent.webhook_id == "w2")
                        .values(status="failed", next_attempt_at=None))  # failed for good: not a backlog
        session.execute(update(WebhookEvent).where(WebhookEvent.webhook_id == "w3").values(status="done"))
    body = create_app(app).test_client().get("/healthz").json["webhooks"]
    assert body == {"unprocessed": 3, "pending": 1, "processing": 1, "retrying": 1, "oldest_pending_age_seconds": 0}


def test_a_woken_worker_lets_deliveries_gather_and_claims_them_at_once(bot: App, sandbox: KakaoSandbox) -> None:
    """Under a stream of webhooks the worker takes a batch per claim, not one claim per delivery."""
    created_worker = WebhookWorker(bot, gather=1.0)
    claims: list[int] = []
    claim = created_worker._claim_pending
    created_worker._claim_pending = lambda: claims.append(len(taken := claim())) or taken  # type: ignore[method-assign]
    created_worker.start()
    try:
        # Each store wakes the worker; all five are stored well within its gathering second.
        for minute in range(1, 6):
            put(bot, "orders/updated", order_body(updated=t(minute)), webhook_id=f"g{minute}", triggered_at=t(minute))
        done = threading.Event()
        for _ in range(300):
            if all(row(bot, f"g{minute}").status != "pending" for minute in range(1, 6)):
                done.set()
                break
            done.wait(0.1)
        assert done.is_set(), "the worker did not process the gathered deliveries"
    finally:
        assert created_worker.stop(10)
    assert [count for count in claims if count] == [5]
