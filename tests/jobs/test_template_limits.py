"""A job template cannot hang the service (issue 8, item 17): arithmetic, loops, calls, formatting
widths and output are bounded, and an over-bound template fails its job with a clear error."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.config.model import JobConfig
from jobs.base import Outcome
from jobs.render import RenderError, message_for, render_text

DEADLINE = 30.0  # seconds: a bound on a hang, not a timing claim (each case ends in milliseconds)

COSTLY = {
    "huge power (the reported one)": "{{ 10 ** (job|length * 30000000) }}",
    "power of a big number": "{{ (2 ** 4000) ** 2 }}",
    "huge product of integers": "{% set x = 10 ** 1000 %}{{ x * x * x * x * x }}",
    "string repeated": "{{ 'x' * 10 ** 9 }}",
    "list repeated": "{{ ([1] * 100000) * 100000 }}",
    "string doubled in a loop": ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
                                 "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"),
    "nested loops": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "loops over a long string": "{% for c in 'x' * 99999 %}{% for d in 'y' * 99999 %}{% endfor %}{% endfor %}",
    "huge range": "{% for i in range(10 ** 12) %}{% endfor %}",
    "recursive macro": ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                        "{{ f(60) }}"),
    "%-format width": "{{ '%0999999999d' % 1 }}",
    "format filter width": "{{ '%*d'|format(999999999, 1) }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "center width": "{{ 'x'|center(999999999) }}",
    "long output": "{% for i in range(10000) %}{{ 'x' * 99999 }}{% endfor %}",
}


def render_within_deadline(source: str, context: dict[str, Any]) -> BaseException | str:
    outcome: dict[str, Any] = {}

    def render() -> None:
        try:
            outcome["text"] = render_text(source, context)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), f"rendering did not end within {DEADLINE:.0f} s"
    return outcome.get("error") or outcome["text"]


@pytest.mark.parametrize("source", list(COSTLY.values()), ids=list(COSTLY))
def test_a_costly_template_fails_its_job_with_a_clear_error(source: str) -> None:
    result = render_within_deadline(source, {"job": "menu"})
    assert isinstance(result, RenderError), result if isinstance(result, str) else repr(result)
    assert "template stopped" in str(result) and "simplify" in str(result)


@pytest.mark.parametrize("source, expected", [
    ("{{ 2 ** 64 }} {{ 10 ** 300 > 0 }}", f"{2 ** 64} True"),
    ("{{ 'ab' * 3 }} {{ [1, 2] * 2 }} {{ (12345.678 * 3)|round(1) }}", "ababab [1, 2, 1, 2] 37037.0"),
    ("{% for i in range(3) %}{% for j in range(2) %}{{ i }}{{ j }},{% endfor %}{% endfor %}",
     "00,01,10,11,20,21,"),
    ("{{ '%05d'|format(42) }} {{ '{:>4}'.format(7) }} {{ 'x'|center(5) }}|{{ '%.2f' % 3.14159 }}",
     "00042    7   x  |3.14"),
    ("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", "54321"),
], ids=["powers", "products", "nested loops", "formatting", "macro"])
def test_ordinary_templates_still_render(source: str, expected: str) -> None:
    assert render_within_deadline(source, {}) == expected


def test_the_budget_is_per_render_not_per_process() -> None:
    source = "{% for i in range(10000) %}{% for j in range(10) %}{% endfor %}{% endfor %}done"
    for _ in range(5):  # 100,000 steps each: together more than one budget
        assert render_within_deadline(source, {}) == "done"


def test_a_job_with_a_costly_template_gets_a_render_error_through_message_for() -> None:
    job = JobConfig(name="menu", kind="scrape", at=("noon",), to=(), template="{{ 10 ** (job|length * 30000000) }}")
    with pytest.raises(RenderError, match="larger than 4096 bits"):
        message_for(job, Outcome(context={}), audience="me", web_domain="https://x.example", default_link="")
