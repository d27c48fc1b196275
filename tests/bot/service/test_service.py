"""`run`: run_service in a thread (ready, real HTTP, stop_event, draining), `python -m bot run` as a
process stopped by a signal, and `bot.wsgi` imported by a process as gunicorn would."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from flask import Flask

import bot.service.run
from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.service.run import run_service

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, deadline_s: float = 30.0, proc: subprocess.Popen | None = None) -> requests.Response:
    """Poll `url` until it answers (or the deadline passes, or the process died)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the process exited with {proc.returncode}: {proc.stderr.read()}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def service_app(write_config, secrets) -> Iterator[App]:
    port = free_port()
    path = write_config(f"""\
        [database]
        url = "sqlite:///service.sqlite3"

        [server]
        listen = "127.0.0.1:{port}"
        """, name="service.toml")
    app = App(load_config(path), secrets)
    yield app
    app.close()


class Running:
    def __init__(self, app: App, stop: threading.Event):
        self.app, self.stop = app, stop
        self.ready = threading.Event()
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome["code"] = run_service(self.app, ready=self.ready.set, stop_event=self.stop)
        except BaseException as exc:  # noqa: BLE001
            self.outcome["error"] = exc
        finally:
            self.ready.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.config.server.port}"


def test_run_service_serves_until_stop_event_and_returns_0(service_app):
    stop = threading.Event()
    running = Running(service_app, stop)
    running.thread.start()
    assert running.ready.wait(30)
    assert running.outcome == {}, running.outcome

    health = requests.get(f"{running.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["db"] == "ok"
    # Keep a connection alive (idle keep-alive): stopping must not wait for it.
    session = requests.Session()
    assert session.get(f"{running.url}/healthz", timeout=10).status_code == 200

    stop.set()
    running.thread.join(timeout=20)
    assert not running.thread.is_alive(), "run_service did not return within 20 s of stop_event"
    assert running.outcome == {"code": 0}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{running.url}/healthz", timeout=5)
    session.close()


def test_a_request_in_flight_when_stopping_still_gets_its_answer(service_app, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real_create_app = bot.service.run.create_app

    def create_app_with_a_slow_route(app: App) -> Flask:
        flask_app = real_create_app(app)

        def slow() -> str:
            entered.set()
            release.wait(20)
            return "done"

        flask_app.add_url_rule("/slow", "slow", slow)
        return flask_app

    monkeypatch.setattr(bot.service.run, "create_app", create_app_with_a_slow_route)
    stop = threading.Event()
    running = Running(service_app, stop)
    running.thread.start()
    assert running.ready.wait(30)

    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(requests.get(f"{running.url}/slow", timeout=30)))
    client.start()
    assert entered.wait(20)
    stop.set()  # while /slow is still running
    release.set()
    client.join(30)
    running.thread.join(30)
    assert not running.thread.is_alive()
    assert running.outcome == {"code": 0}
    (answer,) = answers
    assert answer.status_code == 200 and answer.text == "done"


def test_background_workers_start_with_the_server_and_are_stopped_with_a_bound(service_app, monkeypatch):
    events: list[Any] = []

    class Worker:
        def __init__(self, name: str):
            self.name = name

        def stop(self, timeout: float) -> None:
            events.append(("stop", self.name, timeout))

    def start_background(app: App) -> list[Worker]:
        assert app is service_app
        # The socket is already listening when the workers start.
        with socket.create_connection(("127.0.0.1", app.config.server.port), timeout=5):
            pass
        events.append("started")
        return [Worker("webhooks"), Worker("another")]

    monkeypatch.setattr(bot.service.run, "start_background", start_background)
    stop = threading.Event()
    running = Running(service_app, stop)
    running.thread.start()
    assert running.ready.wait(30)
    assert events == ["started"]  # ready() comes after the workers started
    stop.set()
    running.thread.join(30)
    assert running.outcome == {"code": 0}
    assert events[1:] == [("stop", "webhooks", bot.service.run.WORKER_STOP_TIMEOUT),
                          ("stop", "another", bot.service.run.WORKER_STOP_TIMEOUT)]


def test_the_scheduler_carries_the_health_checks_and_the_order_reconciliation(service_app, monkeypatch, caplog):
    registered: list[tuple[str, Any]] = []

    def reconciliation(app: App, scheduler: Any) -> None:
        registered.append(("reconciliation", scheduler))
        raise RuntimeError("cannot")

    monkeypatch.setattr(bot.service.run, "register_checks", lambda app, scheduler: registered.append(("checks", scheduler)))
    monkeypatch.setattr(bot.service.run, "register_reconciliation", reconciliation)
    with caplog.at_level(logging.ERROR):
        scheduler = bot.service.run._start_scheduler(service_app)
    try:
        assert [(name, on is scheduler) for name, on in registered] == [("checks", True), ("reconciliation", True)]
        assert "registering reconciliation failed" in caplog.text  # logged; the scheduler runs anyway
        assert scheduler._scheduler.running  # started all the same
    finally:
        assert scheduler.stop(10)


def test_a_second_signal_exits_at_once(monkeypatch):
    """The first SIGTERM/SIGINT asks for a clean stop; a second one (stop hanging) exits the process."""

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(bot.service.run.os, "_exit", fake_exit)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stop = threading.Event()
    restore = bot.service.run._install_signal_handlers(stop)
    try:
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set()
        with pytest.raises(Exited) as caught:
            signal.raise_signal(signal.SIGINT)
        assert caught.value.args == (128 + signal.SIGINT,)
    finally:
        restore()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # put back


def test_signal_handlers_are_left_alone_outside_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(bot.service.run._install_signal_handlers(threading.Event())))
    thread.start()
    thread.join(10)
    assert outcome and signal.getsignal(signal.SIGTERM) is before


