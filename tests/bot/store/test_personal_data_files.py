"""Personal data the bot deletes leaves the SQLite files too (issue 8, item 19): a customer's e-mail
and phone in a webhook body are gone from bot.sqlite3 and bot.sqlite3-wal once the body is emptied,
in a real `run` (HTTP server, webhook worker)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, select, text, update
from sqlalchemy.engine import make_url

from bot.app import App
from bot.sandbox.shopify import ShopifySandbox
from bot.store.db import Database
from bot.store.models import WebhookEvent
from bot.store.sqlite_scrub import scrub_files

from service_helpers import free_port, served
from webhook_helpers import ALERT_JOB, Hooks, new_order, wait_for

EMAIL = "hong.gildong.private@example.com"
PHONE = "+82-10-9876-5432"


def file_bytes(db: Database) -> dict[str, bytes]:
    path = Path(make_url(db.url).database)
    files = [path, path.with_name(path.name + "-wal")]
    return {file.name: file.read_bytes() if file.exists() else b"" for file in files}


def holding(db: Database, *needles: str) -> list[str]:
    """Names of the database files that still contain any of `needles`."""
    return [name for name, data in file_bytes(db).items() if any(n.encode() in data for n in needles)]


def test_an_emptied_webhook_body_leaves_neither_the_database_file_nor_the_wal(
        make_bot, shopify: ShopifySandbox) -> None:
    bot: App = make_bot(ALERT_JOB + f'\n[server]\nlisten = "127.0.0.1:{free_port()}"\n')
    payload = new_order(shopify)
    # A real order body runs to several KB: long enough for SQLite overflow pages.
    payload.update(email=EMAIL, phone=PHONE, note="배송 전 연락 부탁드립니다 " * 200,
                   customer={"id": 7, "email": EMAIL, "phone": PHONE, "first_name": "길동"})
    with served(bot) as base:
        answer = Hooks(shopify, base).send("orders/create", payload, webhook_id="wh-personal-1")
        assert answer.status_code == 200

        def emptied() -> bool:
            with bot.db.session() as session:
                row = session.scalars(select(WebhookEvent)).one()
                return row.status == "done" and row.body == ""

        wait_for(emptied, timeout=30)
        wait_for(lambda: holding(bot.db, EMAIL, PHONE) == [], timeout=30)
    assert holding(bot.db, EMAIL, PHONE) == []


def test_secure_delete_is_set_on_every_sqlite_connection(tmp_path) -> None:
    # Debian's SQLite is built with SECURE_DELETE on by default, others are not: so the test looks for
    # the bot setting it itself, on every new connection.
    db = Database(f"sqlite:///{tmp_path / 'pragma.sqlite3'}")
    statements: list[str] = []
    event.listen(db.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append),
                 insert=True)
    for _ in range(2):
        db.engine.dispose()
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    assert statements.count("PRAGMA secure_delete=ON") == 2
    db.dispose()


def test_scrub_files_truncates_the_wal_after_a_long_body_was_emptied(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'scrub.sqlite3'}")
    db.migrate()
    body = '{"email": "%s", "note": "%s"}' % (EMAIL, "x" * 20000)
    with db.session() as session:
        session.execute(text("INSERT INTO webhook_events (app, shop, topic, webhook_id, body, status, attempts, "
                             "received_at) VALUES ('a', 's.myshopify.com', 'orders/create', 'w', :b, 'done', 1, "
                             "'2026-11-22 00:00:00')"), {"b": body})
    with db.session() as session:
        session.execute(update(WebhookEvent).values(body=""))
    assert holding(db, EMAIL)  # the WAL still has the page images written at the insert
    assert scrub_files(db) is True
    assert holding(db, EMAIL) == []
    assert file_bytes(db)["scrub.sqlite3-wal"] == b""
    db.dispose()
