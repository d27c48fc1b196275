"""A stop (SIGTERM) during a fan-out: the Kakao call in flight finishes and is recorded, the recipients not
yet sent are released (`skipped`, retakeable) without a call, `run` returns 0, and a later
`send-now --slot` of the same slot, or the next start's catch-up, sends to exactly those: everyone gets
the message once. In-process (run_service in the main thread, a real SIGTERM to this process) and as a
`python -m bot run` process signalled from outside. And the stop that is not one: `run` killed with SIGKILL
inside a Kakao call, then started again, sends to the rest only and reports the call in doubt."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from flask import request
from sqlalchemy import select

from bot.cli.main import cli
from bot.delivery.fanout import STOPPED_REASON
from bot.delivery.runner import Runner
from bot.kakao.client import KakaoApi
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.service.run import run_service
from bot.service.systemd import Notifier
from bot.store.job_memory import StoredJobState
from bot.store.models import Delivery, JobMemory
from bot.util.times import slot_instant

from cli_clock import MovableClock, cli_on_clock

ROOT = Path(__file__).resolve().parents[2]
SEND_PATH = "/v1/api/talk/friends/message/default/send"
MENU_HTML = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul></body></html>"""


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


@pytest.fixture
def friends(sandbox: KakaoSandbox) -> dict[str, str]:
    """Twelve friends who accept messages: nickname → uuid."""
    return {f"친구{i:02d}": sandbox.add_friend(f"친구{i:02d}", uuid=f"uuid-friend-{i:02d}") for i in range(1, 13)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jobs_toml(web_url: str, friends: dict[str, str], at: str = "noon", extra: str = "") -> str:
    # only_if_changed: the re-run must still deliver to those left over, though the page did not change.
    return f"""
[[jobs]]
name = "menu"
kind = "scrape"
url = "{web_url}/menu"
select = "ul.menu > li"
at = ["{at}"]
to = {json.dumps([f"friend:{nick}" for nick in friends], ensure_ascii=False)}
only_if_changed = true

[server]
listen = "127.0.0.1:{free_port()}"
{extra}
"""


@pytest.fixture(autouse=True)
def real_time(clock) -> None:  # noqa: ANN001
    """The fake clock at the real time: `run`'s scheduler (APScheduler, real time) then finds nothing due
    while a test runs, and the CLI (real clock) and the app agree on today."""
    clock.now = datetime.now(timezone.utc).replace(microsecond=0)


def rows(app) -> dict[str, Delivery]:  # noqa: ANN001
    with app.db.session() as session:
        return {row.recipient: row for row in session.scalars(select(Delivery).where(Delivery.job == "menu"))}


def todays_noon(app) -> str:  # noqa: ANN001
    """The slot key `send-now --slot noon` uses (the CLI runs on the real clock)."""
    tz = app.config.timezone
    return slot_instant(app.config.slots["noon"], datetime.now(tz).date(), tz).isoformat()


def scheduled_setup(make_app, logged_in, web, friends, clock):  # noqa: ANN001, ANN201
    """An app whose job's slot passed 1 h ago while the bot was down (grace 2 h): `run` owes it at start."""
    slot_at = (clock.now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=9)))  # Asia/Seoul: no DST
    app = make_app(jobs_toml(web.url, friends, at="earlier",
                             extra=f'[slots]\nearlier = "{slot_at:%H:%M}"\n\n[delivery]\ngrace = "2h"\n'))
    logged_in(app)
    # The bot knew the job before the slot: the slot is owed, 1 h late, within the 2 h grace.
    StoredJobState(app.db, "menu").set("schedule", {"seen": (clock.now - timedelta(days=1)).isoformat()})
    return app, slot_at.replace(second=0).astimezone(app.config.timezone).isoformat()


