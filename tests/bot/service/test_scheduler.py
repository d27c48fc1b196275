"""The scheduler (bot.service.scheduler) with a controllable clock: slot times in a zone and across DST,
cron weekday names, the scheduled instant as the slot key, catching up after a restart (within
and beyond the grace), `since`, the APScheduler settings it builds, `next_runs()` and `jobs`."""

from __future__ import annotations

import json
import logging
import threading
import time as time_module
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.cron import CronTrigger
from click.testing import CliRunner
from sqlalchemy import select

import bot.delivery.runner
import bot.service.scheduler
from bot.app import App, load_config
from bot.cli.main import cli
from bot.config.model import ConfigError
from bot.delivery.run_report import RunReport
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.service.run import next_slot_text
from bot.service.scheduler import BotScheduler, CatchUp
from bot.service.scheduler_text import JobSchedule
from bot.store.models import Delivery
from bot.util.times import slot_instant

UTC = timezone.utc
SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
MENU_HTML = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul></body></html>"""


def kst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


def scheduler_for(write_config: Callable[..., Path], secrets: Any, clock: Any, body: str) -> BotScheduler:
    """A scheduler over a config (nothing is fired, so no database or Kakao is needed)."""
    return BotScheduler(App(load_config(write_config(body)), secrets, clock=clock))


def local_times(due: list[tuple[str, datetime]], zone: ZoneInfo) -> list[str]:
    return [f"{name} {instant.astimezone(zone):%Y-%m-%d %H:%M %z}" for name, instant in due]


# -- when slots fire ------------------------------------------------------------------------------


def test_slots_fire_at_local_times_in_seoul(write_config, secrets, clock):
    scheduler = scheduler_for(write_config, secrets, clock, """\
        [[jobs]]
        name = "menu"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["morning", "noon", "evening"]
        to = ["me"]
        """)
    due = scheduler.due(datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 11, 23, 0, 0, tzinfo=UTC))
    # 12:00 and 18:00 KST on the 22nd, 08:00 KST on the 23rd (= 23:00 UTC on the 22nd).
    assert [(name, instant.astimezone(UTC)) for name, instant in due] == [
        ("menu", datetime(2026, 11, 22, 3, 0, tzinfo=UTC)),
        ("menu", datetime(2026, 11, 22, 9, 0, tzinfo=UTC)),
        ("menu", datetime(2026, 11, 22, 23, 0, tzinfo=UTC)),
    ]
    assert [instant.astimezone(SEOUL).hour for _, instant in due] == [12, 18, 8]
    # The instant is spelled as `send-now --slot` spells it: the same slot key.
    assert due[2][1].isoformat() == slot_instant(time(8), date(2026, 11, 23), SEOUL).isoformat() \
        == "2026-11-23T08:00:00+09:00"


DST_CONFIG = """\
    timezone = "America/New_York"

    [slots]
    night = "01:30"
    gap = "02:30"

    [[jobs]]
    name = "morning-news"
    kind = "scrape"
    url = "https://example.com/menu"
    select = "li"
    at = ["morning"]
    to = ["me"]

    [[jobs]]
    name = "night-news"
    kind = "scrape"
    url = "https://example.com/menu"
    select = "li"
    at = ["night", "gap"]
    to = ["me"]
    """


def test_dst_zone_fires_at_local_8_on_both_sides_of_the_spring_change(write_config, secrets, clock):
    scheduler = scheduler_for(write_config, secrets, clock, DST_CONFIG)
    due = [(name, instant) for name, instant in scheduler.due(datetime(2026, 3, 6, 12, 0, tzinfo=UTC),
                                                               datetime(2026, 3, 10, 11, 0, tzinfo=UTC))
           if name == "morning-news"]
    # Clocks go forward on Sunday 2026-03-08: 08:00 is 13:00 UTC before, 12:00 UTC from that day on.
    assert [instant.astimezone(UTC) for _, instant in due] == [
        datetime(2026, 3, 6, 13, 0, tzinfo=UTC), datetime(2026, 3, 7, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 8, 12, 0, tzinfo=UTC), datetime(2026, 3, 9, 12, 0, tzinfo=UTC),
    ]
    assert {instant.astimezone(NEW_YORK).strftime("%H:%M") for _, instant in due} == {"08:00"}


def test_dst_change_days_fire_each_slot_once(write_config, secrets, clock):
    scheduler = scheduler_for(write_config, secrets, clock, DST_CONFIG)
    spring = scheduler.due(datetime(2026, 3, 8, 4, 0, tzinfo=UTC), datetime(2026, 3, 9, 4, 0, tzinfo=UTC))
    # 02:30 does not exist on 2026-03-08: it fires once, at the instant it would have been (03:30 EDT),
    # the same instant `send-now --slot gap` uses.
    assert local_times(spring, NEW_YORK) == [
        "night-news 2026-03-08 01:30 -0500", "night-news 2026-03-08 03:30 -0400",
        "morning-news 2026-03-08 08:00 -0400"]
    assert spring[1][1].isoformat() == slot_instant(time(2, 30), date(2026, 3, 8), NEW_YORK).isoformat()
    autumn = scheduler.due(datetime(2026, 11, 1, 4, 0, tzinfo=UTC), datetime(2026, 11, 2, 4, 0, tzinfo=UTC))
    # 01:30 happens twice on 2026-11-01 (EDT, then EST): it fires once, at the first.
    assert local_times(autumn, NEW_YORK) == [
        "night-news 2026-11-01 01:30 -0400", "night-news 2026-11-01 02:30 -0500",
        "morning-news 2026-11-01 08:00 -0500"]
    assert autumn[0][1].isoformat() == slot_instant(time(1, 30), date(2026, 11, 1), NEW_YORK).isoformat()
    # On the plain days around them every slot fires exactly once a day, too.
    week = scheduler.due(datetime(2026, 10, 28, 4, 0, tzinfo=UTC), datetime(2026, 11, 4, 4, 0, tzinfo=UTC))
    per_day: dict[tuple[str, date, str], int] = {}
    for name, instant in week:
        local = instant.astimezone(NEW_YORK)
        key = (name, local.date(), "02:30" if local.strftime("%H:%M") == "03:30" else local.strftime("%H:%M"))
        per_day[key] = per_day.get(key, 0) + 1
    assert set(per_day.values()) == {1} and len(per_day) == 7 * 3  # 7 days × (08:00, 01:30, 02:30)


def test_cron_with_weekday_names_fires_monday_to_friday(write_config, secrets, clock):
    scheduler = scheduler_for(write_config, secrets, clock, """\
        [[jobs]]
        name = "weekdays"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["0 21 * * mon-fri"]
        to = ["me"]
        """)
    # Two weeks from Sunday 2026-11-22 00:00 KST.
    due = scheduler.due(kst(2026, 11, 22), kst(2026, 12, 6))
    local = [instant.astimezone(SEOUL) for _, instant in due]
    assert len(local) == 10
    assert [moment.strftime("%a") for moment in local] == ["Mon", "Tue", "Wed", "Thu", "Fri"] * 2
    assert {moment.strftime("%H:%M") for moment in local} == {"21:00"}
    assert local[0] == kst(2026, 11, 23, 21)


def test_numeric_weekdays_are_refused_with_a_config_error(write_config):
    path = write_config("""\
        [[jobs]]
        name = "weekdays"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["0 21 * * 1-5"]
        to = ["me"]
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "jobs[weekdays].at"
    assert "weekdays as names" in info.value.reason and "mon-fri" in info.value.reason


