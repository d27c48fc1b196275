"""What the webhook worker tells the log: one DEBUG line per event, one INFO summary a minute.

A storm of thousands of deliveries a minute is not worth thousands of INFO lines (the issue measured
the line per event among the worker's costs); failures keep their own WARNING/ERROR lines (worker.py).
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from bot.webhooks.order_updates import SUPERSEDED
from bot.webhooks.stored import Handled, StoredEvent

log = logging.getLogger("bot.webhooks.worker")

SUMMARY_EVERY = 60.0  # seconds between INFO summaries (only when something was processed)


class Tally:
    """Counts a worker's outcomes between summaries; used by that worker's thread only."""

    def __init__(self, every: float = SUMMARY_EVERY):
        self.every = every
        self.counts: Counter[str] = Counter()
        self.since = time.monotonic()

    def count(self, event: StoredEvent, handled: Handled) -> None:
        superseded = handled.result.startswith(SUPERSEDED)
        self.counts["superseded" if superseded else handled.status] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("webhook %s (%s, %s): %s — %s", event.webhook_id, event.topic, event.shop, handled.status,
                      handled.result)

    def report_if_due(self) -> None:
        """The INFO summary, once `every` seconds have passed since the last one and anything happened."""
        now = time.monotonic()
        if now - self.since < self.every or not self.counts:
            return
        total = sum(self.counts.values())
        parts = ", ".join(f"{self.counts[kind]} {kind}" for kind in ("done", "superseded", "ignored")
                          if self.counts[kind])
        log.info("webhooks: %d processed in the last %d s (%s)", total, round(now - self.since), parts)
        self.counts.clear()
        self.since = now
