"""Logging to stderr, with a last line of defence that masks anything token-shaped.

The code never logs tokens; the filter exists so that a library's debug line or an
exception text carrying a bearer token or an OAuth form still cannot leak one.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import datetime
from typing import Callable

_SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(access_token|refresh_token|client_secret|code|token)=([^&\s'\"]+)"), r"\1=[redacted]"),
    (re.compile(r"(?i)(\"(?:access_token|refresh_token|client_secret)\"\s*:\s*\")[^\"]+"), r"\1[redacted]"),
    (re.compile(r"\bshp(?:at|ca|ss|pa)_[A-Za-z0-9]+"), "shp_[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks token-shaped patterns with `redact`, or whatever `scrub` masks — `Redactor.scrub`
    (bot.util.redaction) also masks the secret values it knows."""

    def __init__(self, scrub: Callable[[str], str] = redact):
        super().__init__()
        self.redact = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup_logging(verbose: bool = False, scrub: Callable[[str], str] = redact) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if _stderr_is_journal(os.environ.get("JOURNAL_STREAM")):
        # journald adds its own timestamps; <N> prefixes carry the level.
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(LocalTimeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(scrub))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "werkzeug", "alembic", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stderr_is_journal(journal_stream: str | None) -> bool:
    """$JOURNAL_STREAM ("dev:inode") names the stream systemd connected to journald: only when stderr
    is that very stream (not, say, a terminal of a shell started from a service) is the format journald's."""
    if not journal_stream:
        return False
    device, _, inode = journal_stream.partition(":")
    try:
        stat = os.fstat(sys.stderr.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (AttributeError, OSError, ValueError):  # no stderr file descriptor (captured), or a bad value
        return False


class _JournalFormatter(logging.Formatter):
    LEVELS = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        # journald makes each line an entry of its own: every line (a traceback's too) carries the level.
        prefix = f"<{self.LEVELS.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


class LocalTimeFormatter(logging.Formatter):
    """Timestamps in the machine's local zone with its offset (`2026-12-03 01:42:42.123+09:00`): a line read
    next to a server in another zone, or across a DST change, still names one instant."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        moment = datetime.fromtimestamp(record.created).astimezone()
        return moment.strftime(datefmt) if datefmt else moment.isoformat(sep=" ", timespec="milliseconds")