# -- firing against the Kakao stand-in ----------------------------------------------------------------


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


def menu_job(web_url: str, at: str = '["noon"]', name: str = "menu") -> str:
    return f"""
[[jobs]]
name = "{name}"
kind = "scrape"
url = "{web_url}/menu"
select = "ul.menu > li"
at = {at}
to = ["me"]
"""


@pytest.fixture
def menu_app(make_app, logged_in, web) -> Callable[..., App]:  # noqa: ANN001
    def make(at: str = '["noon"]') -> App:
        app = make_app(menu_job(web.url, at))
        logged_in(app)
        return app
    return make


def rows(app: App, job: str = "menu") -> list[Delivery]:
    with app.db.session() as session:
        return list(session.scalars(select(Delivery).where(Delivery.job == job).order_by(Delivery.id)))


def menus(sandbox) -> list[dict]:  # noqa: ANN001
    """The job's messages to "me" (problem reports, if any, are not the job's)."""
    return [message for message in sandbox.received("me") if "김치찌개" in message.get("text", "")]


def test_fired_late_within_grace_the_slot_key_is_the_scheduled_instant(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 12, 10).astimezone(UTC)
    scheduler = BotScheduler(app)
    noon = kst(2026, 11, 23, 12)
    report = scheduler.fire_at("menu", noon, clock())
    assert report.status == "delivered"
    (row,) = rows(app)
    assert row.slot_key == "2026-11-23T12:00:00+09:00" == slot_instant(time(12), date(2026, 11, 23), SEOUL).isoformat()
    assert row.status == "sent" and row.late is True
    assert len(menus(sandbox)) == 1


