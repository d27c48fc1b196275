"""Who a delivery goes to and what each gets: the sender's friends, the fan-out, the message per audience.

The runner (`send-now`, the scheduler), the order alerts and the problem reports all deliver
through `app_fanout`, so every delivery of an App keeps the same quota reserve and records in
the same deliveries table. `FriendsLookup` fetches a sender's friends list once and keeps it no
longer than its user needs it (Kakao's policy: friend lists are not kept beyond their purpose).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Callable, Sequence

from bot.app import App
from bot.config.model import JobConfig
from bot.delivery.fanout import Fanout
from bot.kakao.errors import KakaoError, KakaoLoginRequired
from bot.kakao.recipients import Friend, Target
from bot.util.progress import QUIET, Progress
from jobs import job_kind
from jobs.base import Outcome

log = logging.getLogger(__name__)


def app_fanout(app: App, sender: str, job: str, slot_key: str, now: datetime, *, late: bool = False,
               alert: bool = False, stopping: threading.Event | None = None,
               progress: Progress = QUIET) -> Fanout:
    """A fan-out of `job`'s message for `slot_key`, sent by the Kakao login `sender` of `app`."""
    return Fanout(app.deliveries, app.kakao_api(sender), job, slot_key, sender, now,
                  late=late, alert=alert, reserve=app.config.quota_reserve, stopping=stopping, progress=progress)


def audience_of(target: Target) -> str:
    """"me" (the sender's own chat) or "friend": each audience gets its own rendering of a message."""
    return "me" if target.uuid is None else "friend"


def audience_messages(job: JobConfig, outcome: Outcome, targets: Sequence[Target],
                      web_domain: str) -> Callable[[Target], dict]:
    """The job's message rendered once per audience among `targets`, as Fanout.deliver's `message_for`.

    Rendered before anything is claimed: a template that fails (JobFailed, TemplateError) fails
    the delivery and leaves no half-made one behind."""
    kind = job_kind(job.kind)
    messages = {audience: kind.render(job, outcome, audience=audience, web_domain=web_domain,
                                      default_link=web_domain)
                for audience in dict.fromkeys(audience_of(target) for target in targets)}
    return lambda target: messages[audience_of(target)]


class FriendsLookup:
    """The friends lists of the senders, each fetched once and kept for `ttl` seconds (None: as long
    as this lookup lives, e.g. one run). Safe to share between threads."""

    def __init__(self, app: App, *, ttl: float | None = None):
        self.app = app
        self.ttl = ttl
        self.passing: set[str] = set()  # senders whose friends list failed for a reason that can pass
        self._friends: dict[str, tuple[float, list[Friend]]] = {}
        self._lock = threading.Lock()

    def for_job(self, job: JobConfig) -> list[Friend] | None:
        """The friends of the job's sender ([] when the job sends only to "me"); None when the list
        cannot be had (logged). KakaoLoginRequired passes through: the login needs a person."""
        if all(recipient.kind == "me" for recipient in job.to):
            return []
        with self._lock:
            cached = self._friends.get(job.sender)
            if cached and (self.ttl is None or time.monotonic() - cached[0] < self.ttl):
                return cached[1]
        try:
            # Minted once for every page of the list (the stored token read and decrypted once, not per page).
            friends = self.app.kakao_api(job.sender).minted().friends()
        except KakaoLoginRequired:
            raise
        except KakaoError as exc:
            log.error("%s: cannot fetch the friends list of %r: %s", job.name, job.sender, exc)
            if exc.retryable:
                with self._lock:
                    self.passing.add(job.sender)
            return None
        with self._lock:
            self._friends[job.sender] = (time.monotonic(), friends)
        return friends
