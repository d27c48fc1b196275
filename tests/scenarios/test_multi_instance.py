"""Several instances at once: two processes sharing one PostgreSQL database fire the same slot
(every recipient gets exactly one message) and drain the same webhook events (each processed
once); and a process SIGKILLed inside a Kakao call, whose re-run sends only the rest."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.delivery.runner import Runner
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.store.models import Delivery, WebhookEvent
from bot.util.retry import RetryPolicy

REST_KEY = "sandbox-rest-key"
CLIENT_SECRET = "sandbox-client-secret"
SEND_PATH = "/v1/api/talk/friends/message/default/send"
MENU_HTML = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul></body></html>"""
DEADLINE = 60.0


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


def _child_app(config_path: str, secret_key: str, holder: list[datetime] | None = None) -> App:
    secrets = Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY,
                       "KAKAO_CLIENT_SECRET": CLIENT_SECRET})
    kwargs: dict[str, Any] = {}
    if holder is not None:
        kwargs["clock"] = lambda: holder[0]
    return App(load_config(Path(config_path)), secrets,
               retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None), **kwargs)


def _slot_worker(config_path: str, secret_key: str, inbox: Any, outbox: Any, barrier: Any) -> None:
    """A second instance: fires the slot instants it is sent, in step with the other one (barrier)."""
    from bot.service.scheduler import BotScheduler

    holder = [datetime.now(timezone.utc)]
    app = _child_app(config_path, secret_key, holder)
    scheduler = BotScheduler(app)
    outbox.put(("ready", os.getpid(), None))
    try:
        while True:
            item = inbox.get()
            if item is None:
                break
            instant = datetime.fromisoformat(item)
            holder[0] = instant.astimezone(timezone.utc) + timedelta(seconds=1)
            barrier.wait(timeout=DEADLINE)
            try:
                report = scheduler.fire_at("menu", instant, holder[0])
                statuses = ([(r.key, r.status) for r in report.fanout.results]
                            if report is not None and report.fanout is not None else None)
                outbox.put(("done", os.getpid(), statuses))
            except Exception as exc:  # noqa: BLE001 — reported to the test, which fails on it
                outbox.put(("error", os.getpid(), repr(exc)))
    finally:
        app.close()


def _drain_worker(config_path: str, secret_key: str, outbox: Any, barrier: Any) -> None:
    """A webhook worker process: drains until nothing is pending; reports the ids it handled."""
    from bot.webhooks.worker import WebhookWorker

    app = _child_app(config_path, secret_key)
    try:
        worker = WebhookWorker(app)
        handled: list[int] = []
        original, original_run = worker._handle, worker._handle_updates

        def handle(event: Any) -> None:
            handled.append(event.id)
            original(event)

        def handle_run(events: list[Any]) -> None:  # orders/updated are handled a run at a time
            handled.extend(event.id for event in events)
            original_run(events)

        worker._handle = handle  # type: ignore[method-assign]
        worker._handle_updates = handle_run  # type: ignore[method-assign]
        barrier.wait(timeout=DEADLINE)
        while worker.drain_once():
            pass
        outbox.put((worker.owner, handled))
    finally:
        app.close()


@pytest.fixture
def web() -> Iterator[RunningServer]:
    with serve(create_web_app({"/menu": MENU_HTML})) as server:
        yield server


def _get(queue: Any, what: str) -> Any:
    try:
        return queue.get(timeout=DEADLINE)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"no answer from a worker process ({what}) within {DEADLINE}s") from exc


# -- 1. two instances, one slot ------------------------------------------------------------------

@pytest.mark.postgres
def test_two_instances_firing_the_same_slot_send_each_recipient_exactly_once(
        postgres_url, make_app, logged_in, sandbox, clock, web, secret_key):
    sandbox.latency = 0.02  # the two runs overlap
    uuids = [sandbox.add_friend(f"친구{i:02d}", uuid=f"uuid-friend-{i:02d}") for i in range(1, 20)]
    app = make_app(menu_job(web.url, ["me"] + [f"friend:친구{i:02d}" for i in range(1, 20)]), db_url=postgres_url)
    logged_in(app)
    zone = app.config.timezone

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outbox = ctx.Queue()
    inboxes = [ctx.Queue(), ctx.Queue()]
    workers = [ctx.Process(target=_slot_worker, args=(str(app.config.path), secret_key, inbox, outbox, barrier),
                           daemon=True) for inbox in inboxes]
    for worker in workers:
        worker.start()
    try:
        assert {_get(outbox, "start")[0] for _ in workers} == {"ready"}
        for repetition in range(20):
            # A new day each time: the daily quotas (bot and stand-in) start afresh.
            instant = datetime(2026, 11, 23, 12, 0, tzinfo=zone) + timedelta(days=repetition)
            clock.now = instant.astimezone(timezone.utc) + timedelta(seconds=1)
            for inbox in inboxes:
                inbox.put(instant.isoformat())
            answers = [_get(outbox, f"repetition {repetition}") for _ in workers]
            assert all(kind == "done" for kind, _, _ in answers), answers
            statuses = Counter(status for _, _, results in answers for _, status in results or [])
            assert statuses["sent"] == 20, (repetition, answers)
            assert set(statuses) <= {"sent", "elsewhere", "already-sent"}, (repetition, answers)

            for uuid in uuids:
                assert len(sandbox.received(uuid)) == repetition + 1, (repetition, uuid)
            # The job's one message to "me"; no problem report about the other instance's recipients.
            assert len(sandbox.received("me")) == repetition + 1, (repetition, sandbox.received("me"))
            slot_key = instant.isoformat()
            with app.db.session() as session:
                rows = list(session.scalars(select(Delivery).where(Delivery.job == "menu",
                                                                   Delivery.slot_key == slot_key)))
            assert len(rows) == 20 and {row.status for row in rows} == {"sent"}, (repetition, slot_key)
            assert len({row.recipient for row in rows}) == 20
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for worker in workers:
            worker.join(timeout=DEADLINE)
            if worker.is_alive():
                worker.kill()


