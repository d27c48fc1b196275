"""What `run` keeps in memory: the service never imports Alembic (migrations run in a child process,
bot.store.migrate_child), nor cryptography before it needs a token, on a first start too, on SQLite and
PostgreSQL. Checked in a python of its own, the way tests/bot/util/test_chart_png.py checks that matplotlib
is never imported by the caller."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.store.db import Database

ROOT = Path(__file__).resolve().parents[3]
# Modules an idle service has no use for; a first start must not load them either. cryptography (~7 MB)
# waits for the first token a run encrypts or decrypts (tokens.vault).
NEVER_IN_RUN = ("alembic", "matplotlib", "jwt", "cryptography")

RUN_UNTIL_READY = """
import sys, threading
from pathlib import Path
from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.service.run import run_service
from bot.service.systemd import Notifier

config = load_config(Path(sys.argv[1]))
app = App(config, Secrets.load(config.base_dir))
stop = threading.Event()

def ready():
    print("loaded:", sorted(name for name in sys.argv[2:] if name in sys.modules), flush=True)
    stop.set()

sys.exit(run_service(app, ready=ready, stop_event=stop, notifier=Notifier(None)))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_until_ready(tmp_path: Path, database_url: str, secret_key: str) -> str:
    """`run_service` in a python of its own, stopped once ready: its line naming what it loaded."""
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""\
        [database]
        url = "{database_url}"

        [server]
        listen = "127.0.0.1:{free_port()}"
        """), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in ("BOT_DATABASE_URL", "BOT_CONFIG")}
    env.update(BOT_SECRET_KEY=secret_key, KAKAO_REST_API_KEY="idle-rest-key", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", RUN_UNTIL_READY, str(config), *NEVER_IN_RUN], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def assert_at_head(url: str) -> None:
    db = Database(url)
    try:
        assert db.schema_is_current() and "webhook_events" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


def test_a_first_start_on_sqlite_migrates_without_loading_alembic(tmp_path, secret_key):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    assert run_until_ready(tmp_path, url, secret_key) == "loaded: []"
    assert_at_head(url)  # the child process did migrate
    assert run_until_ready(tmp_path, url, secret_key) == "loaded: []"  # a warm start: one SELECT


@pytest.mark.postgres
def test_a_first_start_on_postgresql_migrates_without_loading_alembic(tmp_path, secret_key, postgres_url):
    assert run_until_ready(tmp_path, postgres_url, secret_key) == "loaded: []"
    assert_at_head(postgres_url)
    assert run_until_ready(tmp_path, postgres_url, secret_key) == "loaded: []"