def test_a_busy_listen_port_fails_with_1_naming_the_setting(service_app, caplog):
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        busy.bind(("127.0.0.1", service_app.config.server.port))
        busy.listen()
        ready = []
        with caplog.at_level(logging.ERROR):
            code = run_service(service_app, ready=lambda: ready.append(1), stop_event=threading.Event())
    assert code == 1 and ready == []
    assert f"127.0.0.1:{service_app.config.server.port}" in caplog.text and "[server] listen" in caplog.text


def test_run_service_refuses_to_start_without_the_secret_key(service_app):
    from tokens.vault import VaultError

    app = App(service_app.config, Secrets({}))
    try:
        with pytest.raises(VaultError, match="BOT_SECRET_KEY"):
            run_service(app, stop_event=threading.Event())
    finally:
        app.close()


# -- processes ------------------------------------------------------------------------------------


def process_env(secret_key: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM")}
    env.update({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": "process-rest-key",
                "PYTHONPATH": str(ROOT)}, **extra)
    return env


def process_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(textwrap.dedent(f"""\
        [database]
        url = "sqlite:///run.sqlite3"

        [server]
        listen = "127.0.0.1:{port}"
        """), encoding="utf-8")
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_python_m_bot_run_serves_and_exits_0_on_a_signal(tmp_path, secret_key, signum):
    port = free_port()
    config = process_config(tmp_path, port)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"], cwd=tmp_path,
                            env=process_env(secret_key), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in err
    assert "GET /healthz 200" in err  # the access log reaches stderr
    assert secret_key not in err and secret_key not in out
    assert (tmp_path / "run.sqlite3").exists()


def test_python_m_bot_run_with_a_bad_config_exits_2(tmp_path, secret_key):
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlisten = "nowhere"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "run"], cwd=tmp_path,
                            env=process_env(secret_key), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "server.listen" in result.stderr


def test_bot_wsgi_loads_the_config_named_by_bot_config_and_serves(tmp_path, secret_key):
    config = process_config(tmp_path, free_port())
    script = ("import bot.wsgi as w; c = w.application.test_client(); r = c.get('/healthz'); "
              "print(type(w.application).__name__, r.status_code, r.get_json()['db'])")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env=process_env(secret_key, BOT_CONFIG=str(config)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Flask", "200", "ok"]
    assert (tmp_path / "run.sqlite3").exists()  # migrated at import
    assert secret_key not in result.stdout + result.stderr


def test_bot_wsgi_refuses_a_missing_named_config(tmp_path, secret_key):
    result = subprocess.run([sys.executable, "-c", "import bot.wsgi"], cwd=tmp_path, capture_output=True,
                            text=True, env=process_env(secret_key, BOT_CONFIG=str(tmp_path / "absent.toml")),
                            timeout=60)
    assert result.returncode != 0
    assert "absent.toml" in result.stderr and "not found" in result.stderr


def test_importing_the_server_modules_loads_nothing():
    """Only bot.wsgi loads config at import; bot.web.server and bot.service.run are plain modules."""
    script = "import bot.web.server, bot.service.run, sys; print('bot.wsgi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "BOT_CONFIG": "/nonexistent/config.toml"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