# -- 2. two webhook workers -----------------------------------------------------------------------

@pytest.mark.postgres
def test_two_processes_draining_the_same_webhook_events_process_each_once(
        postgres_url, make_app, secret_key):
    from bot.webhooks.inbox import store_event

    app = make_app("", db_url=postgres_url)
    for index in range(200):
        body = json.dumps({"id": 5_000_000 + index, "admin_graphql_api_id": f"gid://shopify/Order/{5_000_000 + index}",
                           "updated_at": "2026-11-22T09:00:00+09:00"})
        assert store_event(app, app="default", shop="multi.myshopify.com", topic="orders/updated",
                           webhook_id=f"webhook-{index}", body=body)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outbox = ctx.Queue()
    workers = [ctx.Process(target=_drain_worker, args=(str(app.config.path), secret_key, outbox, barrier),
                           daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        answers = dict(_get(outbox, "drain") for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=DEADLINE)
            if worker.is_alive():
                worker.kill()

    assert len(answers) == 2  # two distinct owners
    handled = [event_id for ids in answers.values() for event_id in ids]
    assert len(handled) == len(set(handled)) == 200  # nobody handled an event twice
    with app.db.session() as session:
        events = list(session.scalars(select(WebhookEvent)))
    assert len(events) == 200
    for event in events:
        assert event.attempts == 1, event.webhook_id
        assert event.status in ("done", "ignored"), (event.webhook_id, event.status)
        assert event.id in answers[event.claimed_by]  # the recorded claimer is the one that handled it


# -- 3. SIGKILL inside a Kakao call ---------------------------------------------------------------

RUN_SLOT = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from bot.app import App
    from bot.app import load_config
    from bot.delivery.runner import Runner
    from bot.config.secrets import Secrets

    config_path, secret_key, slot_key = sys.argv[1:4]
    secrets = Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": "%s",
                       "KAKAO_CLIENT_SECRET": "%s"})
    app = App(load_config(Path(config_path)), secrets)
    config = app.config
    job = next(job for job in config.jobs if job.name == "menu")
    Runner(app).run(job, slot_key)
    """ % (REST_KEY, CLIENT_SECRET))


def test_sigkill_inside_a_kakao_call_then_a_rerun_sends_only_the_rest_and_reports_the_call_unknown(
        make_app, logged_in, sandbox, clock, web, secret_key):
    clock.now = datetime.now(timezone.utc)  # the child runs on the real clock
    uuids = [sandbox.add_friend(f"친구{i:02d}", uuid=f"uuid-friend-{i:02d}") for i in range(1, 13)]
    app = make_app(menu_job(web.url, [f"friend:친구{i:02d}" for i in range(1, 13)]))
    logged_in(app)
    slot_key = datetime(2026, 11, 22, 12, 0, tzinfo=app.config.timezone).isoformat()
    sandbox.hang_next(SEND_PATH, 0)  # the first call (friends 1–5) answers at once
    sandbox.hang_next(SEND_PATH, 3)  # the second (6–10) is in flight when the process dies

    env = {key: value for key, value in os.environ.items()
           if key not in ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY")}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-c", RUN_SLOT, str(app.config.path), secret_key, slot_key],
                            cwd=app.config.base_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + DEADLINE
        while sandbox.count(SEND_PATH) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the second Kakao call never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    def statuses() -> dict[str, str]:
        with app.db.session() as session:
            return {row.label: row.status for row in session.scalars(
                select(Delivery).where(Delivery.job == "menu", Delivery.slot_key == slot_key))}

    before = statuses()
    assert [before[f"친구{i:02d}"] for i in range(1, 6)] == ["sent"] * 5
    assert [before[f"친구{i:02d}"] for i in range(6, 11)] == ["sending"] * 5
    assert [before.get(f"친구{i:02d}") for i in range(11, 13)] in (["claimed"] * 2, [None] * 2)

    clock.now = datetime.now(timezone.utc)
    job = next(job for job in app.config.jobs if job.name == "menu")
    report = Runner(app).run(job, slot_key)
    by_label = {result.label: result.status for result in report.fanout.results}
    assert [by_label[f"친구{i:02d}"] for i in range(1, 6)] == ["already-sent"] * 5
    assert [by_label[f"친구{i:02d}"] for i in range(6, 11)] == ["unknown"] * 5
    assert [by_label[f"친구{i:02d}"] for i in range(11, 13)] == ["sent"] * 2
    after = statuses()
    assert [after[f"친구{i:02d}"] for i in range(6, 11)] == ["unknown"] * 5
    assert [after[f"친구{i:02d}"] for i in range(11, 13)] == ["sent"] * 2
    # The rerun made one call (friends 11–12): the in-flight batch was not sent again.
    assert sandbox.count(SEND_PATH) == 3

    deadline = time.monotonic() + DEADLINE  # the hung request may still land (it "may have been delivered")
    while sandbox.received(uuids[5]) == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    for index, uuid in enumerate(uuids, start=1):
        got = len(sandbox.received(uuid))
        assert got <= 1, (uuid, got)
        if index <= 5 or index >= 11:
            assert got == 1, (uuid, got)
