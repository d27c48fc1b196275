"""What every job kind gets and gives: its context in, an outcome out.

A job kind is a module in `jobs/` with
  KIND: str                                          the `kind = "…"` it handles
  PARAM_KEYS: frozenset[str]                         its own config keys
  parse_params(raw: dict, fail) -> Params            typed, validated params
  collect(job, ctx) -> Outcome                       fetch the data
  render(job, outcome, audience) -> dict             Kakao template_object for "me" or "friend"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol

import requests

from bot.shopify.graphql import ShopifyGraphQL


class JobState(Protocol):
    """Small persisted key/value memory of one job (ETag, what was sent last, …)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


@dataclass
class JobContext:
    state: JobState
    http: requests.Session
    now: datetime  # aware, in the configured zone
    since: datetime | None = None  # the previous slot of this job, for digests
    # The end of a digest's window: the scheduled instant of the slot being sent. A slot sent late (caught
    # up after a restart) still covers [since, slot), so the next digest starts where it ended; None
    # (a plain `send-now`): now.
    until: datetime | None = None
    link_url: str = "https://example.com"  # default link of messages (a registered Kakao web domain)
    shopify: Callable[[str], ShopifyGraphQL] | None = None  # shop domain → its Admin GraphQL client


@dataclass
class Outcome:
    """What a job collected, ready to render."""

    context: dict[str, Any] = field(default_factory=dict)  # values for the Jinja2 template
    empty: bool = False  # nothing to report
    fingerprint: str | None = None  # identity of the content, for only_if_changed
    link: str | None = None  # where the message links to
    # Called once the message went out to every recipient, to remember what was sent.
    on_delivered: list[tuple[str, Any]] = field(default_factory=list)  # (state key, value)
    # A chart to draw and upload for this delivery (bot.util.chart_png's JSON; bot.delivery.charts), or why
    # there is none though the job asked for one; `image_url`: where it was uploaded, set by the delivery.
    chart: dict[str, Any] | None = None
    chart_error: str | None = None
    image_url: str | None = None


class JobFailed(Exception):
    """The job could not collect its data; the message says why, for a person. `retryable`: the cause
    can pass (a network error, a 5xx, an upstream unavailable), so a later run may succeed."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable
