"""Progress of long work, on stderr, only when a person watches a terminal.

A `send-now` over thousands of orders spends minutes in Shopify's cost throttle; without a sign of
life it looks hung. The work reports what it does to a `Progress` passed in explicitly (the runner
hands it to the Shopify GraphQL client and the fan-out): pages fetched, orders so far, waits for the
throttle, recipients sent. `QUIET` drops it all — the default everywhere, and what a pipe, a log file
or systemd gets. `bot.cli.progress_terminal.terminal_progress()` draws it with `rich` when stderr is a
terminal (rich is imported only there, so the idle service never loads it).
"""

from __future__ import annotations


class Progress:
    """What long work tells as it goes. This base tells nobody: non-interactive runs show nothing."""

    def page(self, shop: str, pages: int, orders: int) -> None:
        """`pages` pages of `shop`'s orders fetched so far, holding `orders` orders."""

    def waiting(self, shop: str, seconds: float, why: str) -> None:
        """About to wait `seconds` for Shopify's throttle (`why`: the cost bucket, THROTTLED)."""

    def recipients(self, job: str, done: int, total: int) -> None:
        """`done` of `total` recipients of `job` handled (sent, or failed and recorded)."""


QUIET = Progress()
