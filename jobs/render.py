"""Message text from Jinja2 templates: the job's own `template`, else the kind's default.

Templates come from the config file, so they run sandboxed, with bounds on arithmetic, loops,
calls and output (jobs.template_limits) so that no template can hang the service. Output is
plain KakaoTalk text, not HTML: no autoescaping. A missing value renders empty (ChainableUndefined)
rather than failing a delivery over an absent field.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined

from bot.config.model import JobConfig
from bot.kakao.templates import text_template, trim_text
from jobs.base import JobFailed, Outcome
from jobs.template_limits import BoundedEnvironment, TemplateTooCostly, bounded_output, render_budget

DETAILS_BUTTON = "자세히 보기"

# ISO 4217 currencies without minor units in practice.
_ZERO_DECIMAL = frozenset({"KRW", "JPY", "VND", "CLP", "ISK"})
_SYMBOLS = {"KRW": "₩", "USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£"}
_KIND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class RenderError(JobFailed):
    """A job's template failed while rendering; the message names the problem."""


def won(value: Any, currency: Any = "KRW") -> str:
    """Money as people read it: `won(1234000)` → "₩1,234,000", `won("12.5", "USD")` → "$12.50"."""
    if isinstance(value, Undefined) or value is None:
        return ""
    amount = _decimal(value)
    if amount is None:
        return str(value)  # not a number: show it as given rather than fail the message
    code = "KRW" if isinstance(currency, Undefined) or not currency else str(currency).strip().upper()
    places = 0 if code in _ZERO_DECIMAL else 2
    amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    digits = f"{abs(amount):,.{places}f}"
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {code}"


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)  # via text, so 0.1 stays 0.1 and not its binary expansion
    elif isinstance(value, str):
        value = value.strip().replace(",", "")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return amount if amount.is_finite() else None


def trim(value: Any, n: int | str | None = None) -> str:
    """Strip whitespace and, given `n`, shorten to `n` characters with "…".

    Replaces Jinja's built-in `trim`, and still accepts its `chars` argument (a string).
    """
    text = "" if isinstance(value, Undefined) else str(value)
    if isinstance(n, str):
        return text.strip(n)
    text = text.strip()
    return text if n is None else trim_text(text, int(n))


@lru_cache(maxsize=1)
def _environment() -> BoundedEnvironment:
    # One, never changed after it is built: Jinja environments and their templates are safe to share
    # between threads once configured.
    env = BoundedEnvironment(
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=ChainableUndefined,
    )
    env.filters["won"] = won
    env.filters["trim"] = trim
    return env


@lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    # A job's template is compiled once, not per message: compiling was most of a run's garbage and
    # time. A source that does not compile raises, and exceptions are not cached.
    return _environment().from_string(source)


def template_syntax_error(source: str) -> str | None:
    """Why `source` does not compile ("line 2: unexpected '}'"), or None when it does."""
    try:
        _compiled(source)  # compiling also catches unknown filters and tests
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def render_text(source: str, context: dict[str, Any]) -> str:
    """Render `source` with `context`; trailing spaces and surrounding blank lines removed."""
    try:
        with render_budget():
            text = bounded_output(_compiled(source).generate(context))
    except TemplateSyntaxError as exc:
        raise RenderError(f"template does not parse: line {exc.lineno}: {exc.message}") from exc
    except TemplateTooCostly as exc:
        raise RenderError(f"template stopped: {exc}; simplify the job's template") from exc
    except Exception as exc:  # a config-supplied template can fail in any way; name it, don't crash
        raise RenderError(f"template failed: {type(exc).__name__}: {exc}") from exc
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


@lru_cache(maxsize=None)  # one entry per job kind; the files do not change while running
def default_template(kind: str) -> str:
    """The built-in template of a job kind, from `jobs/templates/<kind>.j2`."""
    if not _KIND_NAME.match(kind):
        raise ValueError(f"not a job kind name: {kind!r}")
    return resources.files("jobs").joinpath("templates", f"{kind}.j2").read_text(encoding="utf-8")


def message_for(
    job: JobConfig,
    outcome: Outcome,
    *,
    audience: str,
    web_domain: str,
    default_link: str,
) -> dict[str, Any]:
    """The Kakao text template for one job outcome, as seen by `audience` ("me" or "friend")."""
    source = job.template or default_template(job.kind)
    context = {**outcome.context, "audience": audience, "job": job.name}
    # A template that renders nothing would make Kakao refuse the message; say at least which job.
    text = render_text(source, context) or f"📋 {job.name}"
    return text_template(
        text,
        link=outcome.link or default_link,
        web_domain=web_domain,
        button_title=DETAILS_BUTTON,
    )
