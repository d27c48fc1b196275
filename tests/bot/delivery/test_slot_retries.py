"""A slot whose run fails for a reason that can pass is retried within [delivery].grace, exactly once per
recipient, and given up and reported past the grace (bot.delivery.slot_retries; issue 8 item 2). Driven through
the scheduler's own firing with the fake clock: the retries it schedules are run by hand at their time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.app import App
from bot.delivery.problems import open_problems
from bot.delivery.slot_retries import FIRST_DELAY, MAX_DELAY
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.service.scheduler import BotScheduler
from bot.store.job_memory import StoredJobState
from bot.store.models import Delivery

SEND_PATH = "/v1/api/talk/friends/message/default/send"
MEMO_PATH = "/v2/api/talk/memo/default/send"
NOON = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)  # 12:00 in Seoul
MENU_HTML = '<ul class="menu"><li>김치찌개 9,000원</li></ul>'


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


def menu_job(web_url: str, to: list[str]) -> str:
    return f"""
[delivery]
grace = "30m"

[[jobs]]
name = "menu"
kind = "scrape"
url = "{web_url}/menu"
select = "ul.menu > li"
at = ["noon"]
to = {json.dumps(to, ensure_ascii=False)}
"""


class Retries:
    """Stands in for BotScheduler.once: keeps what was scheduled; `run_next` runs it at its time."""

    def __init__(self, clock: Any):
        self.clock, self.pending, self.times = clock, [], []

    def __call__(self, name: str, at: datetime, fn: Callable[[], Any]) -> None:
        self.pending = [(name, at, fn)]  # a pending one of that name is replaced, as APScheduler does
        self.times.append(at)

    def run_next(self) -> bool:
        if not self.pending:
            return False
        (_, at, fn), self.pending = self.pending[0], []
        self.clock.now = at
        fn()
        return True


@pytest.fixture
def setup(make_app, logged_in, sandbox, web, clock) -> Callable[[list[str]], tuple[App, BotScheduler, Retries]]:  # noqa: ANN001
    sandbox.add_friend("친구01", uuid="uuid-friend-01")

    def make(to: list[str]) -> tuple[App, BotScheduler, Retries]:
        app = make_app(menu_job(web.url, to))
        logged_in(app)
        scheduler = BotScheduler(app, clock=clock)
        retries = Retries(clock)
        scheduler.retries.schedule = retries
        return app, scheduler, retries

    return make


def rows(app: App) -> dict[str, Delivery]:
    with app.db.session() as session:
        return {row.recipient: row for row in session.scalars(select(Delivery).where(Delivery.job == "menu"))}


def database_outage(app: App, monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """The app's database refusing connections while the returned `["on"]` is True (from now): ORM
    sessions, and Core reads and writes (the token lease, job memory, claims) alike."""
    outage = {"on": True}
    real_session, real_connect = app.db.session, app.db.engine.connect

    def refused() -> OperationalError:
        return OperationalError("SELECT 1", {}, Exception("connection refused"))

    def session(*args: Any, **kwargs: Any) -> Any:
        if outage["on"]:
            raise refused()
        return real_session(*args, **kwargs)

    def connect(*args: Any, **kwargs: Any) -> Any:
        if outage["on"]:
            raise refused()
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(app.db, "session", session)
    monkeypatch.setattr(app.db.engine, "connect", connect)
    return outage


def test_a_database_outage_at_the_slot_is_retried_once_it_is_back_and_sends_exactly_once(
        setup, sandbox, clock, monkeypatch):
    """PostgreSQL down from slot−20 s to slot+30 s: the run at the slot fails; the retries send it."""
    app, scheduler, retries = setup(["me", "friend:친구01"])
    outage = database_outage(app, monkeypatch)
    clock.now = NOON
    scheduler.fire_at("menu", NOON)
    assert retries.times == [NOON + FIRST_DELAY]
    assert sandbox.received("me") == [] and sandbox.count(SEND_PATH) == 0

    retries.run_next()  # slot+15 s: still down, a longer wait
    assert retries.times[-1] == NOON + FIRST_DELAY + 2 * FIRST_DELAY
    outage["on"] = False  # back at slot+30 s
    assert retries.run_next()  # slot+45 s
    assert {key: row.status for key, row in rows(app).items()} == {"me": "sent", "uuid:uuid-friend-01": "sent"}
    assert not retries.pending  # delivered: nothing more scheduled
    # A stray second attempt (another instance, a late timer) sends nothing twice.
    scheduler.fire_at("menu", NOON)
    assert len(sandbox.received("me")) == 1 and len(sandbox.received("uuid-friend-01")) == 1


def test_kakao_maintenance_through_the_whole_grace_is_retried_with_backoff_then_reported_as_missed(
        setup, sandbox, clock):
    app, scheduler, retries = setup(["friend:친구01"])
    sandbox.fail_next(SEND_PATH, 503, {"code": -9798, "msg": "service under maintenance"}, times=10_000)
    clock.now = NOON + timedelta(seconds=1)
    scheduler.fire_at("menu", NOON)
    while retries.run_next():
        pass
    gaps = [later - earlier for earlier, later in zip(retries.times, retries.times[1:])]
    assert gaps[:4] == [2 * FIRST_DELAY, 4 * FIRST_DELAY, 8 * FIRST_DELAY, 16 * FIRST_DELAY]
    assert max(gaps) <= MAX_DELAY
    assert NOON + timedelta(minutes=29) < retries.times[-1] < NOON + timedelta(minutes=30)
    assert sandbox.received("uuid-friend-01") == []
    row = rows(app)["uuid:uuid-friend-01"]
    assert row.status == "failed" and row.code == -9798
    # Given up past the grace: told as a missed slot, once, naming the job and the slot.
    # Nothing told while it was retried (it might still have worked); then one message.
    (told,) = [m["text"] for m in sandbox.received("me")]
    assert "menu" in told and "2026-11-22 12:00" in told and "kept failing" in told and "-9798" in told
    assert not [p for p in open_problems(app.db) if p.key.startswith("missed-slot:")]  # a one-off: told, closed
    # The retries of one slot are one failure of the job, not eleven "in a row".
    assert not [p for p in open_problems(app.db) if p.key.startswith("job-failing:")]


def test_a_slot_caught_up_at_start_that_fails_for_a_passing_reason_is_retried_too(setup, sandbox, clock):
    app, scheduler, retries = setup(["friend:친구01"])
    StoredJobState(app.db, "menu").set("schedule", {"seen": (NOON - timedelta(days=1)).isoformat()})
    sandbox.fail_next(SEND_PATH, 503, {"code": -1, "msg": "temporary error"}, times=3)  # one attempt's tries
    clock.now = NOON + timedelta(minutes=10)  # the bot was down at the slot; back within the grace
    assert [c.action for c in scheduler.catch_up(clock.now)] == ["sent"]
    assert retries.times == [clock.now + FIRST_DELAY]
    retries.run_next()
    assert rows(app)["uuid:uuid-friend-01"].status == "sent" and len(sandbox.received("uuid-friend-01")) == 1
    assert sandbox.received("me") == []  # it worked in the end: nothing to tell


def test_a_database_down_for_the_whole_grace_records_the_slot_skipped_and_reports_it(
        setup, sandbox, clock, monkeypatch):
    app, scheduler, retries = setup(["me"])
    outage = database_outage(app, monkeypatch)
    clock.now = NOON
    scheduler.fire_at("menu", NOON)
    while retries.pending and retries.pending[0][1] < NOON + timedelta(minutes=29):
        retries.run_next()
    outage["on"] = False  # back for the last attempt's give-up only: the run itself still fails
    real_fire = scheduler.retries.fire
    scheduler.retries.fire = lambda name, instant: scheduler.retries.settled(
        app.config.job(name), instant, clock.now, OperationalError("SELECT 1", {}, Exception("down")))
    retries.run_next()
    scheduler.retries.fire = real_fire
    assert not retries.pending
    assert {(row.status, row.reason.startswith("not sent: the run kept failing")) for row in rows(app).values()} == {
        ("skipped", True)}
    (told,) = [m["text"] for m in sandbox.received("me")]
    assert "menu" in told and "kept failing" in told


@pytest.mark.parametrize("what", ["refused", "page gone"])
def test_a_failure_that_cannot_pass_is_not_retried(setup, sandbox, clock, what, make_app, web):
    app, scheduler, retries = setup(["friend:친구01"])
    if what == "refused":
        sandbox.fail_next(SEND_PATH, 400, {"code": -530, "msg": "the receiver does not allow messages"})
    else:  # 404: the job fails, for a reason no retry can change
        app = make_app(menu_job(web.url + "/gone", ["friend:친구01"]))
        scheduler = BotScheduler(app, clock=clock)
        scheduler.retries.schedule = retries
    clock.now = NOON
    report = scheduler.fire_at("menu", NOON)
    assert report is not None and report.failed and not report.can_pass
    assert retries.times == []


def test_the_service_scheduler_runs_a_retry_once_at_its_time(setup, clock):
    app, scheduler, _ = setup(["me"])
    clock.now = datetime.now(timezone.utc)  # APScheduler waits in real time: nothing here is due meanwhile
    later = clock.now + timedelta(hours=1)
    ran: list[str] = []
    scheduler.start()
    try:
        scheduler.once("retry:menu", later, lambda: ran.append("first"))
        scheduler.once("retry:menu", later + FIRST_DELAY, lambda: ran.append("second"))  # replaces the first
        (job,) = [job for job in scheduler._scheduler.get_jobs() if job.id == "once:retry:menu"]
        assert job.next_run_time == later + FIRST_DELAY
        job.func()
    finally:
        assert scheduler.stop(10)
    assert ran == ["second"]
