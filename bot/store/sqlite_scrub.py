"""Personal data the bot deletes must be gone from the SQLite files too, not only from its tables.

Two things keep deleted bytes around: SQLite leaves a deleted or overwritten row's content in the
page's free space (and whole freed pages, e.g. the overflow pages of a long webhook body, on the
freelist), and in WAL mode every page ever written stays in `bot.sqlite3-wal` until the log is
reset. So every SQLite connection runs with `PRAGMA secure_delete=ON` (bot.store.db: freed content is
zeroed), and once personal data was emptied `scrub_files` checkpoints the WAL into the database and
truncates it to zero bytes (`PRAGMA wal_checkpoint(TRUNCATE)`).

PostgreSQL keeps dead tuples until VACUUM: that is the database administrator's (autovacuum's) part.
"""

from __future__ import annotations

import logging

from bot.store.db import Database

log = logging.getLogger(__name__)

# A checkpoint waits for readers of older snapshots; short, so the caller (the webhook worker) is
# not held up: if readers are busy it simply tries again on its next pass.
CHECKPOINT_BUSY_MS = 2000
NORMAL_BUSY_MS = 30000  # bot.store.db's busy_timeout, restored before the connection goes back to the pool


def scrub_files(db: Database) -> bool:
    """Checkpoint and truncate the WAL of a SQLite database; True once done (always on PostgreSQL)."""
    if not db.is_sqlite:
        return True
    with db.engine.connect() as connection:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
        try:
            busy, _frames, _copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={NORMAL_BUSY_MS}")
    if busy:
        log.debug("WAL checkpoint postponed: readers are busy")
    return not busy
