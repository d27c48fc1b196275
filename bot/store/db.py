"""The database: engine, sessions, short Core write transactions and schema migrations (Alembic).

SQLite by default (the file and its folder are created private, 0600/0700); PostgreSQL
(psycopg 3) when several instances share state. `migrate()` is idempotent and is run by
every command that touches the database; the service runs Alembic in a child process
(`migrate(in_child=True)`, bot.store.migrate_child) so that it never holds Alembic's memory.

Hot paths write with `write_transaction()` (a Core Connection, no ORM Session) or `run_write()`
(the same, run once more when the connection turned out dead before anything was committed).
Pooled connections are not pinged on every checkout (a round trip each on PostgreSQL): only one
that sat idle for IDLE_PING_AFTER, and a dead one met under load is `run_write`'s single retry.
SQLite keeps `synchronous=FULL` (its WAL default): every commit is on disk before the answer,
power loss included.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import Connection, DateTime, Engine, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from bot.config.model import ConfigError
from bot.store.group_commit import GroupCommit
from bot.util.redaction import Redactor, scrub_statements

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Where a bad URL came from, for the error (the URL itself is never shown: it may hold a password).
URL_SOURCE = "$BOT_DATABASE_URL or [database] url"
# pg_advisory_lock key serialising migrations of instances that start together ("kaka" in ASCII, < 2**32
# so that pg_locks shows it as objid).
MIGRATION_LOCK_KEY = 0x6B616B61
# The newest revision under migrations/versions (a test keeps the two equal). A database already there
# is not handed to Alembic at all: importing it costs `run` some 10 MB of resident memory for nothing.
SCHEMA_HEAD = "0006"
# `migrate(in_child=True)`: the child's exit code for "cannot reach the database", and how long it may take
# (Alembic's import and a migration take seconds; the wait for another instance's migration lock, longer).
UNREACHABLE_EXIT = 3
MIGRATION_TIMEOUT = 600
# A pooled connection unused this long is pinged before it is handed out (the server may have restarted
# meanwhile); busy connections are not, which spares a round trip per transaction under load.
IDLE_PING_AFTER = 10.0
# PostgreSQL connections kept open: `run`'s 8 request threads, its webhook worker(s), the scheduler and
# /healthz at once. With SQLAlchemy's default of 5, the 6th concurrent request opened a connection and
# closed it again on return: a new server process per request under load (milliseconds each).
POOL_SIZE = 16

log = logging.getLogger(__name__)
T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class MigrationFailed(Exception):
    """Migrating in a child process (`Database.migrate(in_child=True)`) failed for another reason than an
    unreachable database (an unknown revision, a failing migration): the child's last line."""


def migrate_here(url: str) -> int:
    """The body of `python -m bot.store.migrate_child`: 0 migrated; UNREACHABLE_EXIT and the reason on
    stderr when the database cannot be reached; any other failure is raised (exit 1, its last line)."""
    database = Database(url)
    try:
        database.migrate()
    except DatabaseUnavailable as exc:
        print(exc.reason, file=sys.stderr)
        return UNREACHABLE_EXIT
    finally:
        database.dispose()
    return 0


class DatabaseUnavailable(Exception):
    """The database cannot be opened or reached (at start, or for `migrate`): one line naming the URL
    with its password masked, for a person to act on; the CLI exits 1 with it."""

    def __init__(self, url: str, reason: str):
        self.reason = reason
        shown = make_url(url).render_as_string(hide_password=True)
        super().__init__(f"cannot reach the database {shown}: {reason} "
                         f"(check that it is running, or fix {URL_SOURCE})")


