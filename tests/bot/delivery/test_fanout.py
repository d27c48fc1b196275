"""Delivery fan-out end to end: a scrape job's message through the Runner to the Kakao stand-in,
with every outcome recorded per recipient (batches of ≤ 5, partial failures, quotas,
exactly once per slot, crash and resume, timeouts, token renewal, a dead login)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from typing import Callable, Iterator

import pytest
from sqlalchemy import event, select

from bot.app import App, load_config
from bot.delivery.audience import app_fanout
from bot.delivery.problems import open_problems
from bot.delivery.runner import Runner
from bot.kakao.client import KakaoApi
from bot.kakao.quota import quota_day
from bot.kakao.recipients import resolve
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.store.deliveries import DeliveryLog
from bot.store.models import Delivery, JobMemory
from bot.util.retry import RetryPolicy
from tokens.kakao import KakaoTokens

SEND_PATH = "/v1/api/talk/friends/message/default/send"
MEMO_PATH = "/v2/api/talk/memo/default/send"
SLOT = "2026-11-22T12:00:00+09:00"
MENU_HTML = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul></body></html>"""


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


def menu_job(web_url: str, to: list[str], name: str = "menu", extra: str = "") -> str:
    return f"""
[[jobs]]
name = "{name}"
kind = "scrape"
url = "{web_url}/menu"
select = "ul.menu > li"
at = ["noon"]
to = {json.dumps(to, ensure_ascii=False)}
{extra}
"""


@pytest.fixture
def friends(sandbox: KakaoSandbox) -> dict[str, str]:
    """Twelve friends of the owner who accept messages: nickname → uuid."""
    return {f"친구{i:02d}": sandbox.add_friend(f"친구{i:02d}", uuid=f"uuid-friend-{i:02d}") for i in range(1, 13)}


def nicknames(n: int) -> list[str]:
    return [f"friend:친구{i:02d}" for i in range(1, n + 1)]


def rows(app: App, job: str = "menu") -> dict[str, Delivery]:
    with app.db.session() as session:
        return {row.recipient: row for row in session.scalars(select(Delivery).where(Delivery.job == job))}


def statuses(app: App, job: str = "menu") -> dict[str, str]:
    return {key: row.status for key, row in rows(app, job).items()}


def results(report) -> dict[str, str]:  # noqa: ANN001
    return {r.label: r.status for r in report.fanout.results}


def refreshes(sandbox: KakaoSandbox) -> int:
    return sum(1 for form in sandbox.token_requests if form.get("grant_type") == "refresh_token")


def spy_sends(monkeypatch: pytest.MonkeyPatch, before: Callable[[int, list[str]], None] | None = None,
              after: Callable[[int, list[str]], None] | None = None) -> list[list[str]]:
    """Record every send_to_friends call's receivers; optional hooks around the real call."""
    original = KakaoApi.send_to_friends
    calls: list[list[str]] = []

    def spy(self, uuids, template):  # noqa: ANN001, ANN202
        calls.append(list(uuids))
        if before:
            before(len(calls), list(uuids))
        result = original(self, uuids, template)
        if after:
            after(len(calls), list(uuids))
        return result

    monkeypatch.setattr(KakaoApi, "send_to_friends", spy)
    return calls