def test_each_slot_run_gives_freed_memory_back(menu_app, clock, sandbox, monkeypatch):
    # glibc keeps what a run frees in its arenas; the service's resident size drifted up by ~1 MB per
    # 1,000 slot runs until each run ended with a trim (bot.util.native_memory, bench/idle.py).
    trims = []
    monkeypatch.setattr(bot.service.scheduler, "trim", lambda: trims.append(len(menus(sandbox))) or True)
    app = menu_app()
    clock.now = kst(2026, 11, 23, 12, 0).astimezone(UTC)
    report = BotScheduler(app).fire_at("menu", kst(2026, 11, 23, 12), clock())
    assert report.status == "delivered"
    assert trims == [1]  # once, after the run's message went out


def test_the_apscheduler_callback_uses_the_scheduled_instant_not_the_wall_clock(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 12, 0).astimezone(UTC) + timedelta(seconds=2, microseconds=345)
    BotScheduler(app)._fire("menu")
    (row,) = rows(app)
    assert row.slot_key == "2026-11-23T12:00:00+09:00" and row.late is False
    # Fired again (a second instance, or a late duplicate within the grace): the same slot, nothing more.
    clock.advance(minutes=7)
    BotScheduler(app)._fire("menu")
    assert len(rows(app)) == 1 and len(menus(sandbox)) == 1


def test_restart_within_grace_sends_once(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 7, 0).astimezone(UTC)
    assert BotScheduler(app).catch_up() == []  # the running bot knew the job; then it stopped
    clock.now = kst(2026, 11, 23, 12, 10).astimezone(UTC)  # restarted 10 minutes after noon
    noon = kst(2026, 11, 23, 12)
    assert BotScheduler(app).catch_up() == [CatchUp("menu", noon, "sent")]
    assert len(menus(sandbox)) == 1
    (row,) = rows(app)
    assert row.slot_key == noon.isoformat() and row.status == "sent" and row.late is True
    # A second catch-up, and another restart, send nothing more.
    assert BotScheduler(app).catch_up() == []
    clock.advance(minutes=5)
    scheduler = BotScheduler(app)
    assert scheduler.catch_up() == []
    assert len(menus(sandbox)) == 1 and len(rows(app)) == 1


def test_restart_beyond_grace_skips_and_reports(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 7, 0).astimezone(UTC)
    BotScheduler(app).catch_up()
    clock.now = kst(2026, 11, 23, 12, 45).astimezone(UTC)  # 45 minutes late; grace is 30
    noon = kst(2026, 11, 23, 12)
    assert BotScheduler(app).catch_up() == [CatchUp("menu", noon, "missed")]
    assert menus(sandbox) == []
    (row,) = rows(app)
    assert row.slot_key == noon.isoformat() and row.recipient == "me" and row.status == "skipped"
    assert row.reason.startswith("missed: the bot was down at 12:00")
    # Reported once: a later restart does not report (or send) it again.
    assert BotScheduler(app).catch_up() == []
    assert len(rows(app)) == 1 and menus(sandbox) == []


def test_a_run_apscheduler_drops_as_too_late_is_recorded_as_missed(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 14, 0).astimezone(UTC)  # e.g. the host was suspended over noon
    scheduler = BotScheduler(app)
    noon = kst(2026, 11, 23, 12)
    scheduler._on_missed(JobExecutionEvent(EVENT_JOB_MISSED, "job:menu", "default", noon))
    (row,) = rows(app)
    assert row.slot_key == noon.isoformat() and row.status == "skipped"
    assert row.reason.startswith("missed: the bot was down at 12:00")
    assert menus(sandbox) == []
    scheduler._on_missed(JobExecutionEvent(EVENT_JOB_MISSED, "every:health-checks", "default", noon))  # ignored
    assert len(rows(app)) == 1


