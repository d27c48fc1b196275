"""The servers the webhook benchmark loads, each in a process of its own, and their databases.

- `ServerProcess("bare")`: a bare Flask app whose webhook route returns 200 at once, served by
  waitress with the bot's thread count (bot.service.run.THREADS): the floor of the HTTP stack.
- `ServerProcess("floor", database_url)`: a plain Flask view that checks the HMAC, parses the JSON
  and INSERTs the delivery (one SQLAlchemy Core transaction, ON CONFLICT DO NOTHING; on SQLite the
  writers of the process take turns on a lock, as SQLite has one writer; on PostgreSQL a pooled
  connection per request thread): the floor of the stack with the bot's guarantee "stored before the 200".
- `BotService(database_url)`: the real service, `python -m bot --config … run`, with a temporary
  config (one `shopify-order-alert` job on the bench shop), its secrets as systemd credentials (files
  in $CREDENTIALS_DIRECTORY, as deploy/ runs it) and its log in a file; `.backlog()` and `.outcome()`
  read its database from the benchmark's process.

Every one has `.port`, `.pid`, `.cpu()` (CPU seconds of its process so far, from /proc) and `.switches()`
(context switches of its threads so far: where a GIL-bound server spends its kernel time).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine, text
from sqlalchemy.engine import Engine

from loadgen import PATH, SECRET, SHOP, SPAWN
from bot.service.run import THREADS
from bot.shopify.signing import webhook_hmac

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONFIG = """\
[database]
url = "{database}"

[server]
listen = "127.0.0.1:{port}"

[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{shop}"
to = ["me"]
"""


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_switches(pid: int) -> int:
    """Context switches (voluntary and not) of every thread of process `pid` so far (threads that ended
    are not counted: the servers here keep theirs)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if line.endswith(tuple("0123456789"))
                     and line.split(":")[0] in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
    return total


# -- bare Flask and the stack floor -------------------------------------------------------------------


def _bare_app() -> Any:
    from flask import Flask

    app = Flask("bare")

    @app.post(PATH)
    def ok() -> tuple[str, int]:
        return "", 200

    return app


def _floor_app(database_url: str) -> Any:
    """HMAC check, JSON parse, one INSERT … ON CONFLICT DO NOTHING in a short Core transaction."""
    from flask import Flask, request
    from sqlalchemy.dialects import postgresql, sqlite

    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30})
    else:  # a pooled connection per request thread, as `run` keeps (bot.store.db.POOL_SIZE): with SQLAlchemy's
        # default of 5, the 6th concurrent request opened a connection (a server process) and closed it after
        engine = create_engine(database_url, pool_size=THREADS)
    table = Table("floor_events", MetaData(), Column("id", Integer, primary_key=True, autoincrement=True),
                  Column("webhook_id", String(255), unique=True), Column("topic", String(100)), Column("body", Text))
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    table.metadata.create_all(engine)
    insert = (sqlite if is_sqlite else postgresql).insert(table).on_conflict_do_nothing().returning(table.c.id)
    writers = threading.Lock() if is_sqlite else None  # SQLite has one writer: take turns, do not spin
    app = Flask("floor")

    @app.post(PATH)
    def store() -> tuple[str, int, dict[str, str]]:
        body = request.get_data(cache=False)
        if not hmac.compare_digest(webhook_hmac(body, SECRET), request.headers.get("X-Shopify-Hmac-Sha256", "")):
            return '{"error": "invalid HMAC"}', 401, {"Content-Type": "application/json"}
        text_body = body.decode("utf-8")
        if not isinstance(json.loads(text_body), dict):
            return '{"error": "not a JSON object"}', 400, {"Content-Type": "application/json"}
        values = {"webhook_id": request.headers["X-Shopify-Webhook-Id"],
                  "topic": request.headers["X-Shopify-Topic"], "body": text_body}
        if writers is not None:
            with writers, engine.begin() as connection:
                stored = connection.execute(insert, values).scalar_one_or_none()
        else:
            with engine.begin() as connection:
                stored = connection.execute(insert, values).scalar_one_or_none()
        answer = '{"status": "accepted"}' if stored is not None else '{"status": "duplicate"}'
        return answer, 200, {"Content-Type": "application/json"}

    return app