def dead_owner() -> str:
    """An owner id naming this host and the pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:deadbeef"


# -- batches ----------------------------------------------------------------------------


def test_twelve_friends_get_the_message_in_three_calls_of_at_most_five(make_app, logged_in, sandbox, web,
                                                                        friends, monkeypatch):
    app = make_app(menu_job(web.url, ["me", *nicknames(12)]))
    logged_in(app)
    calls = spy_sends(monkeypatch)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert report.status == "delivered" and not report.failed
    assert sandbox.count(SEND_PATH) == 3
    assert [len(c) for c in calls] == [5, 5, 2]
    assert sorted(u for c in calls for u in c) == sorted(friends.values())
    assert sandbox.count(MEMO_PATH) == 1
    for uuid in friends.values():
        (received,) = sandbox.received(uuid)
        assert "김치찌개 9,000원" in received["text"]
    assert "비빔밥" in sandbox.received("me")[0]["text"]
    assert set(statuses(app).values()) == {"sent"}
    assert len(statuses(app)) == 13
    # Delivered: the job remembers what it sent.
    with app.db.session() as session:
        assert session.get(JobMemory, ("menu", "last_sent_fingerprint")) is not None


# -- per-recipient outcomes ---------------------------------------------------------------


def test_partial_failure_is_recorded_per_recipient(make_app, logged_in, sandbox, web, friends, monkeypatch):
    app = make_app(menu_job(web.url, ["me", *nicknames(6)]))
    logged_in(app)
    # 친구02 and 친구06 already got today's one message the pair allows (sent outside the bot).
    sandbox.pair_daily = 1
    api = app.kakao_api("default")
    earlier = {"object_type": "text", "text": "earlier", "link": {"web_url": "https://bot.example.com"}}
    for nick in ("친구02", "친구06"):
        assert api.send_to_friends([friends[nick]], earlier).sent == [friends[nick]]
    calls = spy_sends(monkeypatch)

    report = Runner(app).run(app.config.job("menu"), SLOT)

    # 친구02 fails inside a 5-receiver call (failure_info); 친구06 alone (a plain error answer).
    assert [len(c) for c in calls] == [5, 1]
    assert results(report) == {"me": "sent", "친구01": "sent", "친구02": "failed", "친구03": "sent",
                               "친구04": "sent", "친구05": "sent", "친구06": "failed"}
    assert report.failed
    recorded = rows(app)
    for nick in ("친구02", "친구06"):
        row = recorded[f"uuid:{friends[nick]}"]
        assert (row.status, row.code) == ("failed", -536)
        assert "pair" in row.reason
        assert len(sandbox.received(friends[nick])) == 1  # only the earlier message
    for nick in ("친구01", "친구03", "친구04", "친구05"):
        assert recorded[f"uuid:{friends[nick]}"].status == "sent"
        assert len(sandbox.received(friends[nick])) == 1
    # One problem report to me, naming both.
    menu, problems = sandbox.received("me")
    assert "친구02" in problems["text"] and "친구06" in problems["text"]
    assert statuses(app, "menu!problems") == {"me": "sent"}


def test_unknown_nickname_and_refusing_friend_are_skipped_by_name(make_app, logged_in, sandbox, web, friends):
    refuser = sandbox.add_friend("거절친구", uuid="uuid-refuser", allowed_msg=False)
    app = make_app(menu_job(web.url, ["friend:없는친구", "friend:친구01", "friend:거절친구", "friend:친구02"]))
    logged_in(app)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    by_label = {r.label: r for r in report.fanout.results}
    assert by_label["없는친구"].status == "skipped"
    assert "no friend with this nickname" in by_label["없는친구"].reason
    assert by_label["거절친구"].status == "skipped"
    assert "allowed_msg" in by_label["거절친구"].reason
    assert by_label["친구01"].status == by_label["친구02"].status == "sent"
    assert len(sandbox.received(friends["친구01"])) == len(sandbox.received(friends["친구02"])) == 1
    assert sandbox.received(refuser) == []
    recorded = rows(app)
    assert recorded["friend:없는친구"].status == "skipped"
    assert recorded["uuid:uuid-refuser"].status == "skipped"
    # The unknown nickname in the slot's report; the friend refusing messages as a lasting problem of
    # its own, told once (bot.delivery.unknown_sends), not in each slot's report.
    refusal, report_to_me = sandbox.received("me")
    assert "없는친구" in report_to_me["text"] and "거절친구" not in report_to_me["text"]
    assert "거절친구" in refusal["text"] and "does not accept" in refusal["text"]


# -- quotas -------------------------------------------------------------------------------


def prefill(app: App, count: int, *, sender: str = "default", status: str = "sent", day: str | None = None) -> None:
    now = app.clock()
    with app.db.session() as session:
        session.add_all(Delivery(job="earlier", slot_key=f"run:{i}", recipient=f"uuid:other-{i:03d}", label="x",
                                 sender=sender, status=status, quota_day=day or quota_day(now), claimed_by="x",
                                 late=False, created_at=now, updated_at=now) for i in range(count))


def test_sender_at_95_skips_everyone_but_the_problem_report_uses_the_reserve(make_app, logged_in, sandbox, web,
                                                                              friends):
    app = make_app(menu_job(web.url, ["me", "friend:친구01", "friend:친구02"]))
    logged_in(app)
    prefill(app, 95)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert results(report) == {"me": "skipped", "친구01": "skipped", "친구02": "skipped"}
    for result in report.fanout.results:
        assert "quota" in result.reason and "95/100" in result.reason
    assert statuses(app) == {"me": "skipped", f"uuid:{friends['친구01']}": "skipped",
                             f"uuid:{friends['친구02']}": "skipped"}
    assert sandbox.count(SEND_PATH) == 0
    assert sandbox.received(friends["친구01"]) == []
    # The report to me goes out from the 5 kept in reserve.
    (problems,) = sandbox.received("me")
    assert "quota" in problems["text"]
    assert statuses(app, "menu!problems") == {"me": "sent"}


def test_sender_at_94_sends_one_and_skips_the_rest(make_app, logged_in, sandbox, web, friends):
    app = make_app(menu_job(web.url, ["friend:친구01", "friend:친구02", "friend:친구03"]))
    logged_in(app)
    prefill(app, 94)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert [r.status for r in report.fanout.results].count("sent") == 1
    assert [r.status for r in report.fanout.results].count("skipped") == 2
    assert sum(len(sandbox.received(friends[n])) for n in ("친구01", "친구02", "친구03")) == 1


def test_yesterdays_deliveries_do_not_count(make_app, logged_in, sandbox, web, friends):
    app = make_app(menu_job(web.url, ["friend:친구01"]))
    logged_in(app)
    prefill(app, 100, day="2026-11-21")
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert results(report) == {"친구01": "sent"}


# -- exactly once ---------------------------------------------------------------------------


def test_same_slot_twice_delivers_once(make_app, logged_in, sandbox, web, friends):
    app = make_app(menu_job(web.url, ["me", *nicknames(7)]))
    logged_in(app)
    first = Runner(app).run(app.config.job("menu"), SLOT)
    second = Runner(app).run(app.config.job("menu"), SLOT)
    assert set(results(first).values()) == {"sent"}
    assert set(results(second).values()) == {"already-sent"}
    assert sandbox.count(SEND_PATH) == 2 and sandbox.count(MEMO_PATH) == 1
    assert len(sandbox.received("me")) == 1
    for nick in list(friends)[:7]:
        assert len(sandbox.received(friends[nick])) == 1
    # Another slot is another delivery.
    Runner(app).run(app.config.job("menu"), "2026-11-22T18:00:00+09:00")
    assert len(sandbox.received(friends["친구01"])) == 2


def test_crash_mid_fanout_resumes_without_repeating(make_app, logged_in, sandbox, web, friends, monkeypatch):
    app = make_app(menu_job(web.url, ["me", *nicknames(12)]))
    logged_in(app)
    job = app.config.job("menu")
    app.deliveries = DeliveryLog(app.db, owner=dead_owner(), clock=app.clock)

    def die_after_the_second_request(call: int, _uuids: list[str]) -> None:
        if call == 2:
            raise KeyboardInterrupt  # the request reached Kakao; the process dies before recording it

    calls = spy_sends(monkeypatch, after=die_after_the_second_request)
    with pytest.raises(KeyboardInterrupt):
        Runner(app).run(job, SLOT)
    batches = [[f"uuid:{u}" for u in c] for c in calls]
    state = statuses(app)
    assert state["me"] == "sent"
    assert {state[key] for key in batches[0]} == {"sent"}
    assert {state[key] for key in batches[1]} == {"sending"}
    third = [f"uuid:{friends[n]}" for n in list(friends)[10:]]
    assert {state[key] for key in third} == {"claimed"}

    # A new process (new owner) runs the same slot again.
    monkeypatch.undo()
    app.deliveries = DeliveryLog(app.db, clock=app.clock)
    report = Runner(app).run(job, SLOT)
    by_key = {r.key: r for r in report.fanout.results}
    assert by_key["me"].status == "already-sent"
    assert {by_key[key].status for key in batches[0]} == {"already-sent"}
    assert {by_key[key].status for key in batches[1]} == {"unknown"}
    assert {by_key[key].status for key in third} == {"sent"}
    state = rows(app)
    assert {state[key].status for key in batches[1]} == {"unknown"}
    assert all("stopped during the request" in state[key].reason for key in batches[1])
    assert {state[key].claimed_by for key in third} == {app.deliveries.owner}
    # Every friend has the message exactly once, the unknown ones included: nothing repeated.
    for uuid in friends.values():
        assert len(sandbox.received(uuid)) == 1
    assert sandbox.count(SEND_PATH) == 3
    # Each unknown outcome is a problem needing a person, told to me by job, recipient and slot.
    menu, *told = sandbox.received("me")
    assert len(told) == 5
    for key, message in zip(batches[1], told):
        nickname = state[key].label
        assert "menu" in message["text"] and nickname in message["text"] and "2026-11-22 12:00 KST" in message["text"]
    assert {p.key for p in open_problems(app.db) if p.needs_person} == {
        f"unknown-send:{state[key].id}" for key in batches[1]}
    assert report.failed


def test_rows_of_a_live_other_instance_are_left_to_it_until_stale(make_app, logged_in, sandbox, web, friends,
                                                                 monkeypatch, clock):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)
    job = app.config.job("menu")
    app.deliveries = DeliveryLog(app.db, owner="other-host:4242:cafe0001", clock=app.clock)

    def die(call: int, _uuids: list[str]) -> None:
        if call == 1:
            raise SystemExit(1)

    spy_sends(monkeypatch, before=die)  # dies before the first request goes out
    with pytest.raises(SystemExit):
        Runner(app).run(job, SLOT)
    assert sorted(statuses(app).values()) == ["claimed"] * 7 + ["sending"] * 5
    monkeypatch.undo()

    app.deliveries = DeliveryLog(app.db, clock=app.clock)
    soon = Runner(app).run(job, SLOT)
    assert {r.status for r in soon.fanout.results} == {"elsewhere"}
    assert all("another instance" in r.reason for r in soon.fanout.results)
    assert sandbox.count(SEND_PATH) == 0
    assert not soon.fanout.problems and not sandbox.received("me")  # nothing wrong: no report to "me"

    clock.advance(minutes=16)  # the other instance is presumed gone
    later = Runner(app).run(job, SLOT)
    assert sorted(r.status for r in later.fanout.results) == ["sent"] * 7 + ["unknown"] * 5
    assert sandbox.count(SEND_PATH) == 2
    assert sum(len(sandbox.received(u)) for u in friends.values()) == 7


def test_an_instance_whose_claim_was_taken_over_does_not_send(make_app, logged_in, sandbox, web, friends,
                                                              monkeypatch, clock):
    app = make_app(menu_job(web.url, nicknames(7)))
    logged_in(app)
    other = DeliveryLog(app.db, owner="other-host:1:feed0001", clock=app.clock)
    day = quota_day(clock())
    second_batch = [f"uuid:{friends[n]}" for n in ("친구06", "친구07")]

    def stall_then_lose_the_rest(call: int, _uuids: list[str]) -> None:
        if call == 1:
            # This instance stalls past the stale limit; another one takes the waiting rows.
            clock.advance(minutes=16)
            for key in second_batch:
                assert other.claim(job="menu", slot_key=SLOT, recipient=key, label=key, sender="default",
                                   quota_day=day).row_id is not None

    calls = spy_sends(monkeypatch, after=stall_then_lose_the_rest)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert len(calls) == 1
    by_key = {r.key: r for r in report.fanout.results}
    assert {by_key[key].status for key in second_batch} == {"elsewhere"}
    assert all("taken over" in by_key[key].reason for key in second_batch)
    assert sandbox.received(friends["친구06"]) == [] and sandbox.received(friends["친구07"]) == []
    recorded = rows(app)
    assert {(recorded[k].status, recorded[k].claimed_by) for k in second_batch} == {("claimed", other.owner)}


# -- timeouts, token renewal, dead login --------------------------------------------------


@pytest.fixture
def make_app_with_kakao_timeout(write_config, secrets, clock, kakao_server) -> Iterator[Callable[..., App]]:
    made: list[App] = []

    def make(jobs: str, timeout: float) -> App:
        path = write_config(textwrap.dedent(f"""\
            [database]
            url = "sqlite:///bot.sqlite3"

            [kakao]
            redirect_uri = "http://127.0.0.1:8080/kakao/callback"
            auth_url = "{kakao_server.url}"
            api_url = "{kakao_server.url}"
            web_domain = "https://bot.example.com"
            timeout = {timeout}
            """) + jobs)
        app = App(load_config(path), secrets, clock=clock,
                  retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None))
        app.db.migrate()
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def test_send_timeout_is_unknown_not_retried_and_not_resent(make_app_with_kakao_timeout, logged_in, sandbox, web,
                                                            friends):
    app = make_app_with_kakao_timeout(menu_job(web.url, ["me", "friend:친구01", "friend:친구02"]), timeout=1.0)
    logged_in(app)
    sandbox.hang_next(SEND_PATH, 3.0)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert results(report) == {"me": "sent", "친구01": "unknown", "친구02": "unknown"}
    assert sandbox.count(SEND_PATH) == 1  # one request: a timed-out send is never retried
    state = rows(app)
    for nick in ("친구01", "친구02"):
        row = state[f"uuid:{friends[nick]}"]
        assert row.status == "unknown"
        assert "may have been delivered" in row.reason
    assert report.failed

    again = Runner(app).run(app.config.job("menu"), SLOT)
    assert results(again) == {"me": "already-sent", "친구01": "unknown", "친구02": "unknown"}
    assert sandbox.count(SEND_PATH) == 1
    # The message to me and one problem report per unknown send (naming it), nothing more.
    assert sandbox.count(MEMO_PATH) == 3


def test_minus_401_mid_fanout_refreshes_once_and_continues(make_app, logged_in, sandbox, web, friends,
                                                           monkeypatch):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)

    def expire_after_first(call: int, _uuids: list[str]) -> None:
        if call == 1:
            sandbox.expire_access_tokens()  # Kakao now refuses the token the bot still thinks valid

    spy_sends(monkeypatch, after=expire_after_first)
    assert refreshes(sandbox) == 0
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert set(results(report).values()) == {"sent"}
    assert refreshes(sandbox) == 1
    assert sandbox.count(SEND_PATH) == 4  # three batches + one retry after -401
    for uuid in friends.values():
        assert len(sandbox.received(uuid)) == 1


def test_dead_login_fails_every_recipient_by_name_without_a_loop(make_app, logged_in, sandbox, web, friends):
    app = make_app(menu_job(web.url, ["me", "friend:친구01", "friend:친구02"]))
    logged_in(app)
    sandbox.revoke_refresh_tokens()
    sandbox.expire_access_tokens()
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert report.failed
    assert results(report) == {"me": "failed", "친구01": "failed", "친구02": "failed"}
    assert all("kakao login" in r.reason for r in report.fanout.results)
    recorded = rows(app)
    assert {row.status for row in recorded.values()} == {"failed"}
    assert set(recorded) == {"me", "friend:친구01", "friend:친구02"}
    assert all("kakao login" in row.reason for row in recorded.values())
    assert refreshes(sandbox) == 1

    # The next run does not ask Kakao again: the login is marked as needing a person.
    calls_before = len(sandbox.calls)
    again = Runner(app).run(app.config.job("menu"), "2026-11-22T18:00:00+09:00")
    assert {r.status for r in again.fanout.results} == {"failed"}
    assert refreshes(sandbox) == 1
    assert len(sandbox.calls) == calls_before
    assert sandbox.received("me") == []


def test_login_dying_mid_fanout_fails_the_rest_by_name(make_app, logged_in, sandbox, web, friends, monkeypatch):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)

    def kill_login(call: int, _uuids: list[str]) -> None:
        if call == 1:
            sandbox.revoke_refresh_tokens()
            sandbox.expire_access_tokens()

    calls = spy_sends(monkeypatch, after=kill_login)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    by_key = {r.key: r for r in report.fanout.results}
    first = [f"uuid:{u}" for u in calls[0]]
    rest = [key for key in by_key if key not in first]
    assert {by_key[key].status for key in first} == {"sent"}
    assert len(rest) == 7
    assert {by_key[key].status for key in rest} == {"failed"}
    assert all("kakao login" in by_key[key].reason for key in rest)
    assert refreshes(sandbox) == 1
    assert sandbox.count(SEND_PATH) == 2  # batch 1, then batch 2 refused with -401; batch 3 never sent
    assert sandbox.count(MEMO_PATH) == 0  # no problem report can go out without a login


def test_me_only_job_with_dead_login_is_recorded_failed(make_app, logged_in, sandbox, web):
    app = make_app(menu_job(web.url, ["me"]))
    logged_in(app)
    sandbox.revoke_refresh_tokens()
    sandbox.expire_access_tokens()
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert results(report) == {"me": "failed"}
    assert "kakao login" in report.fanout.results[0].reason
    assert statuses(app) == {"me": "failed"}
    assert refreshes(sandbox) == 1


def test_token_rate_limit_mid_fanout_stops_asking_for_tokens(make_app, logged_in, sandbox, web, friends,
                                                             monkeypatch):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)

    def expire_and_limit(call: int, _uuids: list[str]) -> None:
        if call == 1:
            sandbox.expire_access_tokens()
            sandbox.access_limit_per_10min = 0  # every token request now gets KOE237

    calls = spy_sends(monkeypatch, after=expire_and_limit)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    by_key = {r.key: r for r in report.fanout.results}
    rest = [key for key in by_key if key not in {f"uuid:{u}" for u in calls[0]}]
    assert len(rest) == 7 and {by_key[key].status for key in rest} == {"failed"}
    assert all("KOE237" in by_key[key].reason for key in rest)
    assert refreshes(sandbox) == 1  # one refused token request, not one per remaining batch
    assert sandbox.count(SEND_PATH) == 2
    assert {statuses(app)[key] for key in rest} == {"failed"}


# -- bookkeeping per Kakao call: one commit per batch, the token minted once ----------------


def count_commits(app: App) -> list[int]:
    """A list growing by one with every COMMIT on the app's database."""
    commits: list[int] = []
    event.listen(app.db.engine, "commit", lambda _connection: commits.append(1))
    return commits


