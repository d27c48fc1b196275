"""Deliveries a person must hear about (issue 8 items 3, 4, 6): `unknown` sends, rows stuck in
`sending`, friends who refuse messages — each reported through bot.delivery.problems, once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.app import App
from bot.delivery.problems import open_problems
from bot.delivery.runner import Runner
from bot.delivery.sweep import sweep
from bot.delivery.unknown_sends import report_unknown_sends
from bot.kakao.client import KakaoApi
from bot.kakao.errors import KakaoSendUnknown
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.store.deliveries import DeliveryLog
from bot.store.models import Delivery
from bot.web.server import create_app
from tokens.kakao import KakaoTokens

from webhook_helpers import new_order

SEND_PATH = "/v1/api/talk/friends/message/default/send"
MEMO_PATH = "/v2/api/talk/memo/default/send"
SLOT = "2026-11-22T12:00:00+09:00"
MENU_HTML = '<ul class="menu"><li>김치찌개 9,000원</li></ul>'


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


def menu_job(web_url: str, to: list[str]) -> str:
    return f"""
[[jobs]]
name = "menu"
kind = "scrape"
url = "{web_url}/menu"
select = "ul.menu > li"
at = ["noon"]
to = {json.dumps(to, ensure_ascii=False)}
"""


@pytest.fixture
def app(make_app, logged_in, sandbox, web) -> App:  # noqa: ANN001
    sandbox.add_friend("친구01", uuid="uuid-friend-01")
    app = make_app(menu_job(web.url, ["me", "friend:친구01"]))
    logged_in(app)
    return app


def rows(app: App, job: str = "menu") -> dict[str, Delivery]:
    with app.db.session() as session:
        return {row.recipient: row for row in session.scalars(select(Delivery).where(Delivery.job == job))}


def problem_messages(sandbox) -> list[str]:  # noqa: ANN001
    return [m["text"] for m in sandbox.received("me") if m["text"].startswith("⚠️ 확인이 필요합니다")]


# -- item 3: the window between `sending` and the POST; unknown sends reported ---------------------------


def test_no_row_is_sending_while_an_access_token_is_minted(app, sandbox, monkeypatch):
    """Minting (here a refresh at Kakao's token endpoint) happens before `sending` is committed: a crash
    or a hang during it leaves a retakeable `claimed` row, never an `unknown`."""
    seen: list[set[str]] = []
    real = KakaoTokens.lease  # the fan-out's minting: the token and how long it may be used

    def spy(self, account):  # noqa: ANN001, ANN202
        seen.append({row.status for row in rows(app).values()})
        return real(self, account)

    monkeypatch.setattr(KakaoTokens, "lease", spy)
    sandbox.expire_access_tokens()
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert {r.status for r in report.fanout.results} == {"sent"}
    minted_during_fanout = [statuses for statuses in seen if statuses]
    assert minted_during_fanout and all("sending" not in statuses for statuses in minted_during_fanout)


def test_a_token_request_that_fails_leaves_the_row_failed_not_unknown(make_app, logged_in, sandbox, web):
    app = make_app(menu_job(web.url, ["me"]))
    logged_in(app)
    sandbox.expire_access_tokens()
    sandbox.fail_next("/oauth/token", 400, {"error": "invalid_client", "error_code": "KOE010",
                                            "error_description": "bad client secret"})
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert {r.status for r in report.fanout.results} == {"failed"}
    assert {row.status for row in rows(app).values()} == {"failed"}
    assert not [p for p in open_problems(app.db) if p.key.startswith("unknown-send:")]


def test_an_unknown_send_is_a_problem_needing_a_person_told_once_by_job_recipient_and_slot(app, sandbox, clock):
    sandbox.fail_next(SEND_PATH, 200, {"unexpected": True})  # no receiver listed: the outcome is unknown
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert {r.label: r.status for r in report.fanout.results} == {"me": "sent", "친구01": "unknown"}
    row = rows(app)["uuid:uuid-friend-01"]
    (problem,) = open_problems(app.db)
    assert problem.key == f"unknown-send:{row.id}" and problem.needs_person
    (told,) = problem_messages(sandbox)
    assert "menu" in told and "친구01" in told and "2026-11-22 12:00 KST" in told
    # /healthz needs a person; `history` shows the message that told it.
    assert create_app(app).test_client().get("/healthz").status_code == 503
    assert {r.status for r in rows(app, "!problems").values()} == {"sent"}

    # Re-runs, re-reports and the periodic round: nothing told twice.
    Runner(app).run(app.config.job("menu"), SLOT)
    assert report_unknown_sends(app) == 0
    assert len(problem_messages(sandbox)) == 1 and sandbox.count(SEND_PATH) == 1

    # A person cannot clear it in the bot: it resolves itself after a day, and stays resolved.
    clock.advance(hours=23)
    report_unknown_sends(app)
    assert [p.key for p in open_problems(app.db)] == [problem.key]
    clock.advance(hours=1, seconds=1)
    report_unknown_sends(app)
    report_unknown_sends(app)
    assert open_problems(app.db) == []
    assert create_app(app).test_client().get("/healthz").status_code == 200
    assert len(problem_messages(sandbox)) == 1


# -- item 4: rows stuck in `sending` are resolved by the running service's sweep ------------------------


def test_a_row_whose_outcome_could_not_be_written_is_resolved_by_the_sweep_without_a_restart(
        app, sandbox, monkeypatch):
    """The database goes away during the Kakao call: the message went out, `sent` could not be written.
    The sweep leaves the row alone while the request is in flight, and resolves it (unknown, reported)
    once the database answers again."""
    real_record, real_send = DeliveryLog.record, KakaoApi.send_to_friends
    during: list[list[int]] = []

    def record(self, outcomes, **kwargs):  # noqa: ANN001, ANN202
        sent = [row for outcome in outcomes if outcome.status == "sent" for row in outcome.row_ids]
        if "uuid:uuid-friend-01" in self_rows(self, sent):
            raise OperationalError("UPDATE deliveries", {}, Exception("server closed the connection unexpectedly"))
        return real_record(self, outcomes, **kwargs)

    def self_rows(log, row_ids):  # noqa: ANN001, ANN202
        with log.db.session() as session:
            return {row.recipient for row in session.scalars(select(Delivery).where(Delivery.id.in_(list(row_ids))))}

    def send(self, uuids, template):  # noqa: ANN001, ANN202
        during.append(sweep(app))  # a round while the request is in flight: nothing to resolve
        return real_send(self, uuids, template)

    monkeypatch.setattr(DeliveryLog, "record", record)
    monkeypatch.setattr(KakaoApi, "send_to_friends", send)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert report.status == "failed" and during == [[]]
    assert len(sandbox.received("uuid-friend-01")) == 1
    row = rows(app)["uuid:uuid-friend-01"]
    assert row.status == "sending"

    monkeypatch.setattr(DeliveryLog, "record", real_record)  # the database is back
    assert sweep(app) == [row.id]
    row = rows(app)["uuid:uuid-friend-01"]
    assert row.status == "unknown" and "could not be recorded" in row.reason
    (problem,) = open_problems(app.db)
    assert problem.key == f"unknown-send:{row.id}" and problem.needs_person
    (told,) = problem_messages(sandbox)
    assert "친구01" in told and "menu" in told
    assert sweep(app) == [] and len(problem_messages(sandbox)) == 1
    # Nothing is sent twice: a re-run of the slot finds it unknown.
    again = Runner(app).run(app.config.job("menu"), SLOT)
    assert {r.label: r.status for r in again.fanout.results} == {"me": "already-sent", "친구01": "unknown"}
    assert len(sandbox.received("uuid-friend-01")) == 1


def test_a_dead_processs_sending_row_is_resolved_by_the_sweep(app, sandbox):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    dead = DeliveryLog(app.db, owner=f"{socket.gethostname()}:{process.pid}:deadbeef", clock=app.clock)
    alive = DeliveryLog(app.db, owner=f"{socket.gethostname()}:{os.getpid()}:other", clock=app.clock)
    for log, recipient in ((dead, "me"), (alive, "uuid:uuid-friend-01")):
        claim = log.claim(job="menu", slot_key=SLOT, recipient=recipient, label=recipient, sender="default",
                          quota_day="2026-11-22")
        log.mark([claim.row_id], "sending")
    assert sweep(app) == [rows(app)["me"].id]
    state = rows(app)
    assert state["me"].status == "unknown" and "stopped during the request" in state["me"].reason
    assert state["uuid:uuid-friend-01"].status == "sending"  # a live instance's request: left to it
    assert [p.key for p in open_problems(app.db)] == [f"unknown-send:{state['me'].id}"]


# -- item 6: a friend refusing messages is a lasting condition, told once -------------------------------


SLOTS = ["2026-11-22T08:00:00+09:00", "2026-11-22T12:00:00+09:00", "2026-11-22T18:00:00+09:00",
         "2026-11-23T08:00:00+09:00", "2026-11-23T12:00:00+09:00"]
REFUSED_KEY = "kakao-refused:default:uuid:uuid-friend-01"


def slot_reports(sandbox) -> list[str]:  # noqa: ANN001
    return [m["text"] for m in sandbox.received("me") if "보내지 못했습니다" in m["text"]]


def test_a_friend_refusing_messages_is_told_once_not_at_every_slot_and_again_only_when_it_changes(
        app, sandbox, clock):
    def run(slot: str, refuse: bool) -> None:
        if refuse:
            sandbox.fail_next(SEND_PATH, 400, {"code": -530, "msg": "the receiver does not allow messages"})
        Runner(app).run(app.config.job("menu"), slot)
        clock.advance(hours=4)

    for slot in SLOTS[:3]:
        run(slot, refuse=True)
    (told,) = problem_messages(sandbox)
    assert "친구01" in told and "does not accept" in told
    assert slot_reports(sandbox) == []  # no per-slot memo for it, three slots running
    (problem,) = open_problems(app.db)
    assert problem.key == REFUSED_KEY and not problem.needs_person  # the friend's choice: /healthz stays 200

    run(SLOTS[3], refuse=False)  # they allowed messages again: resolved
    assert open_problems(app.db) == []
    run(SLOTS[4], refuse=True)  # and refused again: a change, told again
    assert len(problem_messages(sandbox)) == 2 and [p.key for p in open_problems(app.db)] == [REFUSED_KEY]


def test_a_friend_the_friends_list_shows_refusing_is_told_once(make_app, logged_in, sandbox, web, clock):
    sandbox.add_friend("친구01", uuid="uuid-friend-01", allowed_msg=False)
    app = make_app(menu_job(web.url, ["me", "friend:친구01"]))
    logged_in(app)
    for slot in SLOTS[:3]:
        Runner(app).run(app.config.job("menu"), slot)
        clock.advance(hours=4)
    (told,) = problem_messages(sandbox)
    assert "친구01" in told
    assert slot_reports(sandbox) == [] and sandbox.received("uuid-friend-01") == []
    assert [p.key for p in open_problems(app.db)] == [REFUSED_KEY]


def test_an_order_alert_whose_outcome_is_unknown_is_reported_at_once(bot, hooks, shopify, sandbox, worker,
                                                                      monkeypatch):
    """The webhook row says the alert was not sent; the person hears that it may have been, by name."""
    real, calls = KakaoApi.send_to_me, []

    def unknown_once(self, template):  # noqa: ANN001, ANN202
        calls.append(template)
        if len(calls) == 1:
            raise KakaoSendUnknown(None, "no answer after the request was sent (ReadTimeout); "
                                         "the message may have been delivered")
        return real(self, template)

    monkeypatch.setattr(KakaoApi, "send_to_me", unknown_once)
    assert hooks.send("orders/create", new_order(shopify)).status_code == 200
    assert worker.drain_once() == 1
    (problem,) = open_problems(bot.db)
    assert problem.key.startswith("unknown-send:") and problem.needs_person
    (told,) = problem_messages(sandbox)
    assert "new-orders" in told and "me" in told and "order:" in told
