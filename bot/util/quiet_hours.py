"""Quiet hours: a local wall-clock window of the day ("22:00-07:00") inside which alerts are held."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

_QUIET = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")


@dataclass(frozen=True)
class QuietWindow:
    """Local wall-clock window [start, end) of one day; start > end wraps midnight (22:00-07:00)."""

    start: time
    end: time

    @property
    def wraps(self) -> bool:
        return self.start > self.end

    def contains(self, moment: time | datetime) -> bool:
        """Whether a local wall time (or an aware instant already in the zone) falls in the window."""
        wall = moment.time() if isinstance(moment, datetime) else moment
        wall = wall.replace(tzinfo=None, fold=0)
        if self.wraps:
            return wall >= self.start or wall < self.end
        return self.start <= wall < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet(text: str) -> QuietWindow:
    """"22:00-07:00" → QuietWindow; ValueError says what is wrong."""
    match = _QUIET.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"must be a window of 24-hour times \"HH:MM-HH:MM\" (e.g. \"22:00-07:00\"), got {text!r}")
    start = time(int(match.group(1)), int(match.group(2)))
    end = time(int(match.group(3)), int(match.group(4)))
    if start == end:
        raise ValueError(f"starts and ends at the same time ({text.strip()}): an empty or a whole-day window; "
                         "remove `quiet` or give two different times")
    return QuietWindow(start, end)