def test_a_fanout_commits_once_per_batch(make_app, logged_in, sandbox, web, friends, monkeypatch):
    """The outcome of batch k and `sending` of batch k+1 share one commit; claiming and the quota counts
    another; the access token is read once, without a commit: 1 + 4 batches + the last outcome."""
    app = make_app(menu_job(web.url, ["me", *nicknames(12)]))
    logged_in(app)
    fanout = app_fanout(app, "default", "menu", SLOT, app.clock())
    targets, unreachable = resolve(app.config.job("menu").to, app.kakao_api("default").friends())
    commits = count_commits(app)
    report = fanout.deliver(targets, unreachable, lambda _target: {"object_type": "text", "text": "x",
                                                                    "link": {"web_url": "https://bot.example.com"}})
    assert {r.status for r in report.results} == {"sent"} and len(report.results) == 13
    assert sandbox.count(SEND_PATH) == 3 and sandbox.count(MEMO_PATH) == 1
    assert len(commits) == 1 + 4 + 1


def test_quota_skips_are_written_in_one_commit(make_app, logged_in, sandbox, web, friends):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)
    prefill(app, 92)  # 3 more may be sent today: 9 of the 12 are skipped
    fanout = app_fanout(app, "default", "menu", SLOT, app.clock())
    targets, unreachable = resolve(app.config.job("menu").to, app.kakao_api("default").friends())
    commits = count_commits(app)
    report = fanout.deliver(targets, unreachable, lambda _target: {"object_type": "text", "text": "x",
                                                                    "link": {"web_url": "https://bot.example.com"}})
    # claim, the skips (written before the token is minted, which commits nothing), one batch, its outcome
    assert len(commits) == 1 + 1 + 1 + 1
    assert sorted(r.status for r in report.results) == ["sent"] * 3 + ["skipped"] * 9
    assert sorted(statuses(app).values()) == ["sent"] * 3 + ["skipped"] * 9


