"""Deliveries a person must hear about (issue 8 items 3, 4, 6): `unknown` sends, rows stuck in
`sending`, friends who refuse messages — each reported through bot.problems, once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Iterator

import pytest
from sqlalchemy import select

from bot.app import App
from bot.delivery_problems import report_unknown_sends
from bot.models import Delivery
from bot.problems import open_problems
from bot.runner import Runner
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.server import create_app
from tokens.kakao import KakaoTokens

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
    real = KakaoTokens.access_token

    def spy(self, account):  # noqa: ANN001, ANN202
        seen.append({row.status for row in rows(app).values()})
        return real(self, account)

    monkeypatch.setattr(KakaoTokens, "access_token", spy)
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
