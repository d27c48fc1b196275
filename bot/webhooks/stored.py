"""A stored webhook event as the worker hands it to a handler, and what the handler answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StoredEvent:
    """A claimed row, detached from its session: what a handler reads."""

    id: int
    app: str
    shop: str
    topic: str
    webhook_id: str
    triggered_at: datetime | None
    attempts: int
    body: str

    def payload(self) -> dict[str, Any]:
        """The body as a JSON object ({} if it is something else); parsed once, however often asked
        (the worker's checks and the handler both read it)."""
        cached = self.__dict__.get("_payload")
        if cached is None:
            value = json.loads(self.body) if self.body else {}
            cached = value if isinstance(value, dict) else {}
            self.__dict__["_payload"] = cached  # a frozen dataclass: the cache bypasses __setattr__
        return cached


@dataclass(frozen=True)
class Handled:
    status: str  # done | ignored
    result: str
