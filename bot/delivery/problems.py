"""Problems a person should hear about: recorded once, told once — in a log line and in KakaoTalk.

A problem has a `key` ("kakao-login:default", "shopify:default:my-store.myshopify.com",
"kakao-refresh-expiring:default", "job-failing:orders", "missed-slot:orders:<instant>") and
lives in the `problems` table. Raising it again while it is open only refreshes it; it is
reported once per *episode*: opened → (one log line, one KakaoTalk message to "me") → resolved.
Raising a resolved key opens a new episode, which is reported anew.

The KakaoTalk message goes to "me" of the default sender (the `from` of the first job, else
"default") as an ordinary delivery — job "!problems", slot "<key>#<episode>", recipient "me" —
so the deliveries table makes it exactly once per episode (across restarts and instances), it
shows in `history`, and it may use the quota kept in reserve for problem reports (alert=True).

When the message cannot be sent:
- the sender's own Kakao login needs a person (known from the database, nothing is asked of
  Kakao): no attempt; it goes out at the first check after the login works again;
- anything else (Kakao down, quota used up, …): logged, and tried again at most once per
  RETRY_EVERY (the next `check_all` after that).

`check_all(now)` (every 5 minutes, `run_health_checks`) looks at the stored Kakao logins and
Shopify installs, raises what is wrong, resolves what is gone, and retries messages still owed.
Job outcomes (`record_job_outcome`, called by the runner) raise "job-failing:<job>" at the
second failure in a row and resolve it at the next success; `missed_slot(job, instant)` reports
a scheduled run that never happened (a one-off: reported once, never reopened).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.app import App
from bot.delivery.audience import app_fanout
from bot.delivery.health_rules import (
    UNDECRYPTABLE_STATE,
    install_needs_person,
    install_state,
    judging_vault,
    login_fix,
    refresh_expiring,
)
from bot.delivery.run_report import RunReport
from bot.kakao.recipients import Target
from bot.kakao.templates import text_template
from bot.store.db import Database
from bot.store.job_memory import StoredJobState
from bot.store.merchant_settings import MERCHANT_PREFIX
from bot.store.models import Problem
from bot.util.keys import SLOT_KEY_MAX, fit_key
from bot.util.logs import redact
from bot.util.times import duration_text, local_time
from tokens.login_health import UNDECRYPTABLE, login_problem
from tokens.models import KakaoLogin, ShopifyInstall
from tokens.shopify import unusable

log = logging.getLogger(__name__)

NEEDS_PERSON = "needs_person"  # /healthz answers 503 while one is open
INFO = "info"  # worth a message, but nothing is broken yet (or it is the merchant's choice)
EVENT = "event"  # a one-off (missed slot): resolved once told, never reopened
SEVERITIES = (NEEDS_PERSON, INFO, EVENT)

ALERT_JOB = "!problems"  # the deliveries' job of problem messages (no configured job name has a "!")
RETRY_EVERY = timedelta(hours=1)  # a message that could not be sent is tried again this often at most
CHECK_EVERY = 300  # seconds between `check_all` runs of the service
FAILURES_KEY = "consecutive_failures"  # job memory key of the runner's failure count
FAILURES_REPORTED = 2  # a job failing this many times in a row is a problem
# The key prefixes `check_all` owns: an open problem of these that a check no longer finds is resolved.
CHECKED_PREFIXES = ("kakao-login:", "kakao-refresh-expiring:", "shopify:")


@dataclass(frozen=True)
class OpenProblem:
    """An open problem, for /healthz, the CLI and tests: never a token value."""

    key: str
    summary: str
    severity: str
    since: datetime  # first seen in this episode
    last_seen: datetime
    notified_at: datetime | None
    episode: int

    @property
    def needs_person(self) -> bool:
        return self.severity == NEEDS_PERSON

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "summary": self.summary, "since": self.since.isoformat(),
                "needs_person": self.needs_person, "notified": self.notified_at is not None}


def open_problems(db: Database) -> list[OpenProblem]:
    with db.session() as session:
        return query_open(session)


def query_open(session: Session) -> list[OpenProblem]:
    """The open problems, oldest first, read in the caller's session."""
    rows = session.scalars(select(Problem).where(Problem.resolved_at.is_(None))
                           .order_by(Problem.first_seen, Problem.id))
    return [_open(row) for row in rows]


