"""What the webhook route does before its 200: one Core INSERT (no ORM Session), one log line, and a
database connection that died between requests survived without a ping per checkout.

The route's answers themselves (401/400/413, duplicates, kill -9 after the 200) are tested in
test_webhooks.py and tests/scenarios; these tests are about the work done per request.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from typing import Callable

import pytest
import requests
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.app import App
from bot.sandbox.server import serve
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.signing import webhook_hmac
from bot.web.server import create_app
from bot.webhooks.inbox import store_event

from webhook_helpers import HOOK_PATH, Hooks, events


def _order(number: int) -> dict:
    return {"id": 6_000 + number, "admin_graphql_api_id": f"gid://shopify/Order/{6_000 + number}",
            "name": f"#{number}", "updated_at": "2026-11-22T09:05:00+09:00"}


def test_the_route_opens_no_orm_session(bot: App, hooks: Hooks) -> None:
    began: list[str] = []

    def note(_session: Session, _transaction: object, _connection: object) -> None:
        began.append(threading.current_thread().name)

    event.listen(Session, "after_begin", note)
    try:
        answers = [hooks.send("orders/updated", _order(1), webhook_id="w1"),
                   hooks.send("orders/updated", _order(1), webhook_id="w1")]
    finally:
        event.remove(Session, "after_begin", note)
    assert [answer.json()["status"] for answer in answers] == ["accepted", "duplicate"]
    assert began == []  # no worker runs in this test: any ORM transaction would be the route's
    assert [stored.webhook_id for stored in events(bot)] == ["w1"]


def test_one_log_line_per_request(bot: App, hooks: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        caplog.clear()
        answer = hooks.send("orders/updated", _order(2), webhook_id="w2")
        assert answer.status_code == 200
    lines = [record for record in caplog.records if record.name.startswith("bot")]
    assert [record.name for record in lines] == ["bot.access"]
    assert f"POST {HOOK_PATH} 200" in lines[0].getMessage()


def test_a_redelivery_is_answered_from_the_same_single_statement(bot: App) -> None:
    def send(webhook_id: str) -> bool:
        return store_event(bot, app="default", shop="my-store.myshopify.com", topic="orders/updated",
                           webhook_id=webhook_id, body="{}")

    statements: list[str] = []
    event.listen(bot.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(statement.split()[0].upper()))
    assert [send("a"), send("a"), send("b")] == [True, False, True]
    # One INSERT per delivery: no SELECT first, no second statement.
    assert statements == ["INSERT"] * 3


# -- SQLite: writers hold the write lock from their first statement --------------------------------


def test_a_write_transaction_holds_sqlites_write_lock_from_its_start(bot: App) -> None:
    path = make_url(bot.db.url).database
    with bot.db.write_transaction() as connection:
        connection.execute(text("SELECT 1"))  # a read only: a deferred BEGIN would not have locked yet
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_a_write_transaction_rolls_back_on_error(bot: App) -> None:
    def rows() -> int:
        with bot.db.engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM job_memory WHERE job = 'j'")).scalar_one()

    with pytest.raises(RuntimeError):
        with bot.db.write_transaction() as connection:
            connection.execute(text("INSERT INTO job_memory (job, key, value_json, updated_at) VALUES ('j', 'k', '1', '2026-01-01')"))
            raise RuntimeError("after the insert")
    assert rows() == 0
    with bot.db.write_transaction() as connection:
        connection.execute(text("INSERT INTO job_memory (job, key, value_json, updated_at) "
                                "VALUES ('j', 'k', '1', '2026-01-01')"))
    assert rows() == 1


# -- PostgreSQL: no ping per checkout, a dead connection survived ---------------------------------------


def _kill_other_connections(url: str) -> int:
    """Terminate every server connection to the database of `url` except this one (a server restart, as
    the pooled connections see it)."""
    from sqlalchemy import create_engine

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return len(connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_no_ping_per_checkout_on_postgresql(make_bot: Callable[..., App], postgres_url: str) -> None:
    app = make_bot(db_url=postgres_url, login=False, connect=False)
    assert app.db.engine.pool._pre_ping is False  # noqa: SLF001 - the pool's own setting is the point
    selects: list[str] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: selects.append(statement) if statement.startswith("SELECT") else None)
    for number in range(5):
        store_event(app, app="default", shop="my-store.myshopify.com", topic="orders/updated",
                    webhook_id=f"p{number}", body="{}")
    assert selects == []


@pytest.mark.postgres
def test_the_route_survives_a_database_restart_between_requests(make_bot: Callable[..., App], postgres_url: str,
                                                                 shopify: ShopifySandbox) -> None:
    app = make_bot(db_url=postgres_url, login=False, connect=False)
    with serve(create_app(app)) as server:
        hooks = Hooks(shopify, server.url)
        assert hooks.send("orders/updated", _order(3), webhook_id="before").json()["status"] == "accepted"
        assert _kill_other_connections(postgres_url) >= 1  # the pooled connection of the first request
        answer = hooks.send("orders/updated", _order(4), webhook_id="after")
        assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    assert [stored.webhook_id for stored in events(app)] == ["before", "after"]


@pytest.mark.postgres
def test_a_connection_that_dies_again_is_retried_only_once(make_bot: Callable[..., App], postgres_url: str) -> None:
    app = make_bot(db_url=postgres_url, login=False, connect=False)
    calls: list[int] = []

    def work(connection) -> None:  # noqa: ANN001
        calls.append(1)
        connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(OperationalError):
        app.db.run_write(work)
    assert len(calls) == 2  # died before the commit: run once more, then given up


# -- in front of Flask: the same answers as everywhere -------------------------------------------------------------


def test_a_chunked_delivery_is_stored_too(bot: App, hooks: Hooks) -> None:
    body = json.dumps(_order(5)).encode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
               "X-Shopify-Hmac-Sha256": webhook_hmac(body, "shopify-client-secret"),
               "X-Shopify-Shop-Domain": "my-store.myshopify.com", "X-Shopify-Webhook-Id": "chunked"}
    answer = requests.post(hooks.url + HOOK_PATH, data=iter([body[:10], body[10:]]), headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
    assert [stored.webhook_id for stored in events(bot)] == ["chunked"]


def test_a_failure_while_storing_is_the_servers_json_500_and_logged(bot: App, hooks: Hooks,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr("bot.web.webhook_intake.store_event", broken)
    answer = hooks.send("orders/updated", _order(6), webhook_id="w6")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal_error", "message": "internal error (see the server log)"}
    assert any(record.levelno == logging.ERROR and "webhooks failed" in record.getMessage()
               for record in caplog.records)


def test_a_post_without_content_length_reaches_the_flask_route(bot: App) -> None:
    body = json.dumps(_order(7)).encode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
               "X-Shopify-Hmac-Sha256": webhook_hmac(body, "shopify-client-secret"),
               "X-Shopify-Shop-Domain": "my-store.myshopify.com", "X-Shopify-Webhook-Id": "no-length"}
    # As a server that streams the body passes it: no length, the input ends where the body does.
    environ_overrides = {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}
    client = create_app(bot).test_client()
    answer = client.post(HOOK_PATH, data=body, headers=headers, environ_overrides=environ_overrides)
    assert answer.status_code == 200 and answer.get_json() == {"status": "accepted"}


@pytest.mark.postgres
def test_a_connection_idle_for_a_while_is_pinged_and_replaced_if_dead(make_bot: Callable[..., App], postgres_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_bot(db_url=postgres_url, login=False, connect=False)
    with app.db.session() as session:  # a pooled connection, now idle
        session.execute(text("SELECT 1"))
    monkeypatch.setattr("bot.store.db.IDLE_PING_AFTER", 0.0)  # "a while" is now
    assert _kill_other_connections(postgres_url) >= 1
    # An ORM session has no retry of its own: the ping at checkout is what saves it.
    with app.db.session() as session:
        assert session.execute(text("SELECT 2")).scalar_one() == 2


@pytest.mark.postgres
def test_concurrent_requests_do_not_open_a_connection_each(make_bot: Callable[..., App], postgres_url: str) -> None:
    app = make_bot(db_url=postgres_url, login=False, connect=False)
    opened: list[int] = []
    event.listen(app.db.engine, "connect", lambda *_a: opened.append(1))
    threads, rounds = 8, 4  # as many at once as `run` has request threads
    together = threading.Barrier(threads)

    def write(connection) -> None:  # noqa: ANN001
        connection.execute(text("SELECT 1"))
        together.wait(10)  # all eight transactions open at the same moment

    def requests_of_one_thread() -> None:
        for _ in range(rounds):
            app.db.run_write(write)
            together.wait(10)  # all eight back in the pool before the next round (a lull between bursts)

    workers = [threading.Thread(target=requests_of_one_thread) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    # Eight connections, kept in the pool between rounds (a pool of 5 closed three after every round).
    assert len(opened) <= threads
