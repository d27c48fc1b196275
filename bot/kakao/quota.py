"""Kakao's daily message quotas, as rules: the limits, the Korean day they count in, and the book
that says whether one more send fits.

Kakao counts per Korean calendar day: 30,000 per app, 100 per sender, 100 per recipient,
20 per sender–recipient pair; they cannot be raised. The bot counts what it sent (from the
deliveries table: bot.store.quota_counts) and skips, by name, the recipients a send would push
over a quota — keeping a reserve of the sender's quota for messages to "me" about problems.
Planning at config time: bot.config.plan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

KAKAO_ZONE = ZoneInfo("Asia/Seoul")
APP_DAILY = 30_000
SENDER_DAILY = 100
RECIPIENT_DAILY = 100
PAIR_DAILY = 20
ME_RESERVE = 5  # default of [delivery].quota_reserve: of the sender's 100, kept for problem reports to "me"


def quota_day(instant: datetime) -> str:
    return instant.astimezone(KAKAO_ZONE).date().isoformat()


@dataclass
class QuotaBook:
    """Today's counts for one sender; `take` reserves a send or says why not."""

    sender: str
    day: str
    app_total: int = 0
    sender_total: int = 0
    per_recipient: Counter = field(default_factory=Counter)
    per_pair: Counter = field(default_factory=Counter)
    reserve: int = ME_RESERVE

    def take(self, recipient: str, *, alert: bool = False) -> str | None:
        """Count one send to `recipient`; None if allowed, else the reason it is not."""
        sender_cap = SENDER_DAILY if alert and recipient == "me" else SENDER_DAILY - self.reserve
        if self.app_total >= APP_DAILY:
            return f"the app's daily quota ({APP_DAILY}) is used up"
        if self.sender_total >= sender_cap:
            kept = "" if sender_cap == SENDER_DAILY or not self.reserve else f", {self.reserve} kept for problem reports to me"
            return f"sender {self.sender!r} reached its daily quota ({self.sender_total}/{SENDER_DAILY}{kept})"
        if self.per_recipient[recipient] >= RECIPIENT_DAILY:
            return f"recipient reached its daily quota ({RECIPIENT_DAILY})"
        if recipient != "me" and self.per_pair[recipient] >= PAIR_DAILY:
            return f"sender–recipient pair reached its daily quota ({PAIR_DAILY})"
        self.app_total += 1
        self.sender_total += 1
        self.per_recipient[recipient] += 1
        self.per_pair[recipient] += 1
        return None
