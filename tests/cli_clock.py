"""The CLI on the tests' fake clock: `python -m bot …` builds its own App, on the real clock otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

import bot.cli.common
import bot.delivery.slot_time
from bot.app import App


class MovableClock:
    """A clock standing at `now` until moved (the CLI's own, when the test's clock must stay as it is)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def cli_on_clock(monkeypatch: pytest.MonkeyPatch, clock: Any) -> list[float]:
    """Every App the CLI builds uses `clock`; waiting for a slot moves `clock` instead of sleeping.
    Returns the list the waits (seconds) are appended to."""
    waits: list[float] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds=seconds)

    monkeypatch.setattr(bot.cli.common, "App", lambda config, secrets, **options: App(config, secrets, clock=clock, **options))
    monkeypatch.setattr(bot.delivery.slot_time, "pause", pause)
    return waits
