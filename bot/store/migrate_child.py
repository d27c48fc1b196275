"""`python -m bot.store.migrate_child`: bring the database whose URL is read from stdin to the newest schema.

The service (`run`, `bot.wsgi`) migrates through this child process (`Database.migrate(in_child=True)`):
Alembic and the migration scripts cost some 10 MB of resident memory that a long-running process would
otherwise keep for nothing after a first start. Exit 0 when migrated; bot.store.db.UNREACHABLE_EXIT with the
reason on stderr when the database cannot be reached; 1 with a traceback for any other failure.
"""

from __future__ import annotations

import sys

from bot.store.db import migrate_here

if __name__ == "__main__":
    sys.exit(migrate_here(sys.stdin.read().strip()))