def bot_run(app, sandbox: KakaoSandbox, secret_key: str, **environ: str) -> subprocess.Popen:  # noqa: ANN001
    """`python -m bot run` on the app's config, with nothing from this environment redirecting it."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM",
                          "WATCHDOG_USEC", "WATCHDOG_PID", "NOTIFY_SOCKET")}
    env.update(BOT_SECRET_KEY=secret_key, KAKAO_REST_API_KEY=sandbox.rest_api_key,
               KAKAO_CLIENT_SECRET=sandbox.client_secret, PYTHONPATH=str(ROOT), **environ)
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(app.config.path), "run"],
                            cwd=app.config.base_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def send_now_slot(app, sandbox: KakaoSandbox, secret_key: str, monkeypatch):  # noqa: ANN001, ANN201
    """`send-now --slot noon` just after today's noon (a slot still ahead is refused: bot.delivery.slot_time)."""
    cli_on_clock(monkeypatch, MovableClock(datetime.fromisoformat(todays_noon(app)) + timedelta(seconds=1)))
    env = {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": sandbox.rest_api_key,
           "KAKAO_CLIENT_SECRET": sandbox.client_secret, "BOT_DATABASE_URL": None, "BOT_CONFIG": None,
           "CREDENTIALS_DIRECTORY": None}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(cli, ["--config", str(app.config.path), "send-now", "--slot", "noon"], env=env,
                                  catch_exceptions=False)
    finally:  # the CLI installs its own stderr handler: put pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)