def _open(row: Problem) -> OpenProblem:
    return OpenProblem(row.key, row.summary, row.severity, row.first_seen, row.last_seen, row.notified_at,
                       row.episode)


def alert_slot_key(key: str, episode: int) -> str:
    """The deliveries slot of one episode's message: "<key>#<episode>", shortened to fit its column."""
    return fit_key(key, SLOT_KEY_MAX, suffix=f"#{episode}", mark="~", digest_chars=12, keep_head=True)


class ProblemReporter:
    def __init__(self, app: App, *, retry_every: timedelta = RETRY_EVERY):
        self.app = app
        self.retry_every = retry_every

    @property
    def db(self) -> Database:
        return self.app.db

    def sender(self) -> str:
        """The Kakao login whose "me" hears about problems: the first job's `from`, else "default"."""
        jobs = self.app.config.jobs
        return jobs[0].sender if jobs else "default"

    # -- raising and resolving -----------------------------------------------------------------
    def raise_(self, key: str, message: str, *, severity: str = NEEDS_PERSON, now: datetime | None = None) -> bool:
        """Record the problem `key`; True if KakaoTalk took a message about it just now.

        A new (or reopened) problem is logged once and told to "me" once; raising it again while
        it is open refreshes its summary and last_seen and retries a message still owed (paced).
        """
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r} (severities: {', '.join(SEVERITIES)})")
        now = now or self.app.clock()
        summary = redact(message.strip())
        problem, opened = self._record(key, summary, severity, now)
        if problem is None:
            return False  # an event already reported
        if opened:
            level = logging.ERROR if severity == NEEDS_PERSON else logging.WARNING
            log.log(level, "problem %s: %s", key, summary)
        if problem.notified_at is not None:
            return False
        return self._notify(problem, now, opened=opened)

    def resolve(self, key: str, *, now: datetime | None = None) -> bool:
        """Close the open problem `key` (True if one was open); raising it later opens a new episode."""
        now = now or self.app.clock()
        with self.db.session() as session:
            closed = session.execute(update(Problem).where(Problem.key == key, Problem.resolved_at.is_(None))
                                     .values(resolved_at=now)
                                     .execution_options(synchronize_session=False)).rowcount
        if closed:
            log.info("problem %s resolved", key)
        return bool(closed)

    def missed_slot(self, job_name: str, instant: datetime, *, reason: str | None = None,
                    now: datetime | None = None) -> bool:
        """A scheduled run of `job_name` at `instant` did not happen (and is past its grace): reported
        once, however often it is called for the same (job, instant). True if told just now."""
        utc = instant.astimezone(timezone.utc)
        why = f": {reason}" if reason else " (the bot was not running)"
        return self.raise_(f"missed-slot:{job_name}:{utc:%Y-%m-%dT%H:%MZ}",
                           f"{job_name}: the run of {local_time(instant, self.app.config.timezone)} was missed{why}",
                           severity=EVENT, now=now)

    def job_outcome(self, job_name: str, *, failed: bool, error: str | None = None) -> None:
        """Count the job's failures in a row: the second one raises "job-failing:<job>"; a success
        resets the count and resolves it."""
        state = StoredJobState(self.db, job_name)
        count = int(state.get(FAILURES_KEY, 0) or 0)
        key = f"job-failing:{job_name}"
        if not failed:
            if count:
                state.set(FAILURES_KEY, 0)
            self.resolve(key)
            return
        count += 1
        state.set(FAILURES_KEY, count)
        if count >= FAILURES_REPORTED:
            last = f"; last error: {error}" if error else ""
            self.raise_(key, f"job {job_name} failed {count} times in a row{last}", severity=INFO)

    # -- the periodic check ----------------------------------------------------------------------
    def check_all(self, now: datetime | None = None) -> list[OpenProblem]:
        """Raise what is wrong with Kakao logins and Shopify installs, resolve what is gone, retry
        messages still owed; returns the open problems."""
        now = now or self.app.clock()
        found: dict[str, tuple[str, str]] = {}  # key -> (summary, severity)
        with self.db.session() as session:
            logins = list(session.scalars(select(KakaoLogin).order_by(KakaoLogin.account)))
            installs = list(session.scalars(select(ShopifyInstall).order_by(ShopifyInstall.shop, ShopifyInstall.app)))
            found.update(self._kakao_problems(logins, now))
            found.update(self._shopify_problems(installs))
        # The sender's own login first: whether it can send decides the messages about the others.
        for key in sorted(found, key=lambda k: not k.startswith("kakao-login:")):
            summary, severity = found[key]
            self.raise_(key, summary, severity=severity, now=now)
        for problem in open_problems(self.db):
            if problem.key.startswith(CHECKED_PREFIXES) and problem.key not in found:
                self.resolve(problem.key, now=now)
            elif problem.key not in found and problem.notified_at is None:
                self._notify(problem, now, opened=False)  # job failures, missed slots: a message still owed
        return open_problems(self.db)

    def _kakao_problems(self, logins: Iterable[KakaoLogin], now: datetime) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        stored = set()
        for row in logins:
            stored.add(row.account)
            if row.account.startswith(MERCHANT_PREFIX):  # the merchant's to fix, on their page
                continue
            fix = login_fix(row.account)
            dead = login_problem(row, judging_vault(self.app), now)
            if dead:
                found[f"kakao-login:{row.account}"] = (
                    f"Kakao login {row.account!r} needs a person ({dead}): {fix}", NEEDS_PERSON)
            elif refresh_expiring(row.refresh_expires_at, now):
                found[f"kakao-refresh-expiring:{row.account}"] = (
                    f"Kakao login {row.account!r}: the refresh token expires at "
                    f"{local_time(row.refresh_expires_at, self.app.config.timezone)}: "
                    f"{fix} before then", INFO)
        users: dict[str, list[str]] = {}
        for job in self.app.config.jobs:
            users.setdefault(job.sender, []).append(job.name)
        for account, jobs in users.items():
            if account not in stored:
                found[f"kakao-login:{account}"] = (
                    f"no Kakao login named {account!r} is stored (used by {', '.join(jobs)}): {login_fix(account)}",
                    NEEDS_PERSON)
        return found

    def _shopify_problems(self, installs: Iterable[ShopifyInstall]) -> dict[str, tuple[str, str]]:

        found: dict[str, tuple[str, str]] = {}
        for row in installs:
            state = install_state(row, judging_vault(self.app))
            if state == "active":
                continue
            summary = (f"{row.shop} (app {row.app}): {UNDECRYPTABLE}" if state == UNDECRYPTABLE_STATE
                       else str(unusable(row)))
            # An uninstall is the merchant's choice: worth a message, but nothing is broken.
            severity = NEEDS_PERSON if install_needs_person(state) else INFO
            found[f"shopify:{row.app}:{row.shop}"] = (f"Shopify {summary}", severity)
        return found

    # -- telling "me" ------------------------------------------------------------------------------
    def _record(self, key: str, summary: str, severity: str, now: datetime) -> tuple[OpenProblem | None, bool]:
        """Insert, refresh or reopen the row of `key`: (the open problem, opened now?)."""
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    # A no-op UPDATE takes the row's write lock first (PostgreSQL and SQLite alike), so
                    # that instances raising the same problem together open one episode, not two.
                    session.execute(update(Problem).where(Problem.key == key).values(key=Problem.key)
                                    .execution_options(synchronize_session=False))
                    row = session.execute(select(Problem).where(Problem.key == key)
                                          .execution_options(populate_existing=True)).scalar_one_or_none()
                    opened = False
                    if row is None:
                        row = Problem(key=key, severity=severity, summary=summary, episode=1, first_seen=now,
                                      last_seen=now)
                        session.add(row)
                        opened = True
                    elif row.resolved_at is not None:
                        if row.severity == EVENT:
                            return None, False
                        row.episode += 1
                        row.first_seen, row.resolved_at = now, None
                        row.notified_at = row.notify_attempted_at = row.notify_error = None
                        opened = True
                    row.summary, row.severity, row.last_seen = summary, severity, now
                    session.flush()
                    return _open(row), opened
            except IntegrityError:
                if attempt:  # another instance inserted the row meanwhile: refresh that one instead
                    raise
        raise AssertionError("unreachable")

    def _notify(self, problem: OpenProblem, now: datetime, *, opened: bool) -> bool:
        sender = self.sender()
        blocked = self._sender_blocked(sender, now)
        if blocked:
            # Nothing is asked of Kakao (no token requests); sent at the first check after a new login.
            if opened:
                log.warning("problem %s: not told in KakaoTalk: the Kakao login %r that sends it needs a person (%s)",
                            problem.key, sender, blocked)
            return False
        if not self._claim_attempt(problem, now):
            return False  # tried less than retry_every ago, or another instance is telling it
        status, reason = self._send(problem, sender, now)
        told = status in ("sent", "already-sent", "unknown")  # unknown: maybe delivered, never repeated
        # The send found the login dead (and marked it): no pacing then — the dead login itself holds
        # further attempts back, and the first check after a new login sends at once.
        dead_now = not told and self._sender_blocked(sender, now) is not None
        with self.db.session() as session:
            values: dict[str, Any] = {"notify_error": None if status == "sent" else reason or status}
            if told:
                values["notified_at"] = now
                if problem.severity == EVENT:
                    values["resolved_at"] = now
            elif dead_now:
                values["notify_attempted_at"] = None
            session.execute(update(Problem).where(Problem.key == problem.key, Problem.episode == problem.episode)
                            .values(**values).execution_options(synchronize_session=False))
        if status == "sent":
            log.info("problem %s: told in KakaoTalk (to me of %r)", problem.key, sender)
        elif dead_now:
            log.warning("problem %s: not told in KakaoTalk: the Kakao login %r that sends it needs a person; "
                        "told after the next `kakao login --account %s`", problem.key, sender, sender)
        elif not told:
            log.warning("problem %s: could not tell it in KakaoTalk (%s: %s); trying again in %s at the earliest",
                        problem.key, status, reason, duration_text(self.retry_every))
        return status == "sent"

    def _claim_attempt(self, problem: OpenProblem, now: datetime) -> bool:
        with self.db.session() as session:
            return bool(session.execute(
                update(Problem).where(Problem.key == problem.key, Problem.episode == problem.episode,
                                      Problem.resolved_at.is_(None), Problem.notified_at.is_(None),
                                      or_(Problem.notify_attempted_at.is_(None),
                                          Problem.notify_attempted_at <= now - self.retry_every))
                .values(notify_attempted_at=now).execution_options(synchronize_session=False)).rowcount)

    def _send(self, problem: OpenProblem, sender: str, now: datetime) -> tuple[str, str]:
        """One message to "me" of `sender` for this episode: (status, reason) of its delivery."""
        web_domain = self.app.config.kakao.web_domain
        try:
            template = text_template(f"⚠️ 확인이 필요합니다\n{problem.summary}", link=web_domain, web_domain=web_domain)
            fanout = app_fanout(self.app, sender, ALERT_JOB, alert_slot_key(problem.key, problem.episode), now,
                                alert=True)
            report = fanout.deliver([Target("me", "me")], [], lambda _target: template)
        except Exception as exc:  # noqa: BLE001 — a problem report must never take its caller down
            return "failed", redact(f"{type(exc).__name__}: {exc}")
        if not report.results:
            return "failed", "no delivery was recorded"
        result = report.results[0]
        return result.status, result.reason

    def _sender_blocked(self, sender: str, now: datetime) -> str | None:
        """Why `sender` cannot send now, from the database alone; None if it may."""
        with self.db.session() as session:
            row = session.get(KakaoLogin, sender)
            if row is None:
                return f"no Kakao login named {sender!r} is stored"
            return login_problem(row, judging_vault(self.app), now)


