"""`python -m bot run` refusing to start (issue 8, item 15): an absurd `[delivery] grace` and an
unreachable database each give one clear line naming the key or the URL (password masked), exit 2
or 1, no traceback, and nothing created in the folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "pw-Very-Secret-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_bot(folder: Path, config: str, secret_key: str, *args: str) -> subprocess.CompletedProcess:
    (folder / "config.toml").write_text(textwrap.dedent(config), encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key not in ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM")}
    env.update(BOT_SECRET_KEY=secret_key, KAKAO_REST_API_KEY="k", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "bot", "--config", "config.toml", *(args or ("run",))],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def only_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("grace", ["999999999999d", "8d", "100000000000000000000s"])
def test_a_grace_beyond_seven_days_exits_2_naming_the_key_and_creates_nothing(tmp_path, secret_key, grace):
    result = run_bot(tmp_path, f"""\
        [database]
        url = "sqlite:///data/bot.sqlite3"

        [server]
        listen = "127.0.0.1:{free_port()}"

        [delivery]
        grace = "{grace}"
        """, secret_key)
    assert result.returncode == 2
    line = only_line(result.stderr)
    assert "delivery.grace" in line and "7d" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_grace_of_seven_days_is_accepted(write_config):
    from bot.app import load_config

    config = load_config(write_config('[delivery]\ngrace = "7d"\n'))
    assert config.grace_seconds == 7 * 86400


@pytest.mark.parametrize("command", [("run",), ("history",), ("db", "upgrade")])
def test_an_unreachable_postgresql_exits_1_with_one_line_naming_the_masked_url(tmp_path, secret_key, command):
    port = free_port()  # nothing listens there
    result = run_bot(tmp_path, f"""\
        [database]
        url = "postgresql://bot:{PASSWORD}@127.0.0.1:{port}/bot"

        [server]
        listen = "127.0.0.1:{free_port()}"
        """, secret_key, *command)
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert f"bot:***@127.0.0.1:{port}/bot" in line and "cannot reach the database" in line
    assert PASSWORD not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_sqlite_file_that_cannot_be_made_exits_1_naming_it(tmp_path, secret_key):
    (tmp_path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    result = run_bot(tmp_path, f"""\
        [database]
        url = "sqlite:///blocker/bot.sqlite3"

        [server]
        listen = "127.0.0.1:{free_port()}"
        """, secret_key)
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert "cannot reach the database" in line and "blocker/bot.sqlite3" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "config.toml"]
