"""`GET /healthz`: the real state of the database, the logins, the scheduler and the webhook worker.

200 when nothing needs a person, else 503 ("needs_attention"). Every value is read when the
request comes, never a placeholder:
- db: a query runs;
- kakao / shopify: each stored login and install, judged by the rules of bot.delivery.health_rules;
- problems: the open ones (bot.delivery.problems);
- scheduler: running or not, per job its next run (local time with offset) and its last run in
  this process with the outcome (bot.service.last_runs); under `run` a scheduler that stopped is a 503;
- webhooks: the backlog the workers have not processed yet (`unprocessed`: pending, processing and
  failed awaiting a retry, each counted too; the age of the oldest pending one).

`run` (bot.service.run) attaches a ServiceState to the Flask app: that is how this route sees the
scheduler and the workers. A Flask app without one (gunicorn through bot.wsgi, tests) runs no
scheduler, and says so.

Unauthenticated callers from elsewhere get the status and counts only (bot.web.health_access).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol, Sequence

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import func, select, text

import bot
from bot.app import App
from bot.delivery.health_rules import (
    UNDECRYPTABLE_STATE,
    install_needs_person,
    install_state,
    judging_vault,
    login_fix,
    merchant_states,
)
from bot.delivery.problems import query_open
from bot.store.merchant_settings import MERCHANT_PREFIX
from bot.store.models import WebhookEvent
from bot.util.logs import redact
from bot.web.health_access import HEALTH_TOKEN, may_see_details, summary
from bot.webhooks.worker import PENDING, PENDING_ORDER
from tokens.login_health import UNDECRYPTABLE, login_problem
from tokens.models import KakaoLogin, ShopifyInstall
from tokens.vault import Vault

log = logging.getLogger("bot.server")

blueprint = Blueprint("health", __name__)

SERVICE_KEY = "bot.service"  # Flask extensions key of the ServiceState
# A webhook left pending this long is not being processed: the worker is stuck or not running.
BACKLOG_STUCK = timedelta(minutes=10)


class ScheduledJob(Protocol):
    """One job as the scheduler tells it (bot.service.scheduler_text.JobSchedule)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def next_run(self) -> datetime | None: ...
    @property
    def next_summary(self) -> datetime | None: ...


class LastRun(Protocol):
    def as_json(self, zone: tzinfo) -> dict[str, Any]: ...


class LastRunBook(Protocol):
    def get(self, job: str) -> LastRun | None: ...


class SchedulerView(Protocol):
    """What /healthz reads of `run`'s scheduler (bot.service.scheduler.BotScheduler), which lives above it."""

    @property
    def running(self) -> bool: ...
    @property
    def last_runs(self) -> LastRunBook: ...
    def next_runs(self) -> Sequence[ScheduledJob]: ...


class Worker(Protocol):
    def stop(self, timeout: float | None = None) -> bool: ...


@dataclass
class ServiceState:
    """What `run` started, for /healthz: the scheduler and the workers (each may say whether it is `alive()`)."""

    scheduler: SchedulerView | None = None
    workers: list[Worker] = field(default_factory=list)


def attach_service_state(flask_app: Flask, state: ServiceState) -> None:
    flask_app.extensions[SERVICE_KEY] = state


@blueprint.get("/healthz")
def healthz() -> Response:
    """Health for people and probes: 200 when nothing needs a person, else 503. Never a token value;
    the details only for loopback callers or BOT_HEALTH_TOKEN (bot.web.health_access)."""
    app: App = current_app.extensions["bot"]
    state: ServiceState | None = current_app.extensions.get(SERVICE_KEY)
    body, attention = health_report(app, state)
    token = app.secrets.get(HEALTH_TOKEN)
    app.redactor.add(token)  # a secret like the others: never in a log line, output or stored text
    if not may_see_details(request.remote_addr, request.headers, token):
        body = summary(body)
    response = jsonify(body)
    # Run outcomes and problem texts quote upstream errors: no secret value leaves in an answer either.
    response.set_data(app.redactor.scrub_values(response.get_data(as_text=True)))
    response.status_code = 503 if attention else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def health_report(app: App, state: ServiceState | None) -> tuple[dict[str, Any], bool]:
    """(the full health body, whether something needs a person)."""
    now = app.clock()
    vault = judging_vault(app)
    body: dict[str, Any] = {"status": "ok", "db": "ok", "kakao": [], "shopify": [], "merchants": [], "problems": [],
                            "webhooks": None, "scheduler": None, "version": bot.__version__}
    attention = False
    try:
        with app.db.session() as session:
            session.execute(text("SELECT 1"))
            logins = list(session.scalars(select(KakaoLogin).order_by(KakaoLogin.account)))
            installs = list(session.scalars(select(ShopifyInstall).order_by(ShopifyInstall.shop, ShopifyInstall.app)))
            # A merchant's own login is theirs to fix (their page says so): shown per shop, not a 503.
            body["kakao"] = [_kakao_health(row, vault, now) for row in logins
                             if not row.account.startswith(MERCHANT_PREFIX)]
            body["shopify"] = [_shopify_health(row, vault) for row in installs]
            # Open problems (bot.delivery.problems): only those that need a person make this a 503.
            problems = query_open(session)
            body["problems"] = [problem.as_json() for problem in problems]
            attention = any(problem.needs_person for problem in problems)
            body["webhooks"] = _webhook_backlog(session, state, now)
        body["merchants"] = [asdict(merchant) for merchant in merchant_states(app)]
    except Exception as exc:  # noqa: BLE001 - any database failure is reported, not raised
        log.error("/healthz: database check failed: %s", exc.__class__.__name__)
        body["db"] = f"error: {_db_error(exc)}"
        attention = True
    attention = attention or any(login["status"] != "ok" for login in body["kakao"]) or any(
        install_needs_person(install["status"]) for install in body["shopify"])
    body["scheduler"], scheduler_down = _scheduler_health(app, state)
    backlog = body["webhooks"] or {}
    attention = attention or scheduler_down or bool(backlog.get("stuck"))
    if attention:
        body["status"] = "needs_attention"
    return body, attention