def test_sigterm_during_a_fanout_records_the_call_in_flight_and_leaves_the_rest_to_a_rerun(
        make_app, logged_in, sandbox, web, friends, secret_key, monkeypatch):
    app = make_app(jobs_toml(web.url, friends))
    logged_in(app)
    slot = todays_noon(app)
    sandbox.latency = 0.2  # every Kakao call takes a while: the signal lands while the first one is in flight
    stop, ready = threading.Event(), threading.Event()

    real_send = KakaoApi.send_to_friends
    calls: list[list[str]] = []

    def send_and_get_sigterm_meanwhile(self, uuids, template):  # noqa: ANN001, ANN202
        calls.append(list(uuids))
        if len(calls) == 1:
            # SIGTERM to this process: run_service's handler (main thread) sets the stop event.
            os.kill(os.getpid(), signal.SIGTERM)
            if not stop.wait(10):
                raise AssertionError("the SIGTERM handler did not set the stop event")
        return real_send(self, uuids, template)

    monkeypatch.setattr(KakaoApi, "send_to_friends", send_and_get_sigterm_meanwhile)
    outcome: dict = {}

    def fan_out() -> None:
        if ready.wait(30):
            outcome["report"] = Runner(app, stopping=stop).run(app.config.job("menu"), slot)

    worker = threading.Thread(target=fan_out, name="fan-out", daemon=True)
    worker.start()
    code = run_service(app, ready=ready.set, stop_event=stop, notifier=Notifier(None))  # main thread: signals
    worker.join(60)
    assert not worker.is_alive(), "the fan-out did not finish after the stop"
    assert code == 0

    report = outcome["report"].fanout
    assert report.stopped and len(calls) == 1
    first = {f"uuid:{uuid}" for uuid in calls[0]}
    assert len(first) == 5
    by_key = {result.key: result for result in report.results}
    assert {by_key[key].status for key in first} == {"sent"}
    rest = set(by_key) - first
    assert len(rest) == 7
    assert {(by_key[key].status, by_key[key].reason) for key in rest} == {("skipped", STOPPED_REASON)}
    # Recorded as such: the 5 sent, the 7 released (retakeable), none left `claimed` or `sending`.
    recorded = rows(app)
    assert {key: row.status for key, row in recorded.items() if key in first} == dict.fromkeys(first, "sent")
    assert {(recorded[key].status, recorded[key].reason) for key in rest} == {("skipped", STOPPED_REASON)}
    assert sandbox.count(SEND_PATH) == 1
    assert sum(len(sandbox.received(uuid)) for uuid in friends.values()) == 5
    # No new Kakao call while stopping: no problem report to "me" about the 7 left for the re-run.
    assert sandbox.received("me") == []
    with app.db.session() as session:
        assert not session.scalars(select(Delivery).where(Delivery.job == "menu!problems")).all()
        # Not "delivered" yet: the page fingerprint is not remembered, so the re-run still sends.
        assert session.get(JobMemory, ("menu", "last_sent_fingerprint")) is None

    # The service comes back (or cron runs): the same slot sends to exactly the 7 left over.
    monkeypatch.setattr(KakaoApi, "send_to_friends", real_send)
    sandbox.latency = 0.0
    result = send_now_slot(app, sandbox, secret_key, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.output.count(": already-sent") == 5 and result.output.count(": sent") == 7
    for uuid in friends.values():
        assert len(sandbox.received(uuid)) == 1, uuid  # exactly once overall
    assert sandbox.count(SEND_PATH) == 1 + 2  # then 7 = 5 + 2 receivers
    assert {row.status for row in rows(app).values()} == {"sent"} and len(rows(app)) == 12
    with app.db.session() as session:
        assert session.get(JobMemory, ("menu", "last_sent_fingerprint")) is not None


def test_sigterm_during_a_scheduled_fanout_then_the_next_start_sends_the_rest(make_app, logged_in, sandbox, web,
                                                                             friends, clock, monkeypatch):
    """The scheduler's path: `run` starts, catches up on a slot passed while it was down, and gets SIGTERM
    during that fan-out; the next start (within the grace) sends to the recipients left over."""
    app, slot = scheduled_setup(make_app, logged_in, web, friends, clock)
    sandbox.latency = 0.2
    stop = threading.Event()
    real_send = KakaoApi.send_to_friends
    calls: list[list[str]] = []

    def send_and_get_sigterm_meanwhile(self, uuids, template):  # noqa: ANN001, ANN202
        calls.append(list(uuids))
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            if not stop.wait(10):
                raise AssertionError("the SIGTERM handler did not set the stop event")
        return real_send(self, uuids, template)

    monkeypatch.setattr(KakaoApi, "send_to_friends", send_and_get_sigterm_meanwhile)
    assert run_service(app, stop_event=stop, notifier=Notifier(None)) == 0
    assert len(calls) == 1  # the call in flight at the signal, and no other
    recorded = rows(app)
    sent = {key for key, row in recorded.items() if row.status == "sent"}
    left = {key for key, row in recorded.items() if row.status == "skipped" and row.reason == STOPPED_REASON}
    assert len(sent) == 5 and len(left) == 7 and len(recorded) == 12
    assert sent == {f"uuid:{uuid}" for uuid in calls[0]}
    assert {row.slot_key for row in recorded.values()} == {slot}
    assert sum(len(sandbox.received(uuid)) for uuid in friends.values()) == 5
    assert sandbox.received("me") == []

    # The next start, within the grace: its catch-up retakes the slot (it was not marked done) and sends
    # to the 7 only; ready() stops it right after the start.
    monkeypatch.setattr(KakaoApi, "send_to_friends", real_send)
    sandbox.latency = 0.0
    again = threading.Event()
    assert run_service(app, ready=again.set, stop_event=again, notifier=Notifier(None)) == 0
    assert {row.status for row in rows(app).values()} == {"sent"} and len(rows(app)) == 12
    for uuid in friends.values():
        assert len(sandbox.received(uuid)) == 1, uuid  # exactly once overall
    assert sandbox.count(SEND_PATH) == 1 + 2
    assert StoredJobState(app.db, "menu").get("schedule", {}).get("done")  # now it is done


def test_a_stop_before_the_first_call_sends_nothing_and_releases_everyone(make_app, logged_in, sandbox, web,
                                                                         friends):
    app = make_app(jobs_toml(web.url, friends))
    logged_in(app)
    stopping = threading.Event()
    stopping.set()
    report = Runner(app, stopping=stopping).run(app.config.job("menu"), todays_noon(app))
    assert report.fanout.stopped
    assert {(r.status, r.reason) for r in report.fanout.results} == {("skipped", STOPPED_REASON)}
    assert sandbox.count(SEND_PATH) == 0 and sandbox.received("me") == []
    assert {row.status for row in rows(app).values()} == {"skipped"} and len(rows(app)) == 12
    # Retaken by the next run of the slot, without a stop.
    again = Runner(app).run(app.config.job("menu"), todays_noon(app))
    assert {r.status for r in again.fanout.results} == {"sent"}
    assert all(len(sandbox.received(uuid)) == 1 for uuid in friends.values())


def test_a_runner_without_a_stop_event_sends_everyone(make_app, logged_in, sandbox, web, friends):
    app = make_app(jobs_toml(web.url, friends))
    logged_in(app)
    report = Runner(app).run(app.config.job("menu"), todays_noon(app))
    assert not report.fanout.stopped
    assert {r.status for r in report.fanout.results} == {"sent"} and sandbox.count(SEND_PATH) == 3


# -- the real thing: `python -m bot run` as a process, SIGTERM from outside -----------------------------


def test_python_m_bot_run_gets_sigterm_during_a_fanout_and_exits_0_with_history_correct(
        make_app, logged_in, sandbox, web, friends, clock, secret_key):
    app, slot = scheduled_setup(make_app, logged_in, web, friends, clock)
    # The stand-in holds the first friends call until the test has sent SIGTERM: the signal lands while
    # that call is in flight, whatever the machine's speed.
    entered, release = threading.Event(), threading.Event()

    def gate() -> None:
        if request.path == SEND_PATH and not entered.is_set():
            entered.set()
            release.wait(60)

    sandbox.app.before_request_funcs.setdefault(None, []).insert(0, gate)
    notify_dir = Path(tempfile.mkdtemp(prefix="ksb-", dir="/tmp"))  # AF_UNIX paths are short
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_dir / "notify"))
    proc = bot_run(app, sandbox, secret_key, NOTIFY_SOCKET=str(notify_dir / "notify"))
    try:
        deadline = time.monotonic() + 60
        while not entered.wait(0.1):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the fan-out never reached the Kakao stand-in"
        proc.send_signal(signal.SIGTERM)
        release.set()
        _, err = proc.communicate(timeout=60)
        listener.setblocking(False)  # the process has exited: what it sent is queued already
        notices = []
        try:
            while True:
                notices += listener.recv(4096).decode().split("\n")
        except BlockingIOError:
            pass
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        listener.close()
        shutil.rmtree(notify_dir, ignore_errors=True)
    assert proc.returncode == 0, err
    assert "READY=1" in notices and "STOPPING=1" in notices
    assert secret_key not in err

    recorded = rows(app)
    statuses = sorted((row.status, row.reason or "") for row in recorded.values())
    assert statuses == [("sent", "")] * 5 + [("skipped", STOPPED_REASON)] * 7
    assert {row.slot_key for row in recorded.values()} == {slot}
    assert sum(len(sandbox.received(uuid)) for uuid in friends.values()) == 5
    assert sandbox.count(SEND_PATH) == 1
    # `history` says so, per recipient.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        shown = CliRunner().invoke(cli, ["--config", str(app.config.path), "history", "--job", "menu"],
                                   env={"BOT_SECRET_KEY": secret_key, "BOT_DATABASE_URL": None, "BOT_CONFIG": None,
                                        "CREDENTIALS_DIRECTORY": None}, catch_exceptions=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if "친구" in line]  # one per recipient
    assert len(lines) == 12
    assert sum(" sent" in line for line in lines) == 5
    assert sum(" skipped" in line and "stopped before sending" in line for line in lines) == 7


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"`run` exited ({proc.returncode}) before {what}:\n{proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.02)


