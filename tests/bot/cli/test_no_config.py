"""Issue 8 item 23: without a config file every command but `demo` and `--help` refuses (exit 2) with one
line naming the path it looked for and how to create it, and creates nothing (no ./data)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from bot.cli.main import cli


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOT_CONFIG", raising=False)
    return tmp_path


@pytest.mark.parametrize("args", [["jobs"], ["history"], ["db", "upgrade"], ["send-now", "--dry-run"],
                                  ["kakao", "status"], ["kakao", "friends"], ["shopify", "shops"],
                                  ["shopify", "app-toml"], ["run"]])
def test_every_command_without_a_config_file_exits_2_naming_the_path_and_creates_nothing(empty_folder, args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert str(empty_folder / "config.toml") in lines[0]
    assert "cp config.example.toml config.toml" in lines[0]
    assert list(empty_folder.iterdir()) == []


def test_bot_config_naming_a_missing_file_says_so(empty_folder, monkeypatch):
    monkeypatch.setenv("BOT_CONFIG", str(empty_folder / "etc" / "bot.toml"))
    result = CliRunner().invoke(cli, ["history"])
    assert result.exit_code == 2
    assert f"{empty_folder / 'etc' / 'bot.toml'} (from $BOT_CONFIG)" in result.output
    assert list(empty_folder.iterdir()) == []


@pytest.mark.parametrize("args", [["--help"], ["history", "--help"], ["db", "upgrade", "--help"], ["demo", "--help"]])
def test_help_needs_no_config(empty_folder, args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert list(empty_folder.iterdir()) == []


def test_the_wsgi_entry_point_refuses_to_serve_on_defaults(empty_folder):
    env = {"PATH": "/usr/bin:/bin", "BOT_SECRET_KEY": "x" * 44}
    result = subprocess.run([sys.executable, "-c", "import bot.wsgi"], cwd=empty_folder, capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "config.toml" in result.stderr and "not found" in result.stderr
    assert not (empty_folder / "data").exists()