def test_a_crash_between_the_merged_commit_and_the_post_leaves_unknown_never_resent(
        make_app, logged_in, sandbox, web, friends, monkeypatch):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)
    job = app.config.job("menu")
    app.deliveries = DeliveryLog(app.db, owner=dead_owner(), clock=app.clock)

    def die_before_the_second_request(call: int, _uuids: list[str]) -> None:
        if call == 2:
            raise KeyboardInterrupt  # after the commit (batch 1's outcome, batch 2 `sending`), before the POST

    calls = spy_sends(monkeypatch, before=die_before_the_second_request)
    with pytest.raises(KeyboardInterrupt):
        Runner(app).run(job, SLOT)
    first, second = ([f"uuid:{u}" for u in c] for c in calls)
    state = statuses(app)
    assert {state[key] for key in first} == {"sent"}  # written in the same commit as the second's `sending`
    assert {state[key] for key in second} == {"sending"}
    assert sorted(state.values()) == ["claimed"] * 2 + ["sending"] * 5 + ["sent"] * 5

    monkeypatch.undo()
    app.deliveries = DeliveryLog(app.db, clock=app.clock)
    report = Runner(app).run(job, SLOT)
    by_key = {r.key: r for r in report.fanout.results}
    assert {by_key[key].status for key in second} == {"unknown"}
    assert {rows(app)[key].status for key in second} == {"unknown"}
    # The second batch never reached Kakao and is not sent now either: its outcome is unknown to the bot.
    assert sandbox.count(SEND_PATH) == 2
    assert sum(len(sandbox.received(u)) for u in friends.values()) == 7
    assert all(sandbox.received(key.removeprefix("uuid:")) == [] for key in second)


