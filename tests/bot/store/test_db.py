"""The database: private SQLite files, URL handling, idempotent migrations, UTC datetimes, PostgreSQL."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time as monotonic_time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

import bot.store.models  # noqa: F401  (tables on Base.metadata)
import tokens.models  # noqa: F401
from bot.app import load_config
from bot.cli.main import cli
from bot.config.model import ConfigError
from bot.store.db import MIGRATION_LOCK_KEY, SCHEMA_HEAD, Base, Database, UTCDateTime, alembic_config, normalize_url
from bot.store.models import JobMemory

UTC = timezone.utc
SEOUL = ZoneInfo("Asia/Seoul")
TABLES = {"deliveries", "job_memory", "kakao_logins"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive umask: whatever is private is so because the code made it so."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def schema_drift(engine) -> list:  # noqa: ANN001
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


# -- SQLite files ------------------------------------------------------------------------------


def test_sqlite_file_is_created_0600_in_a_0700_folder(tmp_path, open_umask):
    db = Database("sqlite:///data/bot.sqlite3", base_dir=tmp_path)
    try:
        assert mode(tmp_path / "data") == 0o700
        assert mode(tmp_path / "data" / "bot.sqlite3") == 0o600
        db.migrate()
        with db.session() as session:  # a write, so the WAL files exist
            session.add(JobMemory(job="menu", key="etag", value_json='"x"'))
        files = sorted((tmp_path / "data").iterdir())
        assert [path.name for path in files][0] == "bot.sqlite3"
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        db.dispose()


def test_nested_folders_are_created(tmp_path, open_umask):
    db = Database(f"sqlite:///{tmp_path}/a/b/bot.sqlite3")
    db.dispose()
    assert mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "b" / "bot.sqlite3") == 0o600


def test_an_existing_readable_file_is_made_private(tmp_path):
    path = tmp_path / "bot.sqlite3"
    path.write_bytes(b"")
    path.chmod(0o644)
    Database(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_relative_sqlite_path_is_resolved_against_the_config_folder(tmp_path, monkeypatch, write_config):
    config_path = write_config('[database]\nurl = "sqlite:///state/bot.sqlite3"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(config_path)
    db = Database(config.database.url, base_dir=config.base_dir)
    db.dispose()
    assert make_url(db.url).database == str(tmp_path / "state" / "bot.sqlite3")
    assert (tmp_path / "state" / "bot.sqlite3").is_file()
    assert list(elsewhere.iterdir()) == []


def test_absolute_and_memory_sqlite_urls_are_kept(tmp_path):
    assert normalize_url(f"sqlite:///{tmp_path}/x.db", Path("/somewhere")) == f"sqlite:///{tmp_path}/x.db"
    assert normalize_url("sqlite://", tmp_path) == "sqlite://"
    assert make_url(normalize_url("sqlite:///:memory:", tmp_path)).database == ":memory:"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url, expected", [
    ("postgresql://bot:pw@db.internal:5432/bot", "postgresql+psycopg://bot:pw@db.internal:5432/bot"),
    ("postgres://bot@db.internal/bot", "postgresql+psycopg://bot@db.internal/bot"),
    ("postgresql+psycopg://bot@db.internal/bot", "postgresql+psycopg://bot@db.internal/bot"),
])
def test_postgresql_urls_use_psycopg_3(url, expected):
    assert normalize_url(url, Path("/cfg")) == expected
    db = Database(url)  # no connection is made until one is needed
    assert db.engine.dialect.name == "postgresql" and db.engine.dialect.driver == "psycopg"
    db.dispose()


@pytest.mark.parametrize("url", ["postgresql://bot:hunter2@db.internal:nope/bot", "not a url hunter2",
                                 "mysql://bot:hunter2@db.internal/bot", "postgresql+psycopg2://bot:hunter2@db/bot"])
def test_an_unusable_url_is_a_config_error_that_does_not_show_it(url):
    with pytest.raises(ConfigError) as info:
        Database(url)
    assert info.value.key == "database.url"
    assert "BOT_DATABASE_URL" in info.value.file
    assert "hunter2" not in str(info.value)


# -- migrations on SQLite ----------------------------------------------------------------------------


def test_migrate_twice_is_idempotent_and_keeps_the_data(tmp_path):
    db = Database("sqlite:///bot.sqlite3", base_dir=tmp_path)
    try:
        db.migrate()
        assert TABLES | {"alembic_version"} <= set(inspect(db.engine).get_table_names())
        with db.session() as session:
            session.add(JobMemory(job="menu", key="etag", value_json='"abc"'))
        db.migrate()
        with db.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(versions) == 1
        with db.session() as session:
            assert session.get(JobMemory, ("menu", "etag")).value_json == '"abc"'
    finally:
        db.dispose()


def test_schema_head_is_the_newest_migration(tmp_path):
    from alembic.script import ScriptDirectory

    db = Database("sqlite:///bot.sqlite3", base_dir=tmp_path)
    try:
        assert ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head() == SCHEMA_HEAD
    finally:
        db.dispose()


MIGRATE_IN_A_CHILD = """
import sys
from bot.store.db import Database
Database(sys.argv[1]).migrate()
print("alembic imported" if "alembic" in sys.modules else "alembic not imported")
"""


def migrate_in_a_child(url: str) -> str:
    done = subprocess.run([sys.executable, "-c", MIGRATE_IN_A_CHILD, url], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_database_at_head_is_not_handed_to_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    assert migrate_in_a_child(url) == "alembic imported"  # a new file: Alembic creates the schema
    assert migrate_in_a_child(url) == "alembic not imported"  # at head: one SELECT, no Alembic
    db = Database(url)
    try:
        with db.engine.begin() as connection:  # an older revision is Alembic's to upgrade again
            connection.execute(text("DROP TABLE settings_clock"))  # undoes 0006
            connection.execute(text("DROP TABLE merchant_settings"))
            connection.execute(text("DROP INDEX ix_webhook_events_due"))  # undoes 0005
            connection.execute(text("CREATE INDEX ix_webhook_events_status ON webhook_events (status, next_attempt_at)"))
            connection.execute(text("DROP INDEX ix_problems_resolved"))  # undoes 0004
            connection.execute(text("DROP TABLE problems"))
            connection.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        assert not db.schema_is_current()
        assert migrate_in_a_child(url) == "alembic imported"
        assert db.schema_is_current() and "problems" in inspect(db.engine).get_table_names()
        assert schema_drift(db.engine) == []
    finally:
        db.dispose()


def test_a_database_newer_than_this_code_is_still_refused_by_alembic(tmp_path):
    db = Database("sqlite:///bot.sqlite3", base_dir=tmp_path)
    try:
        db.migrate()
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(Exception, match="9999"):
            db.migrate()
    finally:
        db.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path):
    db = Database("sqlite:///bot.sqlite3", base_dir=tmp_path)
    try:
        db.migrate()
        assert schema_drift(db.engine) == []
    finally:
        db.dispose()


def test_session_rolls_back_on_error(tmp_path):
    db = Database("sqlite:///bot.sqlite3", base_dir=tmp_path)
    try:
        db.migrate()
        with pytest.raises(RuntimeError):
            with db.session() as session:
                session.add(JobMemory(job="menu", key="etag", value_json='"abc"'))
                session.flush()
                raise RuntimeError("boom")
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(JobMemory)) == 0
    finally:
        db.dispose()


# -- UTCDateTime -----------------------------------------------------------------------------------------


def _instants_table() -> Table:
    return Table("instants", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))


def _round_trip(engine) -> None:  # noqa: ANN001
    table = _instants_table()
    table.metadata.create_all(engine)
    seoul = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=SEOUL)
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": 1, "at": seoul}, {"id": 2, "at": None}])
        back = connection.execute(select(table.c.at).where(table.c.id == 1)).scalar_one()
        assert back == seoul
        assert back.tzinfo is not None and back.utcoffset() == timedelta(0)
        assert back == datetime(2026, 11, 22, 23, 0, 0, 123456, tzinfo=UTC)
        assert connection.execute(select(table.c.at).where(table.c.id == 2)).scalar_one() is None
        # Comparisons in queries work on the instant, whatever zone the parameter is in.
        later = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
        assert connection.execute(select(table.c.id).where(table.c.at < later)).scalars().all() == [1]
        with pytest.raises(StatementError) as info:
            connection.execute(insert(table), [{"id": 3, "at": datetime(2026, 11, 23, 8, 0)}])
        assert isinstance(info.value.orig, ValueError) and "naive" in str(info.value.orig)
    table.metadata.drop_all(engine)


def test_utc_datetime_round_trips_on_sqlite(tmp_path):
    db = Database("sqlite:///bot.sqlite3", base_dir=tmp_path)
    try:
        _round_trip(db.engine)
    finally:
        db.dispose()


def test_utc_datetime_is_stored_as_utc_on_sqlite():
    engine = create_engine("sqlite://")
    table = _instants_table()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": 1, "at": datetime(2026, 11, 23, 8, 0, tzinfo=SEOUL)}])
        stored = connection.execute(text("SELECT at FROM instants")).scalar_one()
    assert stored.startswith("2026-11-22 23:00:00")


def test_utc_datetime_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 11, 23, 8, 0), create_engine("sqlite://").dialect)


# -- PostgreSQL --------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_migrate_on_postgresql_creates_the_tables_and_is_idempotent(postgres_url):
    db = Database(postgres_url)
    try:
        db.migrate()
        assert TABLES | {"alembic_version"} <= set(inspect(db.engine).get_table_names())
        columns = {column["name"]: column for column in inspect(db.engine).get_columns("deliveries")}
        assert columns["created_at"]["type"].timezone is True
        with db.session() as session:
            session.add(JobMemory(job="menu", key="etag", value_json='"abc"'))
        db.migrate()
        with db.session() as session:
            assert session.get(JobMemory, ("menu", "etag")).value_json == '"abc"'
        assert schema_drift(db.engine) == []
        assert db.schema_is_current()
        assert migrate_in_a_child(postgres_url) == "alembic not imported"
    finally:
        db.dispose()


@pytest.mark.postgres
def test_utc_datetime_round_trips_on_postgresql(postgres_url):
    db = Database(postgres_url)
    try:
        _round_trip(db.engine)
    finally:
        db.dispose()


def _waiting_for_the_migration_lock(connection) -> bool:  # noqa: ANN001
    return bool(connection.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = :key "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
        {"key": MIGRATION_LOCK_KEY}).scalar_one())


@pytest.mark.postgres
def test_migrations_wait_for_an_instance_that_is_migrating(postgres_url):
    db = Database(postgres_url)
    holder = create_engine(postgres_url)
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            db.migrate()
        except BaseException as exc:  # noqa: BLE001  (reported to the test thread)
            errors.append(exc)

    try:
        with holder.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            thread = threading.Thread(target=migrate)
            thread.start()
            deadline = monotonic_time.monotonic() + 30
            while not _waiting_for_the_migration_lock(connection):
                assert thread.is_alive(), errors
                assert monotonic_time.monotonic() < deadline, "migrate() never asked for the lock"
                connection.commit()
            assert not TABLES & set(inspect(connection).get_table_names())  # nothing done while waiting
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        thread.join(60)
        assert not thread.is_alive() and errors == []
        assert TABLES <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
        holder.dispose()


@pytest.mark.postgres
def test_instances_migrating_together_both_succeed(postgres_url):
    databases = [Database(postgres_url) for _ in range(3)]
    barrier = threading.Barrier(len(databases))
    errors: list[BaseException] = []

    def migrate(db: Database) -> None:
        try:
            barrier.wait(30)
            db.migrate()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(db,)) for db in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        with databases[0].engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        for db in databases:
            db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("plain", [False, True], ids=["psycopg-url", "postgresql-url"])
def test_cli_db_upgrade_with_bot_database_url(postgres_url, write_config, tmp_path, plain):
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://") if plain else postgres_url
    path = write_config("")  # the default database would be data/bot.sqlite3 beside it
    runner = CliRunner()
    for _ in range(2):  # a second upgrade finds everything in place
        result = runner.invoke(cli, ["--config", str(path), "db", "upgrade"], env={"BOT_DATABASE_URL": url})
        assert result.exit_code == 0, result.output
        assert "database is up to date" in result.output
    engine = create_engine(postgres_url)
    try:
        assert TABLES | {"alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert not (tmp_path / "data").exists()


# -- the CLI on SQLite -----------------------------------------------------------------------------------------


def test_cli_db_upgrade_creates_the_private_sqlite_file_beside_the_config(write_config, tmp_path, monkeypatch):
    path = write_config('[database]\nurl = "sqlite:///data/bot.sqlite3"')
    monkeypatch.delenv("BOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path.parent)
    result = CliRunner().invoke(cli, ["--config", str(path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "data") == 0o700 and mode(tmp_path / "data" / "bot.sqlite3") == 0o600
    engine = create_engine(f"sqlite:///{tmp_path}/data/bot.sqlite3")
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_cli_bad_bot_database_url_exits_2_without_showing_it(write_config, monkeypatch):
    path = write_config("")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    result = CliRunner().invoke(cli, ["--config", str(path), "db", "upgrade"],
                                env={"BOT_DATABASE_URL": "postgresql://bot:hunter2@db.internal:nope/bot"})
    assert result.exit_code == 2, result.output
    assert "BOT_DATABASE_URL" in result.output and "database.url" in result.output
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output
