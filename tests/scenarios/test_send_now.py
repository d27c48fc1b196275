"""`send-now` (and `history`) through the command line, against the Kakao stand-in and a served page."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from bot.app import App
from bot.cli.main import cli
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.web import create_web_app
from bot.store.models import Delivery, JobMemory

from cli_clock import cli_on_clock

REPO = Path(__file__).resolve().parents[2]
SEND_PATH = "/v1/api/talk/friends/message/default/send"
MEMO_PATH = "/v2/api/talk/memo/default/send"
MENU_HTML = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<ul class="menu"><li>김치찌개 9,000원</li><li>비빔밥 8,500원</li></ul></body></html>"""
NEW_MENU_HTML = MENU_HTML.replace("비빔밥 8,500원", "떡볶이 6,000원")


# 13:00 in Seoul: today's noon slot has come (the CLI runs on the fake clock, see `cli_waits`).
AFTER_NOON = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def cli_waits(monkeypatch, clock) -> list[float]:  # noqa: ANN001
    """The CLI on the fake clock, set after today's noon; the slot waits it made (seconds)."""
    clock.now = AFTER_NOON
    return cli_on_clock(monkeypatch, clock)


@pytest.fixture
def web() -> Iterator[tuple[RunningServer, object]]:
    pages = create_web_app({"/menu": MENU_HTML})
    with serve(pages) as server:
        yield server, pages


def job(web_url: str, name: str = "menu", to: tuple[str, ...] = ("me", "friend:친구01"), at: str = "noon",
        path: str = "/menu", extra: str = "") -> str:
    return f"""
[[jobs]]
name = "{name}"
kind = "scrape"
url = "{web_url}{path}"
select = "ul.menu > li"
at = ["{at}"]
to = {json.dumps(list(to), ensure_ascii=False)}
{extra}
"""