def test_python_m_bot_run_killed_inside_a_kakao_call_then_restarted_sends_only_the_rest(
        make_app, logged_in, sandbox, web, friends, clock, secret_key):
    app, slot = scheduled_setup(make_app, logged_in, web, friends, clock)
    # The stand-in holds the second friends call (friends 6–10) until the process is dead; then it goes
    # through: those five do get the message, but the dead process never learnt it.
    calls, entered, release = [], threading.Event(), threading.Event()

    def gate() -> None:
        if request.path == SEND_PATH:
            calls.append(request.path)
            if len(calls) == 2:
                entered.set()
                release.wait(60)

    sandbox.app.before_request_funcs.setdefault(None, []).insert(0, gate)
    first = bot_run(app, sandbox, secret_key)
    try:
        wait_until(entered.is_set, first, "second Kakao call")
        first.kill()
        first.wait(30)
    finally:
        release.set()
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    left = sorted(row.status for row in rows(app).values())
    assert left == ["claimed"] * 2 + ["sending"] * 5 + ["sent"] * 5

    second = bot_run(app, sandbox, secret_key)  # catches the slot up again: still within the grace
    try:
        wait_until(lambda: not {"claimed", "sending"} & {row.status for row in rows(app).values()}, second,
                   "final status for every recipient")
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, err

    recorded = rows(app)
    by_friend = {row.label: row.status for row in recorded.values()}
    assert [by_friend[f"친구{i:02d}"] for i in range(1, 13)] == ["sent"] * 5 + ["unknown"] * 5 + ["sent"] * 2
    assert {row.slot_key for row in recorded.values()} == {slot}
    assert all(len(sandbox.received(uuid)) == 1 for uuid in friends.values())  # nobody twice, nobody left out
    assert sandbox.count(SEND_PATH) == 3  # the rerun sent friends 11–12 only: the call in doubt was not repeated
    # Reported, not repeated: the log says how the slot ended, history says why for each one in doubt.
    assert "5 already-sent, 5 unknown, 2 sent" in err
    assert all(row.reason for row in recorded.values() if row.status == "unknown")
    assert secret_key not in err
