"""The PostgreSQL tests never touch the database BOT_TEST_POSTGRES_URL names: each makes its own."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.store.db import Database

from scratch_postgres import PREFIX, postgres_server_url, scratch_database

pytestmark = pytest.mark.postgres


def _read(url: str, sql: str, **params: str):  # noqa: ANN202
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def _public_schema_oid(url: str) -> int:
    return _read(url, "SELECT oid FROM pg_namespace WHERE nspname = 'public'")


def _database_exists(server_url: str, name: str) -> bool:
    return bool(_read(server_url, "SELECT count(*) FROM pg_database WHERE datname = :name", name=name))


def test_the_postgres_url_fixture_leaves_the_named_database_alone(request: pytest.FixtureRequest) -> None:
    server = postgres_server_url()
    before = _public_schema_oid(server)  # a DROP SCHEMA public + CREATE SCHEMA public would change it

    url = request.getfixturevalue("postgres_url")
    Database(url).migrate()

    name = make_url(url).database
    assert name != make_url(server).database and name.startswith(PREFIX)
    assert _public_schema_oid(server) == before
    assert _read(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'deliveries'") == 1


def test_the_scratch_database_is_dropped_after_the_test() -> None:
    server = postgres_server_url()
    with scratch_database(server) as url:
        name = make_url(url).database
        db = Database(url)
        db.migrate()  # left connected on purpose: the drop must not wait for it
        assert _database_exists(server, name)
    assert not _database_exists(server, name)
    db.dispose()