@pytest.fixture
def env(secret_key: str, sandbox: KakaoSandbox) -> dict[str, str | None]:
    return {"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": sandbox.rest_api_key,
            "KAKAO_CLIENT_SECRET": sandbox.client_secret,
            # Nothing from the developer's own environment may redirect these runs.
            "BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None}


class Cli:
    """Runs the CLI in-process; keeps every run's output for the secrecy check."""

    def __init__(self, env: dict[str, str | None]):
        self.env, self.outputs = env, []

    def __call__(self, config: Path, *args: str) -> Result:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            result = CliRunner().invoke(cli, ["--config", str(config), *args], env=self.env,
                                        catch_exceptions=False)
        finally:  # the CLI installs its own stderr handler: put pytest's back
            root.handlers[:] = handlers
            root.setLevel(level)
        self.outputs.append(result.output)
        return result


@pytest.fixture
def run_cli(env) -> Cli:  # noqa: ANN001
    return Cli(env)


@pytest.fixture
def setup(make_app, logged_in, sandbox, web) -> Callable[..., tuple[App, Path]]:  # noqa: ANN001
    """setup(jobs_toml) → (App, config path): a migrated database with a Kakao login stored."""
    sandbox.add_friend("친구01", uuid="uuid-friend-01")
    sandbox.add_friend("친구02", uuid="uuid-friend-02")

    def make(jobs: str) -> tuple[App, Path]:
        app = make_app(jobs)
        logged_in(app)
        return app, app.config.path

    return make


def deliveries(app: App) -> list[Delivery]:
    with app.db.session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def memory(app: App) -> dict[tuple[str, str], str]:
    with app.db.session() as session:
        return {(row.job, row.key): row.value_json for row in session.scalars(select(JobMemory))}


# -- plain runs ----------------------------------------------------------------------------


def test_plain_run_sends_and_exits_0(setup, web, sandbox, run_cli):
    app, config = setup(job(web[0].url))
    result = run_cli(config, "send-now")
    assert result.exit_code == 0, result.output
    (to_me,) = sandbox.received("me")
    (to_friend,) = sandbox.received("uuid-friend-01")
    assert "김치찌개 9,000원" in to_me["text"] and "비빔밥" in to_friend["text"]
    assert "me: sent" in result.output and "친구01: sent" in result.output
    assert [row.status for row in deliveries(app)] == ["sent", "sent"]


def test_each_plain_run_is_its_own_delivery(setup, web, sandbox, run_cli):
    app, config = setup(job(web[0].url))
    assert run_cli(config, "send-now").exit_code == 0
    assert run_cli(config, "send-now").exit_code == 0
    assert len(sandbox.received("me")) == 2
    assert len(sandbox.received("uuid-friend-01")) == 2
    keys = {row.slot_key for row in deliveries(app)}
    assert len(keys) == 2 and all(key.startswith("run:") for key in keys)


def test_slot_twice_sends_once_and_force_sends_again(setup, web, sandbox, run_cli):
    app, config = setup(job(web[0].url))
    first = run_cli(config, "send-now", "--slot", "noon")
    second = run_cli(config, "send-now", "--slot", "noon")
    assert first.exit_code == second.exit_code == 0
    assert len(sandbox.received("me")) == 1 and len(sandbox.received("uuid-friend-01")) == 1
    assert "already-sent" in second.output
    forced = run_cli(config, "send-now", "--slot", "noon", "--force")
    assert forced.exit_code == 0
    assert len(sandbox.received("me")) == 2 and len(sandbox.received("uuid-friend-01")) == 2
    assert [row.status for row in deliveries(app)] == ["sent"] * 4


def test_slot_covers_the_window_run_would_give_that_slot(setup, web, run_cli, monkeypatch, clock):
    import bot.delivery.runner
    from bot.delivery.run_report import RunReport

    windows: list[dict] = []

    def fake_run(self, job, slot_key, **options):  # noqa: ANN001, ANN202
        windows.append({key: options.get(key) for key in ("since", "until")})
        return RunReport(job.name, slot_key, "nothing")

    monkeypatch.setattr(bot.delivery.runner.Runner, "run", fake_run)
    app, config = setup(f"""
[[jobs]]
name = "menu"
kind = "scrape"
url = "{web[0].url}/menu"
select = "li"
at = ["morning", "noon"]
to = ["me"]
""")
    zone = app.config.timezone
    today = clock.now.astimezone(zone).date()
    assert run_cli(config, "send-now", "--slot", "noon").exit_code == 0
    assert run_cli(config, "send-now").exit_code == 0
    # --slot noon: from this job's previous slot (08:00) to the slot, as `run` would send it, late or not.
    assert windows == [{"since": datetime.combine(today, time(8), zone), "until": datetime.combine(today, time(12), zone)},
                       {"since": None, "until": None}]  # a plain run: today so far


def test_alert_jobs_are_left_out_of_send_now(setup, sandbox, run_cli):
    """Alerts come from webhooks, not slots: `send-now` names no alert job, and asked for one by name it
    says which jobs it can run (exit 2), sending and recording nothing."""
    app, config = setup("""
[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "my-store.myshopify.com"
to = ["me"]
""")
    result = run_cli(config, "send-now")
    assert result.exit_code == 2 and "no scheduled jobs configured" in result.output, result.output
    result = run_cli(config, "send-now", "new-orders")
    assert result.exit_code == 2 and "no scheduled job named new-orders (jobs: none)" in result.output, result.output
    assert deliveries(app) == [] and sandbox.count(MEMO_PATH) == 0


@pytest.mark.parametrize("extra", [(), ("--force",), ("--dry-run",)])
def test_slot_before_its_time_is_refused_and_claims_nothing(setup, web, sandbox, run_cli, clock, extra):
    """At 01:43 in Seoul, `--slot noon` must not use up today's noon: exit 2, one line saying when the
    slot comes and which occurrence was the latest; the real noon run then still sends."""
    app, config = setup(job(web[0].url))
    clock.now = datetime(2026, 11, 21, 16, 43, tzinfo=timezone.utc)  # 2026-11-22 01:43 KST
    result = run_cli(config, "send-now", "--slot", "noon", *extra)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert "comes at 2026-11-22 12:00 KST" in line and "latest occurrence was 2026-11-21 12:00 KST" in line
    assert deliveries(app) == [] and sandbox.count(SEND_PATH) == sandbox.count(MEMO_PATH) == 0
    clock.now = datetime(2026, 11, 22, 3, 0, 5, tzinfo=timezone.utc)  # 12:00:05 KST
    assert run_cli(config, "send-now", "--slot", "noon").exit_code == 0
    assert {(row.slot_key, row.status) for row in deliveries(app)} == {("2026-11-22T12:00:00+09:00", "sent")}


def test_slot_a_timer_fires_a_little_early_is_waited_for(setup, web, sandbox, run_cli, clock, cli_waits):
    """A timer firing 50 s early (within the 2 min tolerance) waits for the slot, then delivers it."""
    app, config = setup(job(web[0].url))
    clock.now = datetime(2026, 11, 22, 2, 59, 10, tzinfo=timezone.utc)  # 11:59:10 KST
    result = run_cli(config, "send-now", "--slot", "noon")
    assert result.exit_code == 0, result.output
    assert sum(cli_waits) == 50 and clock.now == datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)
    assert {(row.slot_key, row.status) for row in deliveries(app)} == {("2026-11-22T12:00:00+09:00", "sent")}
    # Just beyond the tolerance: refused, nothing waited for.
    cli_waits.clear()
    clock.now = datetime(2026, 11, 22, 2, 57, 59, tzinfo=timezone.utc)  # 11:57:59 KST: 2 min 1 s early
    assert run_cli(config, "send-now", "--slot", "noon", "--force").exit_code == 2
    assert cli_waits == [] and len(deliveries(app)) == 2


