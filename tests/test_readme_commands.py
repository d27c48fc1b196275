"""Issue 8 item 22: the README's two commands work as written on a fresh Debian machine, whose system
Python refuses `pip install` (externally managed): each creates and activates a virtualenv itself, and the
Python version it needs is stated before them, matching pyproject's requires-python."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def _two_commands_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## The two commands")
    return text[start:text.index("\n## ", start + 1)]


def test_each_of_the_two_commands_creates_and_uses_a_virtualenv_before_installing():
    commands = re.findall(r"```sh\n(.*?)\n```", _two_commands_section(), re.S)
    assert len(commands) == 2
    for command, last in zip(commands, ["python -m bot demo", "pytest"]):
        steps = [step.strip() for step in command.split("&&")]
        assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"], command
        assert steps[2].startswith("pip install -e ") and steps[-1] == last, command


def test_the_python_version_is_stated_before_the_commands_and_matches_pyproject():
    section = _two_commands_section()
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = required.removeprefix(">=")
    stated = section.find(f"Python {version} or newer")
    assert 0 <= stated < section.index("```sh")