# -- hooks for the runner and the service ---------------------------------------------------------


def record_job_outcome(app: App, job_name: str, report: RunReport) -> None:
    """After a real (not dry) run: a run that failed, or delivered to nobody because every send
    failed, counts as a failure; anything else resets the count (a run cut short by the service
    stopping counts as neither). Never raises."""
    fanout = getattr(report, "fanout", None)
    if getattr(fanout, "stopped", False):
        return  # the service stopped mid-run: the re-run that takes the rest over decides
    failed = report.status == "failed" or bool(
        fanout is not None and fanout.failed and not fanout.count("sent") and not fanout.count("already-sent"))
    error = report.error
    if failed and not error and fanout is not None:
        error = next((r.reason for r in fanout.results if r.status in ("failed", "unknown") and r.reason), None)
    try:
        ProblemReporter(app).job_outcome(job_name, failed=failed, error=error)
    except Exception:  # noqa: BLE001 — bookkeeping must not turn a run into a crash
        log.exception("%s: could not record the run's outcome", job_name)


def run_health_checks(reporter: ProblemReporter) -> None:
    """One round of `check_all`, as the service runs it every CHECK_EVERY seconds (bot.service.run):
    a failing round is logged, and the next one tries again."""
    try:
        reporter.check_all(reporter.app.clock())
    except Exception:  # noqa: BLE001 — the next round tries again
        log.exception("health checks failed")
