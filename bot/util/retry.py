"""The one place that decides retries: how often, how long to wait, and for what.

Callers say what may be retried (an error that proves nothing was delivered); this module
paces the attempts with exponential backoff and jitter, and `can_pass` says which failures are
passing ones (worth a later attempt: bot.delivery.slot_retries).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import requests
from sqlalchemy import exc as sql_errors

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int) -> float:
        """Full jitter: spreads retries of several instances instead of synchronising them."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))

    def run(self, call: Callable[[], T], *, retry_if: Callable[[Exception], bool], what: str = "call") -> T:
        for attempt in range(self.attempts):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 — retry_if decides; everything else re-raises
                if attempt + 1 >= self.attempts or not retry_if(exc):
                    raise
                wait = self.delay(attempt)
                log.warning("%s failed (%s); retry %d/%d in %.1fs", what, type(exc).__name__,
                            attempt + 1, self.attempts - 1, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")


NO_RETRY = RetryPolicy(attempts=1)

# The database went away or is busy (a restart, a failover, a lock, a full pool): it comes back.
_PASSING_DATABASE_ERRORS = (sql_errors.OperationalError, sql_errors.InterfaceError, sql_errors.TimeoutError)


def can_pass(error: BaseException) -> bool:
    """Whether a failure can pass by itself, so that trying again later may succeed: the database
    unavailable, a network error or timeout, an upstream 5xx or maintenance (Kakao -1, -603, -9798;
    errors that say `retryable`, as bot.kakao.errors, bot.shopify.errors and jobs.base.JobFailed do).
    A refusal, a bad config, a dead login or a bug cannot: those are reported, not retried."""
    if getattr(error, "retryable", False) is True:
        return True
    if isinstance(error, _PASSING_DATABASE_ERRORS):
        return True
    if isinstance(error, sql_errors.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (requests.ConnectionError, requests.Timeout))