def test_the_access_token_is_read_once_per_fanout_while_it_is_valid(make_app, logged_in, sandbox, web, friends,
                                                                     monkeypatch):
    app = make_app(menu_job(web.url, ["me", *nicknames(12)]))
    logged_in(app)
    leases = spy_leases(monkeypatch)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert set(results(report).values()) == {"sent"}
    assert sandbox.count(SEND_PATH) == 3 and sandbox.count(MEMO_PATH) == 1
    assert len(leases["fanout"]) == 1  # four calls, one read of the stored token


def test_a_token_expiring_mid_fanout_is_refreshed_before_the_next_batch_is_sending(
        make_app, logged_in, sandbox, web, friends, monkeypatch, clock):
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)

    def six_hours_pass(call: int, _uuids: list[str]) -> None:
        if call == 1:
            clock.advance(hours=6)  # the token expires (here and at the stand-in) between two calls

    spy_sends(monkeypatch, after=six_hours_pass)
    leases = spy_leases(monkeypatch)
    report = Runner(app).run(app.config.job("menu"), SLOT)
    assert set(results(report).values()) == {"sent"}
    assert refreshes(sandbox) == 1
    assert sandbox.count(SEND_PATH) == 3  # no -401: the new token was minted before the second call
    assert len(leases["fanout"]) == 2
    # The refresh happened while no row was `sending`: a crash in it leaves retakeable rows.
    assert all("sending" not in seen for seen in leases["fanout"])