def test_only_the_latest_missed_slot_is_considered(menu_app, clock, sandbox):
    app = menu_app('["morning", "noon", "evening"]')
    clock.now = kst(2026, 11, 22, 7, 0).astimezone(UTC)
    BotScheduler(app).catch_up()
    # Down for more than a day: 08:00, 12:00, 18:00 on the 22nd and 08:00, 12:00 on the 23rd passed.
    clock.now = kst(2026, 11, 23, 12, 10).astimezone(UTC)
    assert BotScheduler(app).catch_up() == [CatchUp("menu", kst(2026, 11, 23, 12), "sent")]
    assert len(menus(sandbox)) == 1
    assert [row.slot_key for row in rows(app)] == ["2026-11-23T12:00:00+09:00"]


def test_only_the_latest_slot_beyond_grace_is_recorded_as_missed(menu_app, clock, sandbox):
    app = menu_app('["morning", "noon", "evening"]')
    clock.now = kst(2026, 11, 22, 7, 0).astimezone(UTC)
    BotScheduler(app).catch_up()
    clock.now = kst(2026, 11, 23, 13, 0).astimezone(UTC)
    assert BotScheduler(app).catch_up() == [CatchUp("menu", kst(2026, 11, 23, 12), "missed")]
    assert [(row.slot_key, row.status) for row in rows(app)] == [("2026-11-23T12:00:00+09:00", "skipped")]
    assert menus(sandbox) == []


def test_a_new_job_is_not_owed_its_past_slots(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 12, 10).astimezone(UTC)
    assert BotScheduler(app).catch_up() == []  # first start with this job: nothing passed "while down"
    assert rows(app) == [] and menus(sandbox) == []


def test_a_slot_run_before_the_restart_is_not_run_again(menu_app, clock, sandbox):
    app = menu_app()
    clock.now = kst(2026, 11, 23, 12, 0).astimezone(UTC)
    scheduler = BotScheduler(app)
    scheduler.catch_up()
    scheduler._fire("menu")
    clock.advance(minutes=3)  # restarted right after the run
    assert BotScheduler(app).catch_up() == []
    assert len(menus(sandbox)) == 1


# -- since -----------------------------------------------------------------------------------------


@pytest.fixture
def runs(monkeypatch) -> list[dict[str, Any]]:  # noqa: ANN001
    """Records Runner.run calls instead of running jobs."""
    calls: list[dict[str, Any]] = []

    def fake_run(self, job, slot_key, *, dry_run=False, late=False, since=None, until=None):  # noqa: ANN001
        calls.append({"job": job.name, "slot_key": slot_key, "late": late, "since": since, "until": until})
        return RunReport(job.name, slot_key, "nothing")

    monkeypatch.setattr(bot.delivery.runner.Runner, "run", fake_run)
    return calls


def test_since_is_the_previous_slot_of_the_job(make_app, clock, runs):
    app = make_app("""
        [[jobs]]
        name = "orders"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["morning", "noon", "evening"]
        to = ["me"]

        [[jobs]]
        name = "weekly"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["0 21 * * mon-fri"]
        to = ["me"]
        """)
    scheduler = BotScheduler(app)
    noon = kst(2026, 11, 23, 12)
    scheduler.fire_at("orders", noon, noon)
    scheduler.fire_at("orders", kst(2026, 11, 23, 8), kst(2026, 11, 23, 8, 20))  # caught up 20 minutes late
    scheduler.fire_at("weekly", kst(2026, 11, 23, 21), kst(2026, 11, 23, 21))  # a Monday
    assert runs == [
        {"job": "orders", "slot_key": "2026-11-23T12:00:00+09:00", "late": False, "since": kst(2026, 11, 23, 8),
         "until": noon},
        # Late, the window still ends at the slot: the noon digest starts there, no order is counted twice.
        {"job": "orders", "slot_key": "2026-11-23T08:00:00+09:00", "late": True, "since": kst(2026, 11, 22, 18),
         "until": kst(2026, 11, 23, 8)},
        # Monday's since is Friday's run, three days back.
        {"job": "weekly", "slot_key": "2026-11-23T21:00:00+09:00", "late": False, "since": kst(2026, 11, 20, 21),
         "until": kst(2026, 11, 23, 21)},
    ]
    assert all(call["since"].tzinfo is not None for call in runs)