class Database:
    def __init__(self, url: str, *, base_dir: Path | None = None, redactor: Redactor | None = None):
        self.url = normalize_url(url, base_dir)
        try:
            self.engine = _make_engine(self.url)
        except OSError as exc:  # the SQLite file or its folder cannot be made
            raise DatabaseUnavailable(self.url, exc.strerror or str(exc)) from None
        if redactor is not None:  # no secret value is ever stored in clear, whatever text carries it
            redactor.add(make_url(self.url).password)
            scrub_statements(self.engine, redactor)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock()  # write_session's queue: the writers of this process
        self._groups: dict[str, GroupCommit] = {}
        self._groups_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A unit of work for one short write (committed on exit, like `session`).

        SQLite has one writer at a time, and a writer that finds the file locked sleeps in steps of
        up to 100 ms before trying again: under load that turns into long answer times. The request
        threads and the workers of this process therefore queue on a lock of their own instead (a
        hand-over takes microseconds); writers elsewhere still meet SQLite's busy timeout. PostgreSQL
        locks rows, not the database: no lock there.
        """
        if not self.is_sqlite:
            with self.session() as session:
                yield session
            return
        with self._write_lock, self.session() as session:
            yield session

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """One short write as a SQLAlchemy Core transaction: committed on exit, rolled back on any exception.

        No ORM Session (its set-up costs more than a short write itself). On SQLite the writers of
        this process queue on the same lock as `write_session` (a hand-over takes microseconds, where
        SQLite's own busy wait sleeps in steps of milliseconds), and the transaction starts with
        BEGIN IMMEDIATE: it holds the write lock from its first statement, so a read followed by a
        write can never meet SQLITE_BUSY on the upgrade (which the busy timeout does not cover).
        PostgreSQL locks rows, not the database: no lock there.
        """
        if not self.is_sqlite:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._write_lock, self.engine.begin() as connection:
            # Straight to the driver (a statement through SQLAlchemy costs as much as the INSERT after it);
            # sqlite3 then sees the transaction open and commits it when SQLAlchemy commits.
            connection.connection.driver_connection.execute("BEGIN IMMEDIATE")
            yield connection

    def run_write(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in one `write_transaction`, its result returned.

        The one place that retries a transaction because its connection died: if the driver reports a
        disconnect (a restarted PostgreSQL, a connection dropped while pooled) before the commit was
        sent, nothing was written, and `work` runs once more on a fresh connection. A failure during
        the commit itself is never retried (it may have been committed).
        """
        for attempt in (1, 2):
            committing = False
            try:
                with self.write_transaction() as connection:
                    result = work(connection)
                    committing = True
                return result
            except DBAPIError as exc:
                if committing or attempt == 2 or not exc.connection_invalidated:
                    raise
                log.warning("database connection lost before the commit; trying once more on a new one")
        raise AssertionError("unreachable")  # pragma: no cover

    def group_commit(self, name: str, write: Callable[[Connection, Any], T]) -> Callable[[Any], T]:
        """`call(params)` → `write(connection, params)`, committed; on SQLite concurrent calls share one
        transaction (bot.store.group_commit: one wait for the disk instead of one each). On PostgreSQL,
        whose commits of concurrent transactions already share their WAL flush, each call is its own
        `run_write`. `name` identifies the kind of write: the first call's `write` is kept."""
        if not self.is_sqlite:
            return lambda params: self.run_write(lambda connection: write(connection, params))
        with self._groups_lock:
            return self._groups.setdefault(name, GroupCommit(self.run_write, write))

    def migrate(self, *, in_child: bool = False) -> None:
        """Bring the schema to head; DatabaseUnavailable if the database cannot be reached.

        in_child: Alembic runs in a python process of its own (`python -m bot.store.migrate_child`), so its
        ~10 MB of modules never enter this one — for the long-running service; MigrationFailed if it
        fails otherwise. A database at head is checked here with one SELECT either way, and an in-memory
        SQLite database (nothing another process could open) is migrated here.
        """
        try:
            if in_child and make_url(self.url).database not in (None, "", ":memory:"):
                if not self.schema_is_current():
                    self._migrate_in_child()
                return
            self._migrate()
        except OperationalError as exc:
            raise DatabaseUnavailable(self.url, _first_line(exc)) from None

    def _migrate_in_child(self) -> None:
        # The URL goes through stdin, not argv: it may hold a password, and argv is visible in `ps`.
        done = subprocess.run([sys.executable, "-m", "bot.store.migrate_child"], input=self.url, text=True,
                              capture_output=True, timeout=MIGRATION_TIMEOUT)
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        if done.returncode == UNREACHABLE_EXIT:
            raise DatabaseUnavailable(self.url, reason)
        if done.returncode != 0:
            raise MigrationFailed(f"the schema migration failed: {reason}")

    def _migrate(self) -> None:
        if self.schema_is_current():
            return
        from alembic import command

        if self.engine.dialect.name != "postgresql":
            command.upgrade(alembic_config(self.engine), "head")
            return
        # Several instances sharing one database may start together: without the lock both would
        # create the tables and one would fail. The others wait and then find the schema at head.
        with self.engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            lock.commit()
            try:
                command.upgrade(alembic_config(self.engine), "head")
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                lock.commit()

    def schema_is_current(self) -> bool:
        """True if the database is at SCHEMA_HEAD. Anything else (no table yet, an older or unknown
        revision, no connection) is for Alembic to upgrade or to explain."""
        try:
            with self.engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:
            return False
        return versions == [SCHEMA_HEAD]

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(exc: DBAPIError) -> str:
    """The driver's own reason, first line only ("connection refused", "unable to open database file")."""
    lines = str(exc.orig or exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def normalize_url(url: str, base_dir: Path | None) -> str:
    """Resolve relative SQLite paths against the config's folder; pick psycopg 3 for PostgreSQL.

    A URL that cannot be used is a ConfigError (exit 2) that does not repeat the URL.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(URL_SOURCE, "database.url", "not a valid database URL (bad host, port or format)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(URL_SOURCE, "database.url",
                          f"unsupported database driver {parsed.drivername!r}: use sqlite:/// or postgresql+psycopg://")
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        parsed = parsed.set(database=str(path))
    return parsed.render_as_string(hide_password=False)


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=POOL_SIZE)
        _ping_when_idle(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        _create_private_file(Path(parsed.database))
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed while one writer commits; busy_timeout waits for the lock.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted content (webhook bodies with customer data) is zeroed, not left in free space
        # (bot.store.sqlite_scrub also truncates the WAL once such data was emptied).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before handing it out only if it sat unused for IDLE_PING_AFTER.

    A dead one is replaced (DisconnectionError makes the pool connect afresh); one met dead under load
    is `Database.run_write`'s retry, and SQLAlchemy then invalidates the pool's older connections too.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:  # noqa: ANN001
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the connection is unusable
            raise DisconnectionError(f"idle connection failed its ping: {exc.__class__.__name__}") from exc
        if not alive:
            raise DisconnectionError("idle connection failed its ping")


def _create_private_file(path: Path) -> None:
    """The token database is created 0600 before SQLite opens it, so it is never world-readable."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


def insert_for(dialect_name: str, table: Any) -> Any:
    """An INSERT that knows `ON CONFLICT …` (on_conflict_do_nothing / _do_update) in the engine's dialect.

    The dialect module is imported here, not at start-up: the one the engine uses is loaded already, and
    the other (PostgreSQL's, 2 MB) then never is.
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def alembic_config(engine: Engine):  # -> alembic.config.Config
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
