"""A job's small persisted memory (the JobState of `jobs.base`), one JSON value per key."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from bot.store.db import Database, insert_for, utcnow
from bot.store.models import JobMemory


class StoredJobState:
    def __init__(self, db: Database, job: str):
        self.db, self.job = db, job

    def get(self, key: str, default: Any = None) -> Any:
        with self.db.session() as session:
            row = session.get(JobMemory, (self.job, key))
            return json.loads(row.value_json) if row else default

    def stored_json(self) -> dict[str, str]:
        """Every key of the job's memory and its JSON text, in one read (a run reads several keys)."""
        with self.db.engine.connect() as connection:
            rows = connection.execute(select(JobMemory.key, JobMemory.value_json).where(JobMemory.job == self.job))
            return {key: value_json for key, value_json in rows}

    def set(self, key: str, value: Any) -> None:
        self.set_many({key: value})

    def set_many(self, values: dict[str, Any]) -> None:
        """Several keys in one transaction: all of them stored, or none."""
        now = utcnow()
        # A Core transaction (no ORM Session to set up), queued with the process's other writers.
        with self.db.write_transaction() as connection:
            for key, value in values.items():
                # An upsert: two instances running the same job at once must not collide on the key.
                value_json = json.dumps(value, ensure_ascii=False)
                insert = insert_for(connection.dialect.name, JobMemory).values(job=self.job, key=key,
                                                                             value_json=value_json, updated_at=now)
                connection.execute(insert.on_conflict_do_update(index_elements=["job", "key"],
                                                                set_={"value_json": value_json, "updated_at": now}))