def test_since_across_a_dst_change_is_the_previous_local_slot(make_app, write_config, secrets, clock):
    scheduler = scheduler_for(write_config, secrets, clock, DST_CONFIG)
    monday = datetime(2026, 3, 9, 8, 0, tzinfo=NEW_YORK)
    assert scheduler.previous_slot("morning-news", monday) == datetime(2026, 3, 8, 8, 0, tzinfo=NEW_YORK)
    # 23 hours apart in real time across the change, still "yesterday's 08:00".
    sunday = scheduler.previous_slot("morning-news", monday)
    assert monday.astimezone(UTC) - sunday.astimezone(UTC) == timedelta(hours=24)
    assert scheduler.previous_slot("morning-news", sunday).astimezone(UTC) == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)


def test_a_failing_job_never_breaks_the_scheduler(make_app, clock, monkeypatch):
    app = make_app("""
        [[jobs]]
        name = "orders"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["noon"]
        to = ["me"]
        """)

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(bot.delivery.runner.Runner, "run", boom)
    noon = kst(2026, 11, 23, 12)
    assert BotScheduler(app).fire_at("orders", noon, noon) is None  # logged, not raised


# -- the APScheduler it builds --------------------------------------------------------------------------


@pytest.fixture
def host_zone_elsewhere(monkeypatch) -> Iterator[None]:  # noqa: ANN001
    """The host's own zone is Los Angeles: nothing may pick it up."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time_module.tzset()
    yield
    monkeypatch.undo()
    time_module.tzset()


def test_apscheduler_jobs_carry_the_zone_grace_coalesce_and_one_instance(make_app, host_zone_elsewhere):
    app = make_app("""
        [delivery]
        grace = "20m"

        [[jobs]]
        name = "menu"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["morning", "0 21 * * mon-fri"]
        to = ["me"]

        [[jobs]]
        name = "new-orders"
        kind = "shopify-order-alert"
        shop = "my-store.myshopify.com"
        to = ["me"]
        quiet = "22:00-07:00"
        """)
    real_now = datetime.now(UTC)
    scheduler = BotScheduler(app, clock=lambda: datetime.now(UTC))
    ticked = threading.Event()
    scheduler.every("tick", 3600, ticked.set, run_now=True)
    scheduler.start()
    try:
        inner = scheduler._scheduler
        assert inner.timezone == SEOUL
        assert isinstance(inner._lookup_jobstore("default"), MemoryJobStore)
        jobs = {job.id: job for job in inner.get_jobs()}
        assert set(jobs) == {"job:menu", "job:new-orders", "every:tick", "every:merchant-settings"}
        menu = jobs["job:menu"]
        assert menu.trigger.timezone == SEOUL
        assert [type(t) for t in menu.trigger.triggers] == [CronTrigger, CronTrigger]
        assert all(t.timezone == SEOUL for t in menu.trigger.triggers)
        assert menu.misfire_grace_time == 20 * 60 and menu.coalesce is True and menu.max_instances == 1
        local = menu.next_run_time.astimezone(SEOUL)
        assert local > real_now and (local.hour, local.minute) in {(8, 0), (21, 0)}
        summary = jobs["job:new-orders"]
        assert summary.trigger.timezone == SEOUL
        assert summary.next_run_time.astimezone(SEOUL).strftime("%H:%M") == "07:00"
        assert summary.misfire_grace_time is None  # held alerts are owed their summary however late
        assert jobs["every:tick"].coalesce is True and jobs["every:tick"].max_instances == 1
        assert ticked.wait(10), "the housekeeping job did not run"
        assert scheduler.running
    finally:
        assert scheduler.stop(10) is True
    assert not scheduler.running


def test_zero_grace_still_gives_apscheduler_a_valid_misfire_time(write_config, secrets, clock):
    scheduler = scheduler_for(write_config, secrets, clock, """\
        [delivery]
        grace = "0m"
        """)
    assert scheduler._scheduler._job_defaults["misfire_grace_time"] == 1


# -- next runs --------------------------------------------------------------------------------------------


JOBS_CONFIG = """\
    [[jobs]]
    name = "menu"
    kind = "scrape"
    url = "https://example.com/menu"
    select = "li"
    at = ["noon", "evening"]
    to = ["me", "friend:친구01"]

    [[jobs]]
    name = "weekdays"
    kind = "scrape"
    url = "https://example.com/menu"
    select = "li"
    at = ["0 21 * * mon-fri"]
    to = ["me"]

    [[jobs]]
    name = "new-orders"
    kind = "shopify-order-alert"
    shop = "my-store.myshopify.com"
    to = ["me"]
    quiet = "22:00-07:00"
    """


def test_next_runs(write_config, secrets, clock):
    clock.now = kst(2026, 11, 22, 9, 0).astimezone(UTC)  # a Sunday morning
    scheduler = scheduler_for(write_config, secrets, clock, JOBS_CONFIG)
    assert scheduler.next_runs() == [
        JobSchedule("menu", "scrape", kst(2026, 11, 22, 12), ("noon", "evening"), 2),
        JobSchedule("weekdays", "scrape", kst(2026, 11, 23, 21), ("0 21 * * mon-fri",), 1),
        JobSchedule("new-orders", "shopify-order-alert", None, (), 1, "22:00-07:00", kst(2026, 11, 23, 7)),
    ]
    assert scheduler.next_runs()[0].next_run.tzinfo == SEOUL
    assert next_slot_text(scheduler) == "next: menu at 2026-11-22 12:00 KST"
    clock.now = kst(2026, 11, 22, 12, 0).astimezone(UTC)  # exactly at a slot: the next one is the one after
    assert scheduler.next_runs()[0].next_run == kst(2026, 11, 22, 18)


# -- the `jobs` command ----------------------------------------------------------------------------------


def invoke(config: Path, *args: str) -> Any:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(cli, ["--config", str(config), "jobs", *args], catch_exceptions=False,
                                  env={"BOT_CONFIG": None, "BOT_DATABASE_URL": None, "CREDENTIALS_DIRECTORY": None})
    finally:  # the CLI installs its own stderr handler: put pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)


def test_jobs_command_table(write_config):
    result = invoke(write_config(JOBS_CONFIG))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "AT", "NEXT", "RUN", "TO"]
    menu, weekdays, alerts = lines[1:]
    assert menu.startswith("menu ") and "noon, evening" in menu and menu.endswith("2")
    assert ("12:00 KST" in menu) or ("18:00 KST" in menu)
    assert "0 21 * * mon-fri" in weekdays and "21:00 KST" in weekdays
    assert "on new orders (webhooks); quiet 22:00-07:00" in alerts and "summary" in alerts and "07:00 KST" in alerts


def test_jobs_command_json(write_config):
    before = datetime.now(UTC)
    result = invoke(write_config(JOBS_CONFIG), "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [job["name"] for job in listed] == ["menu", "weekdays", "new-orders"]
    menu, weekdays, alerts = listed
    assert menu["kind"] == "scrape" and menu["at"] == ["noon", "evening"] and menu["recipients"] == 2
    assert menu["trigger"] == "schedule" and menu["timezone"] == "Asia/Seoul"
    next_run = datetime.fromisoformat(menu["next_run"])
    assert next_run > before and next_run - before <= timedelta(days=1)
    assert next_run.astimezone(SEOUL).strftime("%H:%M") in {"12:00", "18:00"}
    assert menu["next_run_local"] == next_run.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M KST")
    assert datetime.fromisoformat(weekdays["next_run"]).astimezone(SEOUL).strftime("%a %H:%M") in {
        f"{day} 21:00" for day in ("Mon", "Tue", "Wed", "Thu", "Fri")}
    assert alerts == {"name": "new-orders", "kind": "shopify-order-alert", "at": [], "trigger": "webhooks",
                      "next_run": None, "next_run_local": None, "recipients": 1, "quiet": "22:00-07:00",
                      "next_summary": alerts["next_summary"], "timezone": "Asia/Seoul"}
    assert datetime.fromisoformat(alerts["next_summary"]).astimezone(SEOUL).strftime("%H:%M") == "07:00"


def test_jobs_command_without_jobs(write_config):
    result = invoke(write_config(""))
    assert result.exit_code == 0 and "No jobs configured" in result.output
    assert json.loads(invoke(write_config(""), "--json").output) == []
