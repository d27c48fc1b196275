"""Scrubbing the values of the secrets this process holds from every text it logs, prints or stores.

Token-shaped patterns (bot.util.logs.redact) miss a token an upstream echoes in free text ("invalid
refresh token abc…"). A Redactor knows the actual values: the secrets read from the environment
(BOT_SECRET_KEY, client secrets, BOT_HEALTH_TOKEN, the database password) and every token the
Vault encrypts or decrypts (Kakao access and refresh tokens, Shopify tokens). Each App owns one
(`App.redactor`), handed to what needs it — nothing global:

- logging: bot.util.logs.RedactingFilter(redactor.scrub) on the handler of `setup_logging`;
- storing: `scrub_statements(engine, redactor)` scrubs every string bound to an SQL statement,
  so no error text, reason or summary reaches the database with a secret in it;
- printing: `ScrubbingStream` around the CLI's stdout and stderr.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, TextIO

from sqlalchemy import Engine, event

from bot.util.logs import redact

MASK = "[redacted]"
MIN_LENGTH = 8  # shorter values would mask ordinary words; real secrets are far longer
# Tokens are minted for as long as the process runs (Shopify's expiring ones hourly): the newest this
# many are kept, which bounds the work per stored text too.
MAX_VALUES = 128


class Redactor:
    """The secret values of one App; `scrub(text)` masks them (and token-shaped patterns)."""

    def __init__(self) -> None:
        self._values: dict[str, None] = {}  # insertion-ordered: the oldest goes first when full
        self._lock = threading.Lock()
        self._sorted: tuple[str, ...] = ()

    def add(self, *values: str | None) -> None:
        """Remember secret values (None, short and repeated values are ignored)."""
        fresh = [value.strip() for value in values if isinstance(value, str) and len(value.strip()) >= MIN_LENGTH]
        if not fresh or all(value in self._values for value in fresh):
            return
        with self._lock:
            for value in fresh:
                self._values.pop(value, None)
                self._values[value] = None
            while len(self._values) > MAX_VALUES:
                del self._values[next(iter(self._values))]
            # Longest first: a secret that contains another is masked whole.
            self._sorted = tuple(sorted(self._values, key=len, reverse=True))

    def scrub_values(self, text: str) -> str:
        """`text` with every known secret value masked (patterns untouched: for stored data)."""
        for value in self._sorted:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def scrub(self, text: str) -> str:
        """`text` with known secret values and token-shaped patterns masked: for logs and output."""
        return redact(self.scrub_values(text))

    def __bool__(self) -> bool:
        return bool(self._sorted)

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._sorted)} values hidden>)"


def scrub_statements(engine: Engine, redactor: Redactor) -> None:
    """Mask secret values in every string parameter of every statement `engine` executes."""

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    # SQLAlchemy's signature: (conn, cursor, statement, parameters, context, executemany).
    def _scrub(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        if redactor and parameters:
            parameters = _scrub_parameters(redactor, parameters)
        return statement, parameters


def _scrub_parameters(redactor: Redactor, parameters: Any) -> Any:
    """`parameters` with secret values masked in its strings, at any depth; the very same object when
    nothing was masked (the usual case: a webhook's row or a run's outcomes are not copied to find that out)."""
    if isinstance(parameters, str):
        return redactor.scrub_values(parameters)
    if isinstance(parameters, dict):
        scrubbed = None
        for key, value in parameters.items():
            if isinstance(value, _SCRUBBED_TYPES):
                cleaned = _scrub_parameters(redactor, value)
                if cleaned is not value:
                    scrubbed = scrubbed if scrubbed is not None else dict(parameters)
                    scrubbed[key] = cleaned
        return parameters if scrubbed is None else scrubbed
    if isinstance(parameters, (list, tuple)):
        cleaned_values = [_scrub_parameters(redactor, value) if isinstance(value, _SCRUBBED_TYPES) else value
                          for value in parameters]
        if all(cleaned is value for cleaned, value in zip(cleaned_values, parameters)):
            return parameters
        return type(parameters)(cleaned_values)
    return parameters


_SCRUBBED_TYPES = (str, dict, list, tuple)


class ScrubbingStream:
    """A text stream that masks secret values in what is written to it (the CLI's stdout/stderr)."""

    def __init__(self, stream: TextIO, redactor: Redactor):
        self._stream, self._redactor = stream, redactor

    def write(self, text: str) -> int:
        if isinstance(text, str) and self._redactor:
            text = self._redactor.scrub_values(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding, buffer, fileno …
        return getattr(self._stream, name)


def scrub_output(redactor: Redactor) -> Callable[[], None]:
    """stdout and stderr mask the secret values from now on; returns what puts them back (for one CLI
    invocation: its click context calls it on close)."""
    original = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ScrubbingStream(sys.stdout, redactor), ScrubbingStream(sys.stderr, redactor)

    def restore() -> None:
        sys.stdout, sys.stderr = original

    return restore