def test_slot_with_named_job(setup, web, sandbox, run_cli):
    _, config = setup(job(web[0].url) + job(web[0].url, name="other", at="evening"))
    result = run_cli(config, "send-now", "--slot", "noon")
    assert result.exit_code == 0
    assert "== menu" in result.output and "other" not in result.output
    assert len(sandbox.received("me")) == 1


# -- dry run -------------------------------------------------------------------------------


def test_dry_run_prints_each_message_and_sends_and_records_nothing(setup, web, sandbox, run_cli):
    app, config = setup(job(web[0].url, to=("me", "friend:친구01", "friend:없는친구")))
    result = run_cli(config, "send-now", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "-- to me" in result.output and "-- to 친구01" in result.output
    assert "김치찌개 9,000원" in result.output
    assert "없는친구" in result.output and "skipped" in result.output
    assert sandbox.count(SEND_PATH) == sandbox.count(MEMO_PATH) == 0
    assert sandbox.received("me") == []
    assert deliveries(app) == []
    assert memory(app) == {}


def test_dry_run_leaves_the_job_memory_as_it_was(setup, web, sandbox, run_cli):
    server, pages = web
    app, config = setup(job(server.url, extra="only_if_changed = true"))
    assert run_cli(config, "send-now").exit_code == 0
    before_memory, before_rows = memory(app), len(deliveries(app))
    assert ("menu", "last_sent_fingerprint") in before_memory
    pages.set_page("/menu", NEW_MENU_HTML)
    result = run_cli(config, "send-now", "--dry-run")
    assert result.exit_code == 0
    assert "떡볶이 6,000원" in result.output
    assert memory(app) == before_memory
    assert len(deliveries(app)) == before_rows
    assert len(sandbox.received("me")) == 1
    # The real run after it still sees the change.
    assert run_cli(config, "send-now").exit_code == 0
    assert "떡볶이" in sandbox.received("me")[-1]["text"]


# -- usage errors and failures ---------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    (["send-now", "nosuchjob"], "nosuchjob"),
    (["send-now", "--slot", "midnight"], "midnight"),
    (["send-now", "menu", "--slot", "evening"], "not scheduled at slot"),
])
def test_usage_errors_exit_2_and_send_nothing(setup, web, sandbox, run_cli, args, message):
    app, config = setup(job(web[0].url))
    result = run_cli(config, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert sandbox.count(SEND_PATH) == sandbox.count(MEMO_PATH) == 0
    assert deliveries(app) == []


def test_a_failed_job_exits_1_and_the_others_still_run(setup, web, sandbox, run_cli):
    url = web[0].url
    jobs = job(url, name="broken", path="/missing") + job(url, name="bad-template", extra='template = "{{ count / 0 }}"') \
        + job(url, name="menu")
    app, config = setup(jobs)
    result = run_cli(config, "send-now")
    assert result.exit_code == 1
    assert "broken: FAILED" in result.output and "404" in result.output
    assert "bad-template: FAILED" in result.output
    assert "failed: broken, bad-template" in result.output
    (to_me,) = sandbox.received("me")
    assert "김치찌개" in to_me["text"]
    assert {row.job for row in deliveries(app)} == {"menu"}


def test_an_unexpected_error_in_one_job_fails_only_that_job(setup, web, sandbox, run_cli, monkeypatch):
    import jobs.scrape

    real_extract = jobs.scrape._extract

    def extract(body, charset, selector):  # noqa: ANN001, ANN202
        if selector == "div.boom":
            raise RuntimeError("a bug in a job kind")
        return real_extract(body, charset, selector)

    monkeypatch.setattr(jobs.scrape, "_extract", extract)
    url = web[0].url
    app, config = setup(job(url, name="boom").replace('"ul.menu > li"', '"div.boom"') + job(url, name="menu"))
    result = run_cli(config, "send-now")
    assert result.exit_code == 1
    assert "boom: FAILED: RuntimeError: a bug in a job kind" in result.output
    assert len(sandbox.received("me")) == 1
    assert {row.job for row in deliveries(app)} == {"menu"}


@pytest.mark.parametrize("missing", ["KAKAO_REST_API_KEY", "BOT_SECRET_KEY"])
def test_a_missing_secret_is_a_setup_problem_exit_2(setup, web, sandbox, env, missing):
    _, config = setup(job(web[0].url))
    result = Cli({**env, missing: None})(config, "send-now")
    assert result.exit_code == 2
    assert missing in result.output
    assert sandbox.count(MEMO_PATH) == 0


def test_dry_run_on_a_fresh_database(write_config, web, sandbox, kakao_server, run_cli):
    config = write_config(f"""
        [database]
        url = "sqlite:///fresh.sqlite3"
        [kakao]
        api_url = "{kakao_server.url}"
        auth_url = "{kakao_server.url}"
        """ + job(web[0].url, to=("me",)))
    result = run_cli(config, "send-now", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "-- to me" in result.output and "김치찌개 9,000원" in result.output
    assert sandbox.calls == []


def test_history_lists_the_deliveries(setup, web, sandbox, run_cli):
    _, config = setup(job(web[0].url, to=("me", "friend:친구01", "friend:없는친구")))
    assert run_cli(config, "send-now", "--slot", "noon").exit_code == 0
    result = run_cli(config, "history")
    assert result.exit_code == 0
    # An aligned table (bot.cli.main history): header, then TIME JOB SLOT RECIPIENT STATUS CODE/REASON.
    assert result.output.splitlines()[0].split() == ["TIME", "JOB", "SLOT", "RECIPIENT", "STATUS", "CODE/REASON"]
    cells = [re.split(r"\s{2,}", line) for line in result.output.splitlines()[1:]]
    menu = [row for row in cells if row[1] == "menu"]
    assert len(menu) == 3
    assert ["me", "sent"] in [row[3:5] for row in menu]
    assert ["친구01", "sent"] in [row[3:5] for row in menu]
    assert any(row[3:5] == ["없는친구", "skipped"] and "no friend with this nickname" in row[5] for row in menu)
    assert all(row[2].endswith(" 12:00 KST") for row in menu)  # the slot as a local time (item 24)
    assert any(row[1] == "menu!problems" for row in cells)
    limited = run_cli(config, "history", "--job", "menu", "--limit", "1")
    assert len([line for line in limited.output.splitlines() if line.strip()]) == 2  # header + 1


def test_history_when_empty(setup, web, run_cli):
    _, config = setup(job(web[0].url))
    result = run_cli(config, "history")
    assert result.exit_code == 0 and "No deliveries yet." in result.output


def test_only_if_changed_sends_again_only_after_a_change(setup, web, sandbox, run_cli):
    server, pages = web
    _, config = setup(job(server.url, extra="only_if_changed = true"))
    assert run_cli(config, "send-now").exit_code == 0
    unchanged = run_cli(config, "send-now")
    assert unchanged.exit_code == 0
    assert "nothing to report" in unchanged.output
    assert len(sandbox.received("me")) == 1
    pages.set_page("/menu", NEW_MENU_HTML)
    assert run_cli(config, "send-now").exit_code == 0
    assert len(sandbox.received("me")) == 2
    assert "떡볶이 6,000원" in sandbox.received("me")[-1]["text"]
    assert len(sandbox.received("uuid-friend-01")) == 2


# -- a real process, and no secret anywhere -------------------------------------------------------


def issued_secrets(sandbox: KakaoSandbox) -> set[str]:
    """Every token value the stand-in ever issued or was shown, and the client secret."""
    values = set(sandbox._access) | set(sandbox._refresh) | set(sandbox._codes)
    for form in sandbox.token_requests:
        values.update(form.get(key) or "" for key in ("refresh_token", "code", "client_secret"))
    values.add(sandbox.client_secret)
    return {value for value in values if value}


def test_subprocess_send_now_and_no_secret_in_output_or_database(setup, web, sandbox, run_cli, env):
    app, config = setup(job(web[0].url))
    process_env = {key: value for key, value in os.environ.items() if key not in env}
    process_env.update({key: value for key, value in env.items() if value is not None})
    completed = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "send-now"],
                               cwd=REPO, env=process_env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert len(sandbox.received("me")) == 1 and len(sandbox.received("uuid-friend-01")) == 1
    assert "me: sent" in completed.stdout

    # More runs, verbose, through a token refresh and the other commands that touch tokens.
    sandbox.expire_access_tokens()
    assert run_cli(config, "-v", "send-now", "--slot", "noon").exit_code == 0
    assert any(form.get("grant_type") == "refresh_token" for form in sandbox.token_requests)
    assert run_cli(config, "-v", "send-now", "--dry-run").exit_code == 0
    assert run_cli(config, "history").exit_code == 0
    assert run_cli(config, "kakao", "status").exit_code == 0
    assert run_cli(config, "kakao", "friends").exit_code == 0
    sandbox.revoke_refresh_tokens()
    sandbox.expire_access_tokens()
    assert run_cli(config, "-v", "send-now").exit_code == 1  # dead login: loud, but no token shown

    secrets = issued_secrets(sandbox)
    assert len(secrets) >= 4  # the code, two access tokens, a refresh token, the client secret
    texts = [completed.stdout, completed.stderr, *run_cli.outputs]
    db_file = Path(app.db.engine.url.database)
    app.close()
    blobs = [p.read_bytes() for p in db_file.parent.glob(db_file.name + "*")]
    assert blobs and len(blobs[0]) > 0
    for secret in secrets:
        for text in texts:
            assert secret not in text
        for blob in blobs:
            assert secret.encode() not in blob
