"""Progress drawn on a terminal with `rich`: `terminal_progress()` for `send-now`.

Kept apart from `bot.util.progress` (what the work reports to) so that only a command that draws imports
rich: the idle service stays within its memory budget. Log lines written while the display is up go
above it, so neither garbles the other.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import IO, Iterator

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TaskID, TextColumn

from bot.util.progress import QUIET, Progress


class TerminalProgress(Progress):
    """Lines drawn by rich on a terminal: one per shop being read, one per job being sent."""

    def __init__(self, console: Console):
        # Text only: no total is known for a search's orders, and the recipients' count is in the text.
        self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), console=console,
                                 redirect_stderr=True, redirect_stdout=False)
        self._shops: dict[str, TaskID] = {}
        self._waits: dict[str, tuple[int, float]] = {}
        self._jobs: dict[str, TaskID] = {}

    def page(self, shop: str, pages: int, orders: int) -> None:
        self._update_shop(shop, pages=pages, orders=orders)

    def waiting(self, shop: str, seconds: float, why: str) -> None:
        count, total = self._waits.get(shop, (0, 0.0))
        self._waits[shop] = (count + 1, total + seconds)
        self._update_shop(shop, waiting=f"waiting {seconds:.1f} s for Shopify's {why}")

    def recipients(self, job: str, done: int, total: int) -> None:
        if job not in self._jobs:
            self._jobs[job] = self._bar.add_task("", total=total)
        self._bar.update(self._jobs[job], completed=done, total=total,
                         description=f"{job}: {done} of {_count(total, 'recipient')} sent")

    def _update_shop(self, shop: str, *, pages: int | None = None, orders: int | None = None,
                     waiting: str | None = None) -> None:
        if shop not in self._shops:
            # No total: Shopify does not say how many orders a search will return.
            self._shops[shop] = self._bar.add_task("", total=None, pages=0, orders=0)
        task = self._shops[shop]
        fields = self._bar.tasks[task].fields
        pages = fields["pages"] if pages is None else pages
        orders = fields["orders"] if orders is None else orders
        count, waited = self._waits.get(shop, (0, 0.0))
        text = f"{shop}: {_count(pages, 'page')}, {_count(orders, 'order')} so far"
        if count:
            text += f", {_count(count, 'throttle wait')} ({waited:.1f} s)"
        if waiting:
            text += f" — {waiting}"
        self._bar.update(task, description=text, pages=pages, orders=orders)

    @contextmanager
    def shown(self) -> Iterator[TerminalProgress]:
        """Draw while inside; log lines written meanwhile go above the display, not through it."""
        self._bar.start()
        # The log handlers hold stderr itself; rich now wraps sys.stderr to print above the display.
        moved = [(handler, handler.setStream(sys.stderr)) for handler in _stderr_handlers()]
        try:
            yield self
        finally:
            for handler, stream in moved:
                handler.setStream(stream)
            self._bar.stop()


@contextmanager
def terminal_progress(stream: IO[str] | None = None) -> Iterator[Progress]:
    """A TerminalProgress drawn on `stream` (default stderr) if it is a terminal, else QUIET."""
    stream = stream if stream is not None else sys.stderr
    if not _is_terminal(stream):
        yield QUIET
        return
    with TerminalProgress(Console(file=stream, force_terminal=True)).shown() as progress:
        yield progress


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _is_terminal(stream: IO[str]) -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream
        return False


def _stderr_handlers() -> list[logging.StreamHandler]:
    stderr = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    return [handler for handler in logging.getLogger().handlers
            if type(handler) is logging.StreamHandler and handler.stream in (stderr, sys.__stderr__)]