# -- logins and installs ------------------------------------------------------------------------------


def _kakao_health(row: KakaoLogin, vault: Vault | None, now: datetime) -> dict[str, Any]:
    health: dict[str, Any] = {"account": row.account, "status": "ok",
                              "refresh_expires_at": row.refresh_expires_at.isoformat()}
    reason = login_problem(row, vault, now)
    if reason is None:
        return health
    health.update(status="needs_login", reason=f"{reason}; {login_fix(row.account)}")
    return health


def _shopify_health(row: ShopifyInstall, vault: Vault | None) -> dict[str, Any]:
    state = install_state(row, vault)
    health: dict[str, Any] = {"shop": row.shop, "app": row.app, "status": state}
    if state == UNDECRYPTABLE_STATE:
        health["reason"] = UNDECRYPTABLE
    elif state != "active":
        health["reason"] = row.status_reason or row.status
    return health


def _db_error(exc: Exception) -> str:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text_ = f"{exc.__class__.__name__}: {detail[0]}" if detail else exc.__class__.__name__
    return redact(text_)[:200]


# -- the scheduler and the webhook worker ---------------------------------------------------------------


def _scheduler_health(app: App, state: ServiceState | None) -> tuple[dict[str, Any], bool]:
    """(its health, whether it is down while `run` needs it)."""
    zone = app.config.timezone
    scheduler = state.scheduler if state is not None else None
    if scheduler is None:
        why = ("not started in this process: only `python -m bot run` runs the scheduler" if state is None
               else "not started yet")
        return {"running": False, "reason": why}, False
    jobs = []
    for item in scheduler.next_runs():
        job: dict[str, Any] = {"name": item.name, "kind": item.kind}
        if item.next_run is not None:
            job["next_run"] = item.next_run.astimezone(zone).isoformat()
        elif item.next_summary is not None:
            job["next_summary"] = item.next_summary.astimezone(zone).isoformat()
        else:
            job["next_run"] = None  # alerts from webhooks: nothing scheduled
        last = scheduler.last_runs.get(item.name)
        job["last_run"] = last.as_json(zone) if last is not None else None
        jobs.append(job)
    running = bool(scheduler.running)
    body: dict[str, Any] = {"running": running, "timezone": str(zone), "jobs": jobs}
    if not running:
        body["reason"] = "the scheduler stopped: no slot will be sent until `run` is restarted"
    return body, not running


def _webhook_backlog(session: Any, state: ServiceState | None, now: datetime) -> dict[str, Any]:
    """Stored webhooks not processed yet — `unprocessed`: pending, being processed, and failed ones awaiting a
    retry — each counted, and the age of the oldest pending one. Cheap at any backlog: the counts come from
    the index on (status, next_attempt_at, id), the oldest pending row is the first of that index."""
    def count(*where: Any) -> Any:
        return select(func.count()).select_from(WebhookEvent).where(*where).scalar_subquery()

    # One round trip; each part a range of that index (an OR of them would scan the whole table).
    pending, processing, retrying, oldest = session.execute(select(
        count(WebhookEvent.status == "pending"), count(WebhookEvent.status == "processing"),
        count(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at.is_not(None)),
        select(WebhookEvent.received_at).where(*PENDING).order_by(*PENDING_ORDER).limit(1).scalar_subquery())).one()
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else None
    body: dict[str, Any] = {"unprocessed": pending + processing + retrying, "pending": pending,
                            "processing": processing, "retrying": retrying,
                            "oldest_pending_age_seconds": None if age is None else round(age)}
    if state is not None:
        body["worker"] = "running" if state.workers and all(_alive(w) for w in state.workers) else "not running"
    if age is not None and age > BACKLOG_STUCK.total_seconds():
        body["stuck"] = (f"the oldest pending webhook waits for {round(age)} s: the worker is not processing "
                         "(is `python -m bot run` running?)")
    return body


def _alive(worker: Worker) -> bool:
    alive = getattr(worker, "alive", None)
    return bool(alive()) if callable(alive) else True
