"""A job's small persisted memory (the JobState of `jobs.base`), one JSON value per key."""

from __future__ import annotations

import json
from typing import Any

from bot.db import Database
from bot.models import JobMemory


class StoredJobState:
    def __init__(self, db: Database, job: str):
        self.db, self.job = db, job

    def get(self, key: str, default: Any = None) -> Any:
        with self.db.session() as session:
            row = session.get(JobMemory, (self.job, key))
            return json.loads(row.value_json) if row else default

    def set(self, key: str, value: Any) -> None:
        with self.db.session() as session:
            row = session.get(JobMemory, (self.job, key)) or JobMemory(job=self.job, key=key)
            row.value_json = json.dumps(value, ensure_ascii=False)
            session.add(row)
