"""Delivering order alerts (`shopify-order-alert` jobs) through the ordinary delivery machinery.

The webhook worker and the reconciliation both call `AlertSender.deliver(job, slot_key,
outcome)`; like `bot.runner` it resolves the recipients, renders once per audience and hands
the rest to `bot.fanout.Fanout`, whose (job, slot_key, recipient) rows make each alert exactly
once per recipient — across the two paths, restarts and instances. Nothing here decides
*whether* to alert: that is the caller's business.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from bot.config import JobConfig
from bot.fanout import Fanout, FanoutReport
from bot.kakao_errors import KakaoError, KakaoLoginRequired
from bot.recipients import Friend, resolve
from jobs import job_kind
from jobs.base import Outcome
from jobs.shopify_order_alert import KIND

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

# Kakao's policy: friend lists are not kept beyond their purpose. A burst of orders reuses one
# list for this long, then it is fetched again.
FRIENDS_TTL = 60.0


class AlertFailed(Exception):
    """Some recipient's alert failed (and may succeed later: those rows are retaken on a retry)."""


def alert_jobs(app: "App", shop: str | None = None) -> list[JobConfig]:
    """The configured `shopify-order-alert` jobs (of `shop`, when given)."""
    return [job for job in app.config.jobs
            if job.kind == KIND and (shop is None or job.params.shop == shop)]


class AlertSender:
    def __init__(self, app: "App", *, friends_ttl: float = FRIENDS_TTL):
        self.app = app
        self.friends_ttl = friends_ttl
        self._friends: dict[str, tuple[float, list[Friend]]] = {}
        self._lock = threading.Lock()

    def deliver(self, job: JobConfig, slot_key: str, outcome: Outcome) -> FanoutReport:
        """Send `outcome` to the job's recipients under `slot_key` (each at most once, ever)."""
        kind = job_kind(job.kind)
        now = self.app.clock().astimezone(self.app.config.timezone)
        fanout = Fanout(self.app.deliveries, self.app.kakao_api(job.sender), self.app.db.session, job.name,
                        slot_key, job.sender, now, reserve=self.app.config.quota_reserve)
        try:
            targets, unreachable = resolve(job.to, self._friends_for(job))
        except KakaoLoginRequired as exc:
            recipients = [("me", "me") if r.kind == "me" else (str(r), r.value) for r in job.to]
            log.error("%s: %s", job.name, exc)
            return fanout.fail_all(recipients, str(exc))
        web_domain = self.app.config.kakao.web_domain
        # Rendered before anything is claimed: a template that fails leaves no half-made delivery.
        messages = {audience: kind.render(job, outcome, audience=audience, web_domain=web_domain,
                                          default_link=web_domain)
                    for audience in dict.fromkeys("me" if t.uuid is None else "friend" for t in targets)}
        return fanout.deliver(targets, unreachable,
                              lambda target: messages["me" if target.uuid is None else "friend"])

    def _friends_for(self, job: JobConfig) -> list[Friend] | None:
        if all(recipient.kind == "me" for recipient in job.to):
            return []
        with self._lock:
            cached = self._friends.get(job.sender)
            if cached and time.monotonic() - cached[0] < self.friends_ttl:
                return cached[1]
        try:
            friends = self.app.kakao_api(job.sender).friends()
        except KakaoLoginRequired:
            raise
        except KakaoError as exc:
            log.error("%s: cannot fetch the friends list of %r: %s", job.name, job.sender, exc)
            return None
        with self._lock:
            self._friends[job.sender] = (time.monotonic(), friends)
        return friends


def problems_of(report: FanoutReport) -> list[str]:
    """The recipients whose alert failed (worth another try later), for an error message."""
    return [f"{r.label}: {r.reason or r.status}" for r in report.results if r.status == "failed"]