def _serve(pipe: Connection, kind: str, port: int, database_url: str | None) -> None:
    import waitress

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth": that is the load

    app = _bare_app() if kind == "bare" else _floor_app(database_url or "")
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=THREADS, ident=None)
    pipe.send(server.effective_port)
    server.run()


class ServerProcess:
    """The bare Flask app ("bare") or the stack floor ("floor", on `database_url`) in a spawned process."""

    def __init__(self, kind: str, database_url: str | None = None, port: int = 0):
        mine, theirs = SPAWN.Pipe()
        self._process = SPAWN.Process(target=_serve, args=(theirs, kind, port, database_url), daemon=True,
                                      name=f"bench-{kind}")
        self._process.start()
        if not mine.poll(60):
            raise SystemExit(f"the {kind} server did not start")
        self.port: int = mine.recv()
        self.pid: int = self._process.pid

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def switches(self) -> int:
        return process_switches(self.pid)

    def close(self) -> None:
        self._process.terminate()
        self._process.join(10)


# -- the real service -------------------------------------------------------------------------------


class BotService:
    """`python -m bot run` on `database_url` in a child process, with a config of its own in `folder`."""

    def __init__(self, database_url: str, folder: Path, port: int):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.toml").write_text(CONFIG.format(database=database_url, port=port, shop=SHOP),
                                            encoding="utf-8")
        skip = ("BOT_CONFIG", "BOT_DATABASE_URL", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                "BOT_SECRET_KEY", "KAKAO_REST_API_KEY", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET")
        env = {key: value for key, value in os.environ.items() if key not in skip}
        # The secrets as deploy/ gives them (systemd LoadCredential=): one file each in $CREDENTIALS_DIRECTORY.
        credentials = folder / "credentials"
        credentials.mkdir(mode=0o700, exist_ok=True)
        for name, value in (("bot_secret_key", Fernet.generate_key().decode()), ("kakao_rest_api_key", "unused"),
                            ("shopify_api_key", "bench-client-id"), ("shopify_api_secret", SECRET)):
            (credentials / name).write_text(value, encoding="utf-8")
        env.update(CREDENTIALS_DIRECTORY=str(credentials), PYTHONPATH=str(ROOT))
        self.log = folder / "run.log"
        self.port = port
        self._process = subprocess.Popen([sys.executable, "-m", "bot", "--config", "config.toml", "run"],
                                         cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        self.pid = self._process.pid
        self.engine: Engine = create_engine(database_url, pool_size=1, max_overflow=0)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code in (200, 503):
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.close()
        raise SystemExit(f"`run` did not start; its log:\n{self.log.read_text(errors='replace')[-3000:]}")

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def switches(self) -> int:
        return process_switches(self.pid)

    def last_id(self) -> int:
        """The id of the last stored event (0 if none)."""
        with self.engine.connect() as connection:
            return connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM webhook_events")).scalar_one()

    def backlog(self, after_id: int) -> int:
        """Events with an id above `after_id` not yet done or ignored."""
        with self.engine.connect() as connection:
            return connection.execute(text("SELECT COUNT(*) FROM webhook_events WHERE id > :after "
                                           "AND status NOT IN ('done', 'ignored')"), {"after": after_id}).scalar_one()

    def outcome(self, after_id: int) -> dict[str, Any]:
        """Of the events above `after_id`: count by status, and the most claims one event took."""
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT status, COUNT(*), MAX(attempts) FROM webhook_events "
                                           "WHERE id > :after GROUP BY status"), {"after": after_id}).all()
        return {"statuses": {status: count for status, count, _ in rows},
                "attempts": max((attempts or 0 for *_, attempts in rows), default=0)}

    def close(self) -> int | None:
        """SIGTERM, then the exit code (killed after 30 s)."""
        self.engine.dispose()
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

