"""What the scheduler remembers of each job, in the job's memory: when it first knew the job ("seen":
slots before it are not owed) and the latest slot it ran ("done"), so a restart's catch-up neither
repeats a slot nor sends one the job never had."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bot.store.db import Database
from bot.store.job_memory import StoredJobState
from bot.util.times import parse_instant

MEMORY_KEY = "schedule"  # in the job's memory: {"seen": first known instant, "done": latest slot run}


def slot_marks(db: Database, job_name: str) -> dict[str, Any]:
    value = StoredJobState(db, job_name).get(MEMORY_KEY, {})
    return value if isinstance(value, dict) else {}


def mark_slots(db: Database, job_name: str, *, seen: datetime | None = None, done: datetime | None = None) -> None:
    """Record `seen` (only the first time) and `done` (only if later than the one recorded)."""
    marks = slot_marks(db, job_name)
    if seen is not None and parse_instant(marks.get("seen")) is None:
        marks["seen"] = seen.astimezone(timezone.utc).isoformat()
    if done is not None:
        previous = parse_instant(marks.get("done"))
        if previous is None or previous < done:
            marks["done"] = done.astimezone(timezone.utc).isoformat()
        marks.setdefault("seen", done.astimezone(timezone.utc).isoformat())
    StoredJobState(db, job_name).set(MEMORY_KEY, marks)