def spy_leases(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[set[str]]]:
    """Every read of a stored access token during a fan-out ("fanout": the statuses of the menu rows
    then), and the others ("other")."""
    real = KakaoTokens.lease
    seen: dict[str, list[set[str]]] = {"fanout": [], "other": []}

    def spy(self, account):  # noqa: ANN001, ANN202
        with self.db.session() as session:
            now = {row.status for row in session.scalars(select(Delivery).where(Delivery.job == "menu"))}
        seen["fanout" if now else "other"].append(now)
        return real(self, account)

    monkeypatch.setattr(KakaoTokens, "lease", spy)
    return seen


def test_what_a_job_remembers_while_collecting_is_stored_in_one_commit(make_app, logged_in, sandbox, web, friends):
    """The scrape's items and validators are one memory: stored together (a crash between two of them
    would leave new validators next to old items, and a 304 would then bring back the old items)."""
    app = make_app(menu_job(web.url, ["me"]))
    logged_in(app)
    writes: list[str] = []
    commits: list[list[str]] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda _c, _cursor, statement, *_rest: writes.append(statement) if "job_memory" in statement
                 and not statement.lstrip().upper().startswith("SELECT") else None)
    event.listen(app.db.engine, "commit", lambda _connection: commits.append(writes[:]) or writes.clear())
    Runner(app).run(app.config.job("menu"), SLOT)
    memory_commits = [c for c in commits if c]
    # What the scrape collected (url, selector, validators, items), then what was delivered (its fingerprint).
    assert [len(c) for c in memory_commits] == [5, 1]


