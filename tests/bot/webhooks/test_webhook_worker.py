"""The webhook worker: claims, crashes and restarts, retries, the topics, and several workers at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import select, update

from bot.app import App
from bot.delivery.alerts import AlertSender
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.store.job_memory import StoredJobState
from bot.store.models import Delivery, JobMemory, OrderSnapshot, WebhookEvent
from bot.webhooks.inbox import store_event
from bot.webhooks.order_snapshots import order_snapshot, snapshot_changes
from bot.webhooks.reconcile import state_key
from bot.webhooks.worker import MAX_ATTEMPTS, WebhookWorker
from tokens.models import ShopifyInstall

from webhook_helpers import (
    ALERT_JOB,
    API_SECRET,
    CLIENT_SECRET,
    OTHER_SHOP,
    REST_KEY,
    SHOP,
    Hooks,
    events,
    new_order,
    wait_for,
)

REPO = Path(__file__).resolve().parents[3]
MEMO_PATH = "/v2/api/talk/memo/default/send"
ADDRESS = {"first_name": "민지", "last_name": "김", "address1": "테헤란로 1", "address2": "101호", "city": "서울",
           "province": "서울특별시", "zip": "06234", "country": "South Korea", "country_code": "KR",
           "phone": "+82 10-1234-5678", "latitude": 37.5, "longitude": 127.0}


def t(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 22, 0, minute, second, tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def order_body(order_id: int = 6100000000101, *, updated: datetime = t(0), items: list[tuple[str, int]] = (
        ("BEAN-200", 1), ("DRIP-10", 2)), address: dict | None = None, **extra: Any) -> dict[str, Any]:
    """A REST-shaped orders/* webhook body (see tests/fixtures/shopify/webhook_orders_create.json)."""
    body = {"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": "#1001",
            "created_at": "2026-11-22T09:00:00+09:00", "updated_at": updated.isoformat(),
            "currency": "KRW", "total_price_set": {"shop_money": {"amount": "42000.00", "currency_code": "KRW"}},
            "line_items": [{"id": 9000 + i, "name": f"상품 {sku}", "sku": sku, "quantity": qty}
                           for i, (sku, qty) in enumerate(items)],
            "shipping_address": dict(ADDRESS if address is None else address), "tags": "",
            "customer": {"id": 77, "email": "customer@example.com", "first_name": "민지", "last_name": "김"}}
    body.update(extra)
    return body


def put(app: App, topic: str, payload: dict[str, Any], *, webhook_id: str | None = None,
        triggered_at: datetime | None = None, shop: str = SHOP) -> str:
    """Store an event as the route does (for tests about processing, not about HTTP)."""
    webhook_id = webhook_id or f"wh-{topic}-{len(events(app))}"
    assert store_event(app, app="default", shop=shop, topic=topic, webhook_id=webhook_id,
                       body=json.dumps(payload, ensure_ascii=False), triggered_at=triggered_at)
    return webhook_id


def row(app: App, webhook_id: str) -> WebhookEvent:
    with app.db.session() as session:
        return session.execute(select(WebhookEvent).where(WebhookEvent.webhook_id == webhook_id)).scalar_one()


def snapshot(app: App, order_id: int = 6100000000101) -> OrderSnapshot | None:
    with app.db.session() as session:
        return session.execute(select(OrderSnapshot).where(
            OrderSnapshot.order_id == f"gid://shopify/Order/{order_id}")).scalar_one_or_none()


def texts(sandbox: KakaoSandbox, key: str = "me") -> list[str]:
    return [template["text"] for template in sandbox.received(key)]


# -- crash and restart -------------------------------------------------------------------------


def test_events_answered_but_never_processed_are_processed_after_a_restart(
        make_bot: Callable[..., App], shopify: ShopifySandbox, sandbox: KakaoSandbox) -> None:
    from bot.sandbox.server import serve
    from bot.web.server import create_app

    first = make_bot()
    with serve(create_app(first)) as server:  # the process that answered 200 — and then died
        hooks = Hooks(shopify, server.url)
        payloads = [new_order(shopify) for _ in range(3)]
        assert all(hooks.send("orders/create", p).status_code == 200 for p in payloads)
    first.close()
    assert sandbox.received("me") == []

    restarted = make_bot(login=False, connect=False)  # a new process on the same database file
    assert restarted.db.url == first.db.url
    worker = WebhookWorker(restarted)
    worker.start()  # draining what was left is the first thing it does
    try:
        wait_for(lambda: all(r.status == "done" for r in events(restarted)))
    finally:
        assert worker.stop(10)
    assert sorted(text.splitlines()[0] for text in texts(sandbox)) == sorted(
        f"🛒 새 주문 {p['name']}" for p in payloads)


CHILD = """
import os, signal, sys
from bot.app import App
from bot.app import load_config
from bot.config.secrets import Secrets
from bot.webhooks.worker import WebhookWorker

app = App(load_config(sys.argv[1]), Secrets(os.environ))
worker = WebhookWorker(app)
real = worker.handlers["orders/create"]

def die_midway(event):
    real(event)  # the alert went out ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process is killed before recording "done"

worker.handlers["orders/create"] = die_midway
worker.drain_once()
"""


def test_a_worker_killed_while_processing_leaves_a_row_that_is_retaken_and_not_alerted_twice(
        bot: App, shopify: ShopifySandbox, sandbox: KakaoSandbox, secret_key: str) -> None:
    put(bot, "orders/create", new_order(shopify), webhook_id="wh-killed")
    env = {"PATH": os.environ.get("PATH", ""), "BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY,
           "KAKAO_CLIENT_SECRET": CLIENT_SECRET, "SHOPIFY_API_KEY": "x", "SHOPIFY_API_SECRET": API_SECRET,
           "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", CHILD, str(bot.config.path)], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -9, child.stderr
    left = row(bot, "wh-killed")
    assert left.status == "processing" and left.attempts == 1
    assert left.claimed_by.split(":")[1] != str(os.getpid())  # claimed by the child, now dead
    assert len(sandbox.received("me")) == 1  # sent by the killed process

    worker = WebhookWorker(bot)
    assert worker.drain_once() == 1  # its claimer is dead on this host: taken over at once
    done = row(bot, "wh-killed")
    assert done.status == "done" and done.attempts == 2 and done.claimed_by == worker.owner
    assert len(sandbox.received("me")) == 1  # the deliveries table knew it was sent


def test_a_processing_row_of_a_live_claimer_is_left_until_its_claim_is_stale(
        bot: App, shopify: ShopifySandbox, sandbox: KakaoSandbox, clock) -> None:  # noqa: ANN001
    put(bot, "orders/create", new_order(shopify), webhook_id="wh-stuck")
    other = "elsewhere.example:4242:abcd1234"  # another host: its process cannot be checked
    with bot.db.session() as session:
        session.execute(update(WebhookEvent).values(status="processing", claimed_by=other, claimed_at=clock(),
                                                    attempts=1))
    worker = WebhookWorker(bot, stale_claim=timedelta(minutes=15))
    assert worker.drain_once() == 0
    assert row(bot, "wh-stuck").status == "processing"
    clock.advance(minutes=16)
    assert worker.drain_once() == 1
    assert row(bot, "wh-stuck").status == "done"
    assert len(sandbox.received("me")) == 1


def test_a_pass_broken_off_by_a_database_error_leaves_nothing_stranded(bot: App, shopify: ShopifySandbox,
                                                                        sandbox: KakaoSandbox) -> None:
    put(bot, "orders/create", new_order(shopify), webhook_id="wh-broken")
    worker = WebhookWorker(bot)
    real, calls = worker._finish, []

    def finish_fails_once(event, handled):  # noqa: ANN001, ANN202
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("database went away while recording the outcome")
        return real(event, handled)

    worker._finish = finish_fails_once
    with pytest.raises(RuntimeError):
        worker.drain_once()
    assert row(bot, "wh-broken").status == "processing"  # claimed by this very worker
    assert worker.drain_once() == 1  # its own leftover, taken again
    assert row(bot, "wh-broken").status == "done" and row(bot, "wh-broken").attempts == 2
    assert len(sandbox.received("me")) == 1


# -- failures and retries ----------------------------------------------------------------------


def test_a_failed_alert_is_retried_with_backoff_and_sends_only_what_is_missing(
        bot: App, shopify: ShopifySandbox, sandbox: KakaoSandbox, clock) -> None:  # noqa: ANN001
    sandbox.fail_next(MEMO_PATH, 400, {"msg": "bad request", "code": -2})
    put(bot, "orders/create", new_order(shopify), webhook_id="wh-retry")
    worker = WebhookWorker(bot)
    assert worker.drain_once() == 1
    failed = row(bot, "wh-retry")
    assert failed.status == "failed" and failed.attempts == 1 and "new-orders → me" in failed.error
    assert failed.next_attempt_at == clock() + timedelta(seconds=30)
    assert failed.body  # kept for the retry
    assert worker.drain_once() == 0  # not due yet
    clock.advance(seconds=31)
    assert worker.drain_once() == 1
    done = row(bot, "wh-retry")
    assert done.status == "done" and done.attempts == 2 and done.error is None
    assert len(sandbox.received("me")) == 1


def test_an_event_that_keeps_failing_gives_up_after_max_attempts(bot: App, shopify: ShopifySandbox, clock) -> None:  # noqa: ANN001
    put(bot, "orders/create", new_order(shopify), webhook_id="wh-bad")
    worker = WebhookWorker(bot, max_attempts=3)

    def broken(event):  # noqa: ANN001, ANN202
        raise RuntimeError("handler bug")

    worker.handlers["orders/create"] = broken
    for attempt in range(1, 4):
        assert worker.drain_once() == 1
        clock.advance(hours=2)
        assert row(bot, "wh-bad").attempts == attempt
    final = row(bot, "wh-bad")
    assert final.status == "failed" and final.next_attempt_at is None and "handler bug" in final.error
    assert worker.drain_once() == 0
    assert MAX_ATTEMPTS >= 3


def test_a_row_retaken_too_often_is_given_up(bot: App, shopify: ShopifySandbox, clock) -> None:  # noqa: ANN001
    put(bot, "orders/create", new_order(shopify), webhook_id="wh-poison")
    with bot.db.session() as session:
        session.execute(update(WebhookEvent).values(status="processing", claimed_by="gone.example:1:x",
                                                    claimed_at=clock() - timedelta(hours=1), attempts=3))
    assert WebhookWorker(bot, max_attempts=3).drain_once() == 1
    final = row(bot, "wh-poison")
    assert final.status == "failed" and final.next_attempt_at is None and "gave up" in final.error


# -- orders/updated: the snapshot filter and stale events --------------------------------------


def test_a_first_update_without_snapshot_stores_one_and_alerts_nothing(bot: App, sandbox: KakaoSandbox,
                                                                        worker: WebhookWorker) -> None:
    put(bot, "orders/updated", order_body(updated=t(5)), webhook_id="u1", triggered_at=t(5))
    assert worker.drain_once() == 1
    assert row(bot, "u1").status == "done" and "no snapshot yet" in row(bot, "u1").result
    stored = snapshot(bot)
    assert stored is not None and stored.updated_at == t(5) and stored.last_event_at == t(5)
    assert json.loads(stored.snapshot_json)["items"] == [["sku:BEAN-200", 1], ["sku:DRIP-10", 2]]
    assert sandbox.received("me") == []


def test_the_snapshot_holds_no_personal_data(bot: App, worker: WebhookWorker) -> None:
    put(bot, "orders/create", order_body(), triggered_at=t(0))
    worker.drain_once()
    stored = snapshot(bot).snapshot_json
    for personal in ("민지", "테헤란로", "06234", "1234-5678", "customer@example.com"):
        assert personal not in stored
    assert set(json.loads(stored)) == {"v", "address", "items"}
    assert events(bot)[0].body == ""


@pytest.mark.parametrize("change, expected", [
    ({"tags": "vip"}, None),
    ({"note": "문 앞에 놓아주세요", "financial_status": "paid"}, None),
    ({"items": (("BEAN-200", 1), ("DRIP-10", 3))}, "상품 구성"),
    ({"items": (("BEAN-200", 1), ("DRIP-10", 2), ("MUG-01", 1))}, "상품 구성"),
    ({"items": (("DRIP-10", 2), ("BEAN-200", 1))}, None),  # same multiset, other order
    ({"address": {**ADDRESS, "address2": "102호"}}, "배송지"),
    ({"address": {**ADDRESS, "latitude": 37.6}}, None),  # geocoding is no address change
    ({"address": {**ADDRESS, "zip": "06235"}, "items": (("BEAN-200", 2), ("DRIP-10", 2))}, "배송지, 상품 구성"),
])
def test_orders_updated_alerts_only_on_address_or_items_changes(bot: App, sandbox: KakaoSandbox,
                                                               worker: WebhookWorker, change: dict,
                                                               expected: str | None) -> None:
    put(bot, "orders/create", order_body(updated=t(0)), triggered_at=t(0))
    assert worker.drain_once() == 1
    assert len(texts(sandbox)) == 1  # the new-order alert
    fields = dict(change)
    items = fields.pop("items", (("BEAN-200", 1), ("DRIP-10", 2)))
    address = fields.pop("address", None)
    put(bot, "orders/updated", order_body(updated=t(3), items=items, address=address, **fields),
        webhook_id="upd", triggered_at=t(3))
    assert worker.drain_once() == 1
    assert row(bot, "upd").status == "done"
    alerts = texts(sandbox)[1:]
    if expected is None:
        assert alerts == []
    else:
        (text,) = alerts
        assert text.startswith("✏️ 주문 변경 #1001\n변경: " + expected)
        for personal in ("민지", "테헤란로", "06234", "customer@example.com"):
            assert personal not in text
    assert snapshot(bot).updated_at == t(3)


def test_a_removed_line_item_counts_by_current_quantity(bot: App, sandbox: KakaoSandbox,
                                                        worker: WebhookWorker) -> None:
    put(bot, "orders/create", order_body(updated=t(0)), triggered_at=t(0))
    edited = order_body(updated=t(1))
    edited["line_items"][1]["current_quantity"] = 0  # an order edit removed it; `quantity` stays 2
    put(bot, "orders/updated", edited, webhook_id="edit", triggered_at=t(1))
    worker.drain_once()
    assert texts(sandbox)[1].startswith("✏️ 주문 변경 #1001\n변경: 상품 구성\n₩42,000 · 1개")


def test_out_of_order_updates_never_overwrite_newer_state(bot: App, sandbox: KakaoSandbox,
                                                          worker: WebhookWorker) -> None:
    put(bot, "orders/updated", order_body(updated=t(1)), webhook_id="u-base", triggered_at=t(1))
    worker.drain_once()
    newer = order_body(updated=t(10), items=(("BEAN-200", 5),))
    older = order_body(updated=t(5), items=(("BEAN-200", 3),))
    put(bot, "orders/updated", newer, webhook_id="u-newer", triggered_at=t(10))
    put(bot, "orders/updated", older, webhook_id="u-older", triggered_at=t(5))  # arrives last
    assert worker.drain_once() == 2
    assert row(bot, "u-newer").status == "done"
    stale = row(bot, "u-older")
    assert stale.status == "ignored" and stale.result.startswith("stale")
    stored = snapshot(bot)
    assert stored.updated_at == t(10) and json.loads(stored.snapshot_json)["items"] == [["sku:BEAN-200", 5]]
    assert len(texts(sandbox)) == 1 and "×5" in texts(sandbox)[0]


def test_same_updated_at_is_ordered_by_the_triggered_at(bot: App, worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    put(bot, "orders/updated", order_body(updated=t(1)), webhook_id="a", triggered_at=t(2))
    put(bot, "orders/updated", order_body(updated=t(1), items=(("X", 1),)), webhook_id="b", triggered_at=t(1))
    worker.drain_once()
    assert row(bot, "b").status == "ignored"
    assert sandbox.received("me") == []


def test_an_older_create_does_not_overwrite_a_newer_snapshot(bot: App, worker: WebhookWorker,
                                                             sandbox: KakaoSandbox) -> None:
    put(bot, "orders/updated", order_body(updated=t(9), items=(("BEAN-200", 4),)), webhook_id="upd",
        triggered_at=t(9))
    put(bot, "orders/create", order_body(updated=t(0)), webhook_id="create", triggered_at=t(0))
    worker.drain_once()
    assert row(bot, "create").status == "done" and len(texts(sandbox)) == 1  # the new order is still alerted
    assert json.loads(snapshot(bot).snapshot_json)["items"] == [["sku:BEAN-200", 4]]


def test_redelivered_update_after_a_crash_alerts_once(bot: App, worker: WebhookWorker, sandbox: KakaoSandbox) -> None:
    put(bot, "orders/create", order_body(updated=t(0)), triggered_at=t(0))
    worker.drain_once()
    change = order_body(updated=t(4), items=(("BEAN-200", 9),))
    # The same change delivered twice under two webhook ids (e.g. two subscriptions).
    put(bot, "orders/updated", change, webhook_id="c1", triggered_at=t(4))
    put(bot, "orders/updated", change, webhook_id="c2", triggered_at=t(4))
    worker.drain_once()
    assert len(texts(sandbox)) == 2  # new + one change alert


def test_jobs_without_on_update_get_no_change_alerts_and_store_no_snapshots(make_bot: Callable[..., App],
                                                                            sandbox: KakaoSandbox) -> None:
    app = make_bot(ALERT_JOB + "on_update = false\n")
    worker = WebhookWorker(app)
    put(app, "orders/create", order_body(), triggered_at=t(0))
    put(app, "orders/updated", order_body(updated=t(2), items=(("Z", 1),)), webhook_id="u", triggered_at=t(2))
    worker.drain_once()
    assert snapshot(app) is None
    assert row(app, "u").status == "ignored"
    assert len(texts(sandbox)) == 1


def test_alerts_go_to_friends_without_customer_data(make_bot: Callable[..., App], sandbox: KakaoSandbox) -> None:
    friend = sandbox.add_friend("직원01")
    app = make_bot(ALERT_JOB.replace('to = ["me"]', 'to = ["me", "friend:직원01"]'))
    put(app, "orders/create", order_body(), triggered_at=t(0))
    WebhookWorker(app).drain_once()
    (text,) = texts(sandbox, friend)
    assert text == texts(sandbox)[0]
    assert "민지" not in text and "customer@" not in text and "₩42,000" in text


# -- app/uninstalled and the compliance topics -------------------------------------------------


def test_app_uninstalled_wipes_the_tokens(bot: App, hooks: Hooks, shopify: ShopifySandbox,
                                          worker: WebhookWorker) -> None:
    assert bot.shopify_tokens.status(SHOP, "default").status == "active"
    answer = shopify.uninstall(SHOP, "shopify-client-id", webhook_url=hooks.url + "/shopify/default/webhooks")
    assert answer.status_code == 200
    assert worker.drain_once() == 1
    status = bot.shopify_tokens.status(SHOP, "default")
    assert status.status == "uninstalled"
    with bot.db.session() as session:
        install = session.execute(select(ShopifyInstall)).scalar_one()
        assert install.access_token_enc == "" and install.refresh_token_enc is None
    assert events(bot)[0].status == "done"


def test_compliance_topics_answer_200_and_delete_what_they_name(bot: App, hooks: Hooks,
                                                               worker: WebhookWorker, caplog) -> None:  # noqa: ANN001
    for number in (101, 102, 103):
        put(bot, "orders/create", order_body(number), webhook_id=f"create-{number}", triggered_at=t(0))
    put(bot, "orders/create", order_body(201), webhook_id="other-create", triggered_at=t(0), shop=OTHER_SHOP)
    worker.drain_once()
    assert all(snapshot(bot, n) for n in (101, 102, 103))
    with bot.db.session() as session:  # another shop's snapshot (as if it had an alert job too)
        session.add(OrderSnapshot(shop=OTHER_SHOP, order_id="gid://shopify/Order/201", snapshot_json="{}"))

    request = {"shop_id": 1, "shop_domain": SHOP, "orders_requested": [101, 999],
               "customer": {"id": 77, "email": "customer@example.com", "phone": "010"},
               "data_request": {"id": 9999}}
    assert hooks.send("customers/data_request", request).status_code == 200
    with caplog.at_level("WARNING"):
        worker.drain_once()
    report = events(bot)[-1]
    assert report.status == "done" and "gid://shopify/Order/101" in report.result
    assert "999" not in report.result.split("holds")[1]
    assert "customer@example.com" not in caplog.text and "customer data request 9999" in caplog.text

    redact = {"shop_id": 1, "shop_domain": SHOP, "customer": {"id": 77, "email": "customer@example.com"},
              "orders_to_redact": [101, 102]}
    assert hooks.send("customers/redact", redact).status_code == 200
    worker.drain_once()
    assert snapshot(bot, 101) is None and snapshot(bot, 102) is None and snapshot(bot, 103) is not None

    StoredJobState(bot.db, state_key(SHOP)).set("since", "2026-11-22T00:00:00+00:00")
    assert hooks.send("shop/redact", {"shop_id": 1, "shop_domain": SHOP}).status_code == 200
    worker.drain_once()
    assert snapshot(bot, 103) is None and snapshot(bot, 201) is not None  # another shop's data stays
    remaining = events(bot)
    assert [(e.shop, e.topic) for e in remaining] == [(OTHER_SHOP, "orders/create"), (SHOP, "shop/redact")]
    assert remaining[-1].status == "done" and remaining[-1].body == ""
    with bot.db.session() as session:
        assert session.get(JobMemory, (state_key(SHOP), "since")) is None


def test_a_body_naming_another_shop_acts_on_nothing(bot: App, worker: WebhookWorker) -> None:
    """Headers are not signed: a captured body resent with another shop or topic must not destroy anything."""
    put(bot, "app/uninstalled", {"myshopify_domain": OTHER_SHOP, "domain": OTHER_SHOP}, webhook_id="swap-shop")
    put(bot, "app/uninstalled", order_body(), webhook_id="swap-topic")  # an order body as app/uninstalled
    put(bot, "shop/redact", {"shop_domain": OTHER_SHOP}, webhook_id="swap-redact")
    assert worker.drain_once() == 3
    assert [(r.status, r.result.split(",")[0]) for r in events(bot)] == [
        ("ignored", f"the body names shop {OTHER_SHOP!r}"), ("ignored", "the body does not name the shop"),
        ("ignored", f"the body names shop {OTHER_SHOP!r}")]
    assert bot.shopify_tokens.status(SHOP, "default").status == "active"


def test_stopping_hands_back_claimed_events_not_started(bot: App) -> None:
    for n in range(5):
        put(bot, "orders/create", order_body(500 + n), webhook_id=f"s{n}", triggered_at=t(0))
    worker = WebhookWorker(bot, claim_batch=5)
    real = worker.handlers["orders/create"]

    def first_then_stop(event):  # noqa: ANN001, ANN202
        worker._stop.set()  # as stop() does, while this event is in hand
        return real(event)

    worker.handlers["orders/create"] = first_then_stop
    assert worker.drain_once() == 1
    assert [(r.status, r.attempts, r.claimed_by) for r in events(bot)] == (
        [("done", 1, worker.owner)] + [("pending", 0, None)] * 4)
    assert WebhookWorker(bot).drain_once() == 4


def test_customers_redact_empties_unprocessed_bodies_of_those_orders(bot: App, worker: WebhookWorker) -> None:
    put(bot, "orders/updated", order_body(301), webhook_id="waiting", triggered_at=t(0))
    with bot.db.session() as session:  # failed earlier, waiting for its retry
        session.execute(update(WebhookEvent).values(status="failed", claimed_by="x", attempts=1,
                                                    next_attempt_at=datetime(2030, 1, 1, tzinfo=timezone.utc)))
    put(bot, "customers/redact", {"orders_to_redact": [301]}, webhook_id="redact")
    worker.drain_once()
    assert row(bot, "waiting").body == ""


def test_finished_events_are_pruned_after_a_week_and_then_only(bot: App, worker: WebhookWorker, clock) -> None:  # noqa: ANN001
    put(bot, "products/update", {"id": 1}, webhook_id="old")
    worker.drain_once()
    clock.advance(days=6)
    put(bot, "products/update", {"id": 2}, webhook_id="waiting")
    assert worker.prune() == 0
    clock.advance(days=2)
    assert worker.prune() == 1
    assert [r.webhook_id for r in events(bot)] == ["waiting"]


# -- several workers ---------------------------------------------------------------------------


def drain_together(apps: list[App], count: int) -> list[int]:
    workers = [WebhookWorker(app, alerts=AlertSender(app)) for app in apps]
    barrier = threading.Barrier(len(workers))
    handled = [0] * len(workers)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(10)
            handled[index] = workers[index].drain_once()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sum(handled) == count
    return handled


def check_each_processed_once(app: App, sandbox: KakaoSandbox, count: int) -> None:
    rows = events(app)
    assert len(rows) == count
    assert all(r.status == "done" and r.attempts == 1 for r in rows)
    assert len(sandbox.received("me")) == count
    with app.db.session() as session:
        deliveries = list(session.scalars(select(Delivery)))
    assert len(deliveries) == count and all(d.status == "sent" for d in deliveries)
    assert len({d.slot_key for d in deliveries}) == count


def test_two_workers_on_sqlite_process_each_event_once(make_bot: Callable[..., App], sandbox: KakaoSandbox) -> None:
    first = make_bot()
    second = make_bot(login=False, connect=False)  # another App (engine) on the same file
    count = 24
    for n in range(count):
        put(first, "orders/create", order_body(7000 + n), webhook_id=f"w{n}", triggered_at=t(0))
    drain_together([first, second, first], count)
    check_each_processed_once(first, sandbox, count)


@pytest.mark.postgres
def test_two_instances_on_postgresql_process_each_event_once(make_bot: Callable[..., App], sandbox: KakaoSandbox,
                                                             postgres_url: str) -> None:
    first = make_bot(db_url=postgres_url)
    second = make_bot(db_url=postgres_url, login=False, connect=False)
    count = 24
    for n in range(count):
        put(first, "orders/create", order_body(7000 + n), webhook_id=f"w{n}", triggered_at=t(0))
    # The same delivery again: the unique key holds on PostgreSQL too.
    assert not store_event(first, app="default", shop=SHOP, topic="orders/create", webhook_id="w0", body="{}")
    drain_together([first, second], count)
    check_each_processed_once(first, sandbox, count)


# -- the snapshot functions --------------------------------------------------------------------


def test_snapshot_functions() -> None:
    base = order_snapshot(order_body())
    assert snapshot_changes(base, order_snapshot(order_body(tags="x"))) == []
    assert snapshot_changes(base, order_snapshot(order_body(address={}))) == ["shipping_address"]
    without = order_body()
    del without["shipping_address"]
    assert order_snapshot(without)["address"] is None
    no_sku = order_body(items=(("", 1),))
    no_sku["line_items"][0]["variant_id"] = 55
    assert order_snapshot(no_sku)["items"] == [["variant:55", 1]]
    spaced = order_body(address={**ADDRESS, "address1": "  테헤란로   1 "})
    assert snapshot_changes(base, order_snapshot(spaced)) == []
