"""/healthz (bot.web.health): the real state of the scheduler (running, next and last run per job) and of
the webhook worker (backlog), through Flask's test client and through a real `run`."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
import requests

from bot.app import App
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.service.run import run_service
from bot.service.scheduler import BotScheduler
from bot.web.health import ServiceState, attach_service_state
from bot.web.server import create_app
from bot.webhooks.inbox import store_event

SEOUL = ZoneInfo("Asia/Seoul")
# A started scheduler waits in real time: with the fake clock far ahead of it, no slot fires by itself
# (nor misfires) during a test; the tests fire the slots they want with fire_at.
FUTURE = datetime(2099, 3, 2, 0, 0, tzinfo=timezone.utc)  # 09:00 KST
MENU_HTML = '<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul>'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def menu_job(url: str, name: str = "menu", at: str = '["noon"]') -> str:
    return f"""
[[jobs]]
name = "{name}"
kind = "scrape"
url = "{url}"
select = "ul.menu > li"
at = {at}
to = ["me"]
"""


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


@contextmanager
def started(scheduler: BotScheduler) -> Iterator[BotScheduler]:
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.stop(10)


def health_of(app: App, state: ServiceState | None):  # noqa: ANN201 - a Flask test response
    flask_app = create_app(app)
    if state is not None:
        attach_service_state(flask_app, state)
    return flask_app.test_client().get("/healthz")


# -- the scheduler ---------------------------------------------------------------------------------


def test_healthz_reports_each_jobs_next_run_in_local_time_and_its_last_run_and_outcome(
        make_app, logged_in, web, clock):
    clock.now = FUTURE
    dead = f"http://127.0.0.1:{free_port()}/menu"  # nothing listens: that job's run fails
    app = make_app(menu_job(f"{web.url}/menu") + menu_job(dead, name="broken", at='["evening"]'))
    logged_in(app)
    scheduler = BotScheduler(app)
    with started(scheduler):
        answer = health_of(app, ServiceState(scheduler=scheduler))
        assert answer.status_code == 200, answer.json
        section = answer.json["scheduler"]
        assert section["running"] is True and section["timezone"] == "Asia/Seoul"
        # 09:00 KST now: noon and evening of that day come next.
        assert section["jobs"] == [
            {"name": "menu", "kind": "scrape", "next_run": "2099-03-02T12:00:00+09:00", "last_run": None},
            {"name": "broken", "kind": "scrape", "next_run": "2099-03-02T18:00:00+09:00", "last_run": None}]

        clock.advance(hours=3, seconds=5)
        scheduler.fire_at("menu", datetime(2099, 3, 2, 12, tzinfo=SEOUL))
        clock.advance(hours=6)
        scheduler.fire_at("broken", datetime(2099, 3, 2, 18, tzinfo=SEOUL))
        jobs = {job["name"]: job for job in health_of(app, ServiceState(scheduler=scheduler)).json["scheduler"]["jobs"]}
    assert jobs["menu"]["next_run"] == "2099-03-03T12:00:00+09:00"
    assert jobs["menu"]["last_run"] == {"slot": "2099-03-02T12:00:00+09:00", "ran_at": "2099-03-02T12:00:05+09:00",
                                        "outcome": "ok"}
    broken = jobs["broken"]["last_run"]
    assert broken["slot"] == "2099-03-02T18:00:00+09:00" and broken["outcome"] == "failed"
    assert "127.0.0.1" in broken["reason"] and len(broken["reason"]) <= 200


def test_healthz_is_503_when_the_scheduler_of_run_stopped(make_app, web, clock):
    clock.now = FUTURE
    app = make_app(menu_job(f"{web.url}/menu"))
    scheduler = BotScheduler(app)
    with started(scheduler):
        pass  # started, then stopped: what a crashed scheduler thread looks like from outside
    answer = health_of(app, ServiceState(scheduler=scheduler))
    assert answer.status_code == 503 and answer.json["status"] == "needs_attention"
    assert answer.json["scheduler"]["running"] is False
    assert "restarted" in answer.json["scheduler"]["reason"]


def test_a_slot_missed_as_too_late_is_a_failed_last_run(make_app, web, clock):
    app = make_app(menu_job(f"{web.url}/menu"))
    scheduler = BotScheduler(app)
    clock.advance(hours=10)  # 19:00 KST: noon is far beyond the grace
    scheduler.fire_at("menu", datetime(2026, 11, 22, 12, tzinfo=SEOUL))
    last = scheduler.last_runs.get("menu")
    assert last is not None and last.outcome == "failed" and "missed" in last.reason


# -- the webhook backlog ---------------------------------------------------------------------------


def test_healthz_reports_the_webhook_backlog_and_503_when_it_is_stuck(make_app, clock):
    app = make_app()
    for number in range(3):
        store_event(app, app="default", shop="my-store.myshopify.com", topic="orders/create",
                    webhook_id=f"w-{number}", body="{}")
        clock.advance(minutes=2)
    answer = health_of(app, None)
    assert answer.status_code == 200
    assert answer.json["webhooks"] == {"unprocessed": 3, "pending": 3, "processing": 0, "retrying": 0,
                                       "oldest_pending_age_seconds": 360}

    clock.advance(minutes=10)  # nothing processed them: no worker runs
    answer = health_of(app, ServiceState())
    assert answer.status_code == 503
    backlog = answer.json["webhooks"]
    assert backlog["pending"] == 3 and backlog["oldest_pending_age_seconds"] == 960
    assert backlog["worker"] == "not running" and "python -m bot run" in backlog["stuck"]


# -- a real `run` ------------------------------------------------------------------------------------


def test_run_attaches_its_scheduler_and_worker_to_healthz(make_app, web, clock):
    clock.now = FUTURE
    port = free_port()
    app = make_app(menu_job(f"{web.url}/menu") + f'\n[server]\nlisten = "127.0.0.1:{port}"\n')
    stop, ready, outcome = threading.Event(), threading.Event(), {}

    def serve_() -> None:
        outcome["code"] = run_service(app, ready=ready.set, stop_event=stop)

    thread = threading.Thread(target=serve_, daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        body = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
    finally:
        stop.set()
        thread.join(30)
    assert outcome == {"code": 0}
    assert body["scheduler"]["running"] is True
    assert body["scheduler"]["jobs"][0]["name"] == "menu"
    assert body["scheduler"]["jobs"][0]["next_run"].endswith("+09:00")
    assert body["webhooks"]["worker"] == "running" and body["webhooks"]["pending"] == 0
