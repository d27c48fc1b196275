"""`Database.migrate(in_child=True)`: Alembic in a python of its own (bot.store.migrate_child), with the
same outcomes as in-process — migrated, DatabaseUnavailable naming the reason, or a refusal naming why."""

from __future__ import annotations

import socket
import sys

import pytest
from sqlalchemy import inspect, text

from bot.store.db import Database, DatabaseUnavailable, MigrationFailed


def test_in_child_migrates_a_new_file_and_leaves_alembic_out_of_this_process(tmp_path):
    already = "alembic" in sys.modules  # another test may have imported it: then only the schema is checked
    db = Database(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    try:
        db.migrate(in_child=True)
        assert db.schema_is_current() and "deliveries" in inspect(db.engine).get_table_names()
        db.migrate(in_child=True)  # at head: one SELECT, no child
        assert db.schema_is_current()
    finally:
        db.dispose()
    if not already:
        assert "alembic" not in sys.modules


def test_in_child_refuses_a_database_newer_than_this_code_naming_the_revision(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    try:
        db.migrate(in_child=True)
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(MigrationFailed, match="9999"):
            db.migrate(in_child=True)
    finally:
        db.dispose()


def test_in_child_an_unreachable_database_is_database_unavailable_with_the_password_masked():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = Database(f"postgresql+psycopg://bot:hunter2@127.0.0.1:{port}/bot")
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            db.migrate(in_child=True)
    finally:
        db.dispose()
    assert "hunter2" not in str(raised.value) and "cannot reach the database" in str(raised.value)
    assert str(port) in str(raised.value) and raised.value.reason
