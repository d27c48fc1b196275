"""A controllable clock in epoch seconds, the kind the stand-ins take (`clock=`)."""

from __future__ import annotations


class EpochClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