def test_each_call_carries_its_own_template_when_message_for_builds_a_new_one_each_time(
        make_app, logged_in, sandbox, web, friends):
    """Templates are serialised once per fan-out, by object: a new object per call (its predecessor gone,
    its id free for reuse) must still be serialised, never mistaken for an earlier one."""
    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)
    fanout = app_fanout(app, "default", "menu", SLOT, app.clock())
    targets, unreachable = resolve(app.config.job("menu").to, app.kakao_api("default").friends())
    report = fanout.deliver(targets, unreachable, lambda target: {
        "object_type": "text", "text": f"for {target.label}", "link": {"web_url": "https://bot.example.com"}})
    assert {r.status for r in report.results} == {"sent"}
    texts = [sandbox.received(friends[f"친구{i:02d}"])[0]["text"] for i in range(1, 13)]
    assert texts == ["for 친구01"] * 5 + ["for 친구06"] * 5 + ["for 친구11"] * 2


def test_a_job_reads_its_memory_once_per_run_and_sees_its_own_writes(make_app, logged_in, sandbox, web, friends):
    from bot.delivery.runner import _PendingState
    from bot.store.job_memory import StoredJobState

    app = make_app(menu_job(web.url, ["me"]))
    logged_in(app)
    Runner(app).run(app.config.job("menu"), SLOT)  # remembers the page: the next run reads several keys
    reads: list[str] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda _c, _cursor, statement, *_rest: reads.append(statement)
                 if "job_memory" in statement and statement.lstrip().upper().startswith("SELECT") else None)
    Runner(app).run(app.config.job("menu"), "2026-11-22T18:00:00+09:00")
    # The whole memory once while collecting (url, selector, validators, items, fingerprint: one key at a
    # time before), and the failure count of bot.delivery.problems after the delivery.
    assert len(reads) == 2 and '"key" = ?' not in reads[0]

    state = _PendingState(StoredJobState(app.db, "menu"))
    items = state.get("items")
    assert items and state.get("items") == items
    state.get("items").append("changed by a caller")
    assert state.get("items") == items  # each read is its own copy
    state.set("etag", '"new"')
    assert state.get("etag") == '"new"'
    state.store()
    assert state.get("etag") == '"new"' and StoredJobState(app.db, "menu").get("etag") == '"new"'


def test_a_friends_list_of_several_pages_reads_the_stored_token_once(make_app, logged_in, sandbox, web, friends,
                                                                    monkeypatch):
    from bot.delivery.audience import FriendsLookup

    app = make_app(menu_job(web.url, nicknames(12)))
    logged_in(app)
    monkeypatch.setattr("bot.kakao.client.FRIENDS_PAGE", 5)  # 12 friends: three pages
    leases = spy_leases(monkeypatch)
    listed = FriendsLookup(app).for_job(app.config.job("menu"))
    assert sorted(friend.nickname for friend in listed) == sorted(friends)
    assert sandbox.count("/v1/api/talk/friends") == 3
    assert len(leases["other"]) == 1  # one read (and decryption) of the token for the three pages
