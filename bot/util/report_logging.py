"""Log lines that repeat a run's report, dropped while a command prints that report itself.

The service has no one reading its output but the log, so a failed job or recipient is logged
there. `send-now` prints each job's report on stdout: the same line on stderr a moment earlier only
doubles it. Such log calls pass `extra=IN_REPORT`; `printed_reports()` drops them for its duration.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

IN_REPORT = {"in_report": True}  # `extra=` of a log call whose content the RunReport / FanoutReport carries


class _DropInReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "in_report", False)


@contextmanager
def printed_reports() -> Iterator[None]:
    """While the caller prints the run reports, the log lines marked IN_REPORT are not written."""
    # On the handlers: a logger's own filter would not see the records its children propagate.
    drop = _DropInReport()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)
