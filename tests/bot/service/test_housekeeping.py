"""The service's housekeeping jobs (bot.service.run): the health checks every five minutes and the sweep of
the deliveries table every minute, registered on the scheduler, each round's failure logged, not raised."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

import pytest
from sqlalchemy import text

import bot.service.run
from bot.app import App
from bot.service.run import register_checks, register_delivery_sweep
from tokens.models import KakaoLogin

ALERT_PREFIX = "⚠️ 확인이 필요합니다"


@pytest.fixture
def app(make_app, logged_in) -> App:  # noqa: ANN001
    app = make_app()
    logged_in(app, "default")
    return app


def alerts(sandbox: Any) -> list[str]:
    """Texts of the problem messages "me" received."""
    return [message["text"] for message in sandbox.received("me") if message["text"].startswith(ALERT_PREFIX)]


def set_login(app: App, account: str, **values: Any) -> None:
    with app.db.session() as session:
        row = session.get(KakaoLogin, account)
        for name, value in values.items():
            setattr(row, name, value)


def test_register_checks_runs_check_all_every_five_minutes(app, sandbox):
    class Scheduler:
        def __init__(self) -> None:
            self.jobs: list[tuple[str, float, Callable[[], Any], bool]] = []

        def every(self, name: str, seconds: float, fn: Callable[[], Any], *, run_now: bool = False) -> None:
            self.jobs.append((name, seconds, fn, run_now))

    scheduler = Scheduler()
    register_checks(app, scheduler)
    ((name, seconds, fn, run_now),) = scheduler.jobs
    assert (name, seconds, run_now) == ("health-checks", 300, True)
    set_login(app, "default", refresh_expires_at=app.clock() + timedelta(days=3))
    fn()
    fn()
    assert len(alerts(sandbox)) == 1


def test_a_failing_check_is_logged_not_raised(app, caplog):
    class Scheduler:
        fn: Callable[[], Any]

        def every(self, name: str, seconds: float, fn: Callable[[], Any], *, run_now: bool = False) -> None:
            self.fn = fn

    scheduler = Scheduler()
    register_checks(app, scheduler)
    with app.db.session() as session:
        session.execute(text("DROP TABLE problems"))
    with caplog.at_level(logging.ERROR):
        scheduler.fn()
    assert "health checks failed" in caplog.text


def test_the_service_sweeps_every_minute(app, monkeypatch):
    registered: list[tuple[str, float, bool]] = []

    class Scheduler:
        def every(self, name: str, seconds: float, fn, *, run_now: bool = False) -> None:  # noqa: ANN001
            registered.append((name, seconds, run_now))

    register_delivery_sweep(app, Scheduler())
    assert registered == [("delivery-sweep", 60, True)]
    wired: list[object] = []
    monkeypatch.setattr(bot.service.run, "register_delivery_sweep", lambda _app, scheduler: wired.append(scheduler))
    scheduler = bot.service.run._start_scheduler(app)
    try:
        assert wired == [scheduler]
    finally:
        assert scheduler.stop(10)
