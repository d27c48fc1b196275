"""bot.delivery.problems: each problem is logged and told to "me" in KakaoTalk once per episode — however
often it is checked — through the Kakao stand-in; job failures through the Runner; /healthz."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from flask import Flask, Response
from sqlalchemy import select, text

from bot.app import App
from bot.delivery.fanout import Fanout
from bot.delivery.problems import ALERT_JOB, FAILURES_KEY, ProblemReporter, alert_slot_key, open_problems
from bot.delivery.runner import Runner
from bot.kakao.quota import quota_day
from bot.kakao.recipients import Target
from bot.sandbox.kakao import MAINTENANCE
from bot.sandbox.server import RunningServer, serve
from bot.store.job_memory import StoredJobState
from bot.store.models import Delivery, Problem
from bot.store.quota_counts import load_quota_book
from bot.web.server import create_app
from tokens.models import KakaoLogin

SHOP = "my-store.myshopify.com"
LEGACY_TOKEN = "shpat_problemssecret0123456789"
MEMO_PATH = "/v2/api/talk/memo/default/send"
ALERT_PREFIX = "⚠️ 확인이 필요합니다"
MENU = '<ul class="menu"><li>김치찌개 9,000원</li></ul>'


def alerts(sandbox: Any) -> list[str]:
    """Texts of the problem messages "me" received (job messages left out)."""
    return [message["text"] for message in sandbox.received("me") if message["text"].startswith(ALERT_PREFIX)]


def refresh_requests(sandbox: Any) -> int:
    return sum(1 for form in sandbox.token_requests if form.get("grant_type") == "refresh_token")


def set_install(app: App, status: str, reason: str = "revoked by the shop") -> None:
    with app.db.session() as session:
        session.execute(text("UPDATE shopify_installs SET status = :status, status_reason = :reason"),
                        {"status": status, "reason": None if status == "active" else reason})


def set_login(app: App, account: str, **values: Any) -> None:
    with app.db.session() as session:
        row = session.get(KakaoLogin, account)
        for name, value in values.items():
            setattr(row, name, value)


def problem_logs(caplog: Any, key: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "bot.delivery.problems" and record.getMessage().startswith(f"problem {key}: ")
            and "KakaoTalk" not in record.getMessage()]


@pytest.fixture
def app(make_app, logged_in) -> App:  # noqa: ANN001
    app = make_app()
    logged_in(app, "default")
    return app


@pytest.fixture
def reporter(app: App) -> ProblemReporter:
    return ProblemReporter(app)


# -- each kind of problem: one message, however often it is checked ---------------------------------


def test_a_kakao_login_needing_a_person_is_told_once_across_ten_checks(app, reporter, sandbox, logged_in, caplog):
    caplog.set_level(logging.INFO)
    logged_in(app, "staff")
    set_login(app, "staff", needs_login_reason="KOE322: expired_or_invalid_refresh_token")
    for _ in range(10):
        reporter.check_all()
    (message,) = alerts(sandbox)
    assert "'staff'" in message and "kakao login --account staff" in message
    assert [p.key for p in open_problems(app.db)] == ["kakao-login:staff"]
    assert len(problem_logs(caplog, "kakao-login:staff")) == 1


def test_a_job_sender_without_any_login_is_a_problem(make_app, logged_in, sandbox):
    app = make_app('[[jobs]]\nname = "menu"\nkind = "scrape"\nurl = "https://example.com/menu"\n'
                   'select = "li"\nat = ["noon"]\nto = ["me"]\n\n'
                   '[[jobs]]\nname = "late"\nkind = "scrape"\nurl = "https://example.com/menu"\n'
                   'select = "li"\nat = ["evening"]\nto = ["me"]\nfrom = "staff"\n')
    logged_in(app, "default")
    reporter = ProblemReporter(app)
    assert reporter.sender() == "default"  # the first job's `from`
    for _ in range(3):
        reporter.check_all()
    (message,) = alerts(sandbox)
    assert "'staff'" in message and "late" in message


@pytest.mark.parametrize("days, told", [(6, 1), (8, 0)])
def test_a_refresh_token_expiring_within_7_days_is_told_once(app, reporter, sandbox, clock, days, told):
    set_login(app, "default", refresh_expires_at=clock.now + timedelta(days=days))
    for _ in range(10):
        reporter.check_all()
    messages = alerts(sandbox)
    assert len(messages) == told
    if told:
        expiry = (clock.now + timedelta(days=days)).astimezone(app.config.timezone)
        assert f"{expiry:%Y-%m-%d}" in messages[0] and "kakao login --account default" in messages[0]
        (problem,) = open_problems(app.db)
        assert problem.key == "kakao-refresh-expiring:default" and not problem.needs_person
    else:
        assert open_problems(app.db) == []


def test_a_refresh_token_that_ran_out_is_no_longer_expiring_but_dead(app, reporter, sandbox, clock):
    set_login(app, "default", refresh_expires_at=clock.now + timedelta(days=6))
    reporter.check_all()
    clock.advance(days=7)
    reporter.check_all()
    assert [p.key for p in open_problems(app.db)] == ["kakao-login:default"]
    assert len(alerts(sandbox)) == 1  # the dead login cannot tell about itself


@pytest.mark.parametrize("status, needs_person", [("needs_reauth", True), ("invalid", True), ("uninstalled", False)])
def test_a_shopify_install_that_stopped_working_is_told_once(app, reporter, sandbox, status, needs_person):
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    reporter.check_all()
    assert alerts(sandbox) == []
    if status == "uninstalled":
        app.shopify_tokens.uninstalled(SHOP, "default")
    else:
        set_install(app, status)
    for _ in range(10):
        reporter.check_all()
    (message,) = alerts(sandbox)
    assert SHOP in message and LEGACY_TOKEN not in message
    (problem,) = open_problems(app.db)
    assert problem.key == f"shopify:default:{SHOP}" and problem.needs_person is needs_person


def test_resolved_then_raised_again_is_a_second_message(app, reporter, sandbox, caplog):
    caplog.set_level(logging.INFO)
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    set_install(app, "needs_reauth")
    reporter.check_all()
    reporter.check_all()
    assert len(alerts(sandbox)) == 1
    set_install(app, "active")
    assert reporter.check_all() == []
    assert any("resolved" in record.getMessage() for record in caplog.records if record.name == "bot.delivery.problems")
    set_install(app, "needs_reauth")
    for _ in range(5):
        reporter.check_all()
    assert len(alerts(sandbox)) == 2
    with app.db.session() as session:
        slots = session.scalars(select(Delivery.slot_key).where(Delivery.job == ALERT_JOB)
                                .order_by(Delivery.id)).all()
    key = f"shopify:default:{SHOP}"
    assert slots == [alert_slot_key(key, 1), alert_slot_key(key, 2)]


def test_raise_and_resolve_directly(app, reporter, sandbox):
    assert reporter.raise_("custom:thing", "something broke") is True
    assert reporter.raise_("custom:thing", "something broke") is False
    assert reporter.resolve("custom:thing") is True
    assert reporter.resolve("custom:thing") is False
    assert reporter.raise_("custom:thing", "something broke again") is True
    assert len(alerts(sandbox)) == 2


def test_raising_an_unknown_severity_is_refused(reporter):
    with pytest.raises(ValueError, match="severity"):
        reporter.raise_("custom:thing", "x", severity="loud")


# -- when the message cannot be sent ------------------------------------------------------------------


def test_a_dead_sender_login_is_logged_not_retried_in_a_storm_and_told_after_a_new_login(
        app, reporter, sandbox, clock, logged_in, caplog):
    caplog.set_level(logging.INFO)
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    set_install(app, "needs_reauth")
    sandbox.revoke_refresh_tokens()
    clock.advance(hours=7)  # the stored access token expired: the next send must refresh, and cannot
    for _ in range(10):
        reporter.check_all()
        clock.advance(minutes=5)
    assert alerts(sandbox) == []
    assert refresh_requests(sandbox) == 1  # one refresh found the login dead; no storm after that
    assert sandbox.count(MEMO_PATH) == 0
    assert {p.key for p in open_problems(app.db)} == {"kakao-login:default", f"shopify:default:{SHOP}"}
    assert len(problem_logs(caplog, "kakao-login:default")) == 1
    assert len(problem_logs(caplog, f"shopify:default:{SHOP}")) == 1

    logged_in(app, "default")  # a person logged in again: the message still owed goes out
    for _ in range(3):
        reporter.check_all()
    (message,) = alerts(sandbox)
    assert SHOP in message
    assert [p.key for p in open_problems(app.db)] == [f"shopify:default:{SHOP}"]


def test_a_failed_send_is_retried_at_most_once_an_hour(app, reporter, sandbox, clock, caplog):
    caplog.set_level(logging.WARNING)
    sandbox.fail_next(MEMO_PATH, 503, MAINTENANCE, times=10)
    assert reporter.raise_("custom:thing", "something broke") is False
    attempts = sandbox.count(MEMO_PATH)
    assert attempts >= 1
    assert any("could not tell it in KakaoTalk" in record.getMessage() for record in caplog.records)
    for _ in range(11):
        clock.advance(minutes=5)
        reporter.check_all()
    assert sandbox.count(MEMO_PATH) == attempts  # 55 minutes: not tried again
    sandbox.clear_faults()  # Kakao is back
    clock.advance(minutes=5)
    reporter.check_all()
    assert len(alerts(sandbox)) == 1
    for _ in range(5):
        clock.advance(hours=1)
        reporter.check_all()
    assert len(alerts(sandbox)) == 1


def test_the_quota_reserve_carries_the_message_when_the_daily_quota_is_otherwise_used_up(app, reporter, sandbox,
                                                                                         clock):
    day = quota_day(clock.now)
    with app.db.session() as session:
        for index in range(95):
            session.add(Delivery(job="menu", slot_key=f"run:{index}", recipient="me", label="me", sender="default",
                                 status="sent", quota_day=day, claimed_by="test"))
    with app.db.session() as session:
        book = load_quota_book(session, "default", day, ["me"], app.config.quota_reserve)
    assert book.take("me") is not None  # an ordinary message is refused: 5 are kept in reserve
    assert reporter.raise_("custom:thing", "something broke") is True
    assert len(alerts(sandbox)) == 1
    with app.db.session() as session:
        row = session.execute(select(Delivery).where(Delivery.job == ALERT_JOB)).scalar_one()
    assert (row.recipient, row.status, row.sender) == ("me", "sent", "default")


def test_a_fanout_without_alert_would_have_been_refused(app, clock):
    """The contrast for the reserve test: the same send as an ordinary message is skipped."""
    day = quota_day(clock.now)
    with app.db.session() as session:
        for index in range(95):
            session.add(Delivery(job="menu", slot_key=f"run:{index}", recipient="me", label="me", sender="default",
                                 status="sent", quota_day=day, claimed_by="test"))
    fanout = Fanout(app.deliveries, app.kakao_api("default"), "menu", "run:x", "default", clock.now,
                    reserve=app.config.quota_reserve)
    report = fanout.deliver([Target("me", "me")], [], lambda _t: {"object_type": "text", "text": "x",
                                                                  "link": {}})
    assert report.results[0].status == "skipped" and "kept for problem reports" in report.results[0].reason


# -- job failures through the runner ------------------------------------------------------------------


class Page:
    """A page that answers 500 until fixed."""

    def __init__(self) -> None:
        self.broken = True

    def wsgi(self) -> Flask:
        flask_app = Flask("page")

        @flask_app.get("/menu")
        def menu() -> Response:
            if self.broken:
                return Response("oops", status=500)
            return Response(f"<html><body>{MENU}</body></html>", content_type="text/html; charset=utf-8")

        return flask_app


@pytest.fixture
def page() -> Iterator[tuple[Page, RunningServer]]:
    state = Page()
    with serve(state.wsgi()) as server:
        yield state, server


@pytest.fixture
def job_app(make_app, logged_in, page) -> App:  # noqa: ANN001
    _, server = page
    app = make_app(f'[[jobs]]\nname = "menu"\nkind = "scrape"\nurl = "{server.url}/menu"\n'
                   'select = "ul.menu > li"\nat = ["noon"]\nto = ["me"]\n')
    logged_in(app, "default")
    return app


def run_job(app: App, index: int, **options: Any):
    (job,) = app.config.jobs
    return Runner(app).run(job, f"run:test-{index}", **options)


def test_a_job_failing_twice_in_a_row_is_told_once_and_a_success_ends_it(job_app, page, sandbox):
    state, _ = page
    assert run_job(job_app, 1).status == "failed"
    assert alerts(sandbox) == []
    assert run_job(job_app, 2).status == "failed"
    (message,) = alerts(sandbox)
    assert "menu" in message and "2 times in a row" in message and "500" in message
    for index in range(3, 8):
        run_job(job_app, index)
    assert len(alerts(sandbox)) == 1
    assert StoredJobState(job_app.db, "menu").get(FAILURES_KEY) == 7
    (problem,) = open_problems(job_app.db)
    assert problem.key == "job-failing:menu" and "7 times" in problem.summary and not problem.needs_person

    state.broken = False
    assert run_job(job_app, 8).status == "delivered"
    assert StoredJobState(job_app.db, "menu").get(FAILURES_KEY) == 0
    assert open_problems(job_app.db) == []

    state.broken = True
    run_job(job_app, 9)
    assert len(alerts(sandbox)) == 1  # one failure after a success is not yet a problem
    run_job(job_app, 10)
    assert len(alerts(sandbox)) == 2


def test_a_dry_run_does_not_count(job_app, sandbox):
    for index in range(3):
        assert run_job(job_app, index, dry_run=True).status == "failed"
    assert StoredJobState(job_app.db, "menu").get(FAILURES_KEY) is None
    assert alerts(sandbox) == []


def test_a_job_failure_owed_while_the_login_was_dead_is_told_by_the_next_check(job_app, sandbox, logged_in):
    set_login(job_app, "default", needs_login_reason="KOE322: expired_or_invalid_refresh_token")
    run_job(job_app, 1)
    run_job(job_app, 2)
    assert alerts(sandbox) == []
    logged_in(job_app, "default")
    ProblemReporter(job_app).check_all()
    (message,) = alerts(sandbox)
    assert "job menu failed 2 times in a row" in message


# -- missed slots ---------------------------------------------------------------------------------


def test_a_missed_slot_is_told_once_and_does_not_stay_open(app, reporter, sandbox):
    instant = datetime(2026, 11, 22, 8, 0, tzinfo=app.config.timezone)
    assert reporter.missed_slot("orders", instant) is True
    assert reporter.missed_slot("orders", instant) is False
    assert reporter.missed_slot("orders", instant.astimezone(timezone.utc)) is False  # the same instant
    (message,) = alerts(sandbox)
    assert "orders" in message and "2026-11-22 08:00" in message
    assert open_problems(app.db) == []  # told: nothing left to do
    reporter.check_all()
    assert reporter.missed_slot("orders", instant + timedelta(days=1)) is True
    assert len(alerts(sandbox)) == 2


# -- /healthz and the service hook ----------------------------------------------------------------


def test_healthz_lists_open_problems_and_is_503_only_for_those_needing_a_person(app, reporter, clock):
    client = create_app(app).test_client()
    set_login(app, "default", refresh_expires_at=clock.now + timedelta(days=6))
    reporter.check_all()
    answer = client.get("/healthz")
    assert answer.status_code == 200  # informational
    (problem,) = answer.json["problems"]
    assert problem["key"] == "kakao-refresh-expiring:default" and problem["needs_person"] is False
    assert problem["since"] == clock.now.isoformat() and "kakao login" in problem["summary"]

    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    set_install(app, "needs_reauth")
    reporter.check_all()
    set_install(app, "active")  # /healthz's own install check passes; the open problem still counts
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json["status"] == "needs_attention"
    assert {p["key"] for p in answer.json["problems"]} == {"kakao-refresh-expiring:default",
                                                           f"shopify:default:{SHOP}"}
    body = answer.get_data(as_text=True)
    with app.db.session() as session:
        login = session.get(KakaoLogin, "default")
        secrets = [login.access_token_enc, login.refresh_token_enc, app.vault.decrypt(login.access_token_enc),
                   app.vault.decrypt(login.refresh_token_enc), LEGACY_TOKEN]
    for secret in secrets:
        assert secret not in body
    reporter.check_all()
    assert client.get("/healthz").status_code == 200


def test_long_keys_still_fit_the_deliveries_slot_column():
    key = "shopify:" + "a" * 60 + ":" + "b" * 200 + ".myshopify.com"
    first, second = alert_slot_key(key, 1), alert_slot_key(key, 2)
    assert len(first) <= 80 and len(second) <= 80 and first != second
    assert alert_slot_key("job-failing:menu", 3) == "job-failing:menu#3"
    assert alert_slot_key(key + "x", 1) != first


def test_problem_rows_hold_no_token_values(app, reporter, sandbox):
    app.shopify_tokens.store_legacy("default", SHOP, LEGACY_TOKEN, "read_orders")
    reporter.raise_("custom:leak", f"the API said Bearer {LEGACY_TOKEN} access_token=abc123")
    with app.db.session() as session:
        (row,) = session.scalars(select(Problem)).all()
    assert LEGACY_TOKEN not in row.summary and "abc123" not in row.summary
    assert all(LEGACY_TOKEN not in message and "abc123" not in message for message in alerts(sandbox))
