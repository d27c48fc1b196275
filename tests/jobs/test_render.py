"""Jinja2 rendering of message text: filters, syntax checks, defaults and the final template."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.config.model import JobConfig
from jobs.base import JobFailed, Outcome
from jobs.render import default_template, message_for, render_text, template_syntax_error, won

DOMAIN = "https://bot.example.com"


def _job(template: str | None = None, kind: str = "scrape") -> JobConfig:
    return JobConfig(name="menu", kind=kind, at=("noon",), to=(), template=template)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((1234000,), "₩1,234,000"),
        ((1234000, "KRW"), "₩1,234,000"),
        (("1234000.0",), "₩1,234,000"),
        (("1234.5",), "₩1,235"),  # KRW has no decimals: rounded half up
        ((0,), "₩0"),
        ((-15000,), "-₩15,000"),
        (("-0.4",), "₩0"),
        ((1234.5, "USD"), "$1,234.50"),
        (("1234.5", "usd"), "$1,234.50"),
        (("99.999", "EUR"), "€100.00"),
        ((1234.56, "JPY"), "¥1,235"),
        (("1234.5", "CAD"), "1,234.50 CAD"),
        ((Decimal("0.1") + Decimal("0.2"), "USD"), "$0.30"),
        (("1,234",), "₩1,234"),
        (("n/a",), "n/a"),  # not a number: shown as given
        ((None,), ""),
    ],
)
def test_won(args, expected):
    assert won(*args) == expected


def test_filters_in_templates():
    source = "{{ total|won }} / {{ usd|won('USD') }} / {{ name|trim(5) }} / [{{ pad|trim }}]"
    context = {"total": 1234000, "usd": "12.5", "name": "가나다라마바사", "pad": "  x  "}
    assert render_text(source, context) == "₩1,234,000 / $12.50 / 가나다라… / [x]"


def test_missing_values_render_empty():
    assert render_text("[{{ order.customer.name }}]{{ missing|won }}", {}) == "[]"


def test_blocks_are_trimmed_and_trailing_blank_lines_dropped():
    source = "제목\n{% for x in items %}\n- {{ x }}\n{% endfor %}\n\n"
    assert render_text(source, {"items": ["a", "b"]}) == "제목\n- a\n- b"


def test_output_is_not_html_escaped():
    assert render_text("{{ x }}", {"x": "<b>Tom & Jerry</b>"}) == "<b>Tom & Jerry</b>"


def test_template_syntax_error():
    assert template_syntax_error("{{ ok }}") is None
    problem = template_syntax_error("첫 줄\n{% for x in items %}\n{{ x }")
    assert problem is not None and problem.startswith("line ")
    assert template_syntax_error("{{ x|nope }}") == "line 1: No filter named 'nope'."


def test_sandbox_refuses_unsafe_access():
    with pytest.raises(JobFailed, match="template failed"):
        render_text("{{ x.__class__.__mro__[1].__subclasses__() }}", {"x": ""})


def test_default_template_is_packaged():
    assert "{{ job }}" in default_template("scrape")
    with pytest.raises(ValueError):
        default_template("../secrets")


def test_message_for_uses_the_default_template_and_outcome_link():
    outcome = Outcome(context={"items": ["김치찌개", "된장찌개"], "count": 2}, link=f"{DOMAIN}/menu")
    message = message_for(_job(), outcome, audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert message["object_type"] == "text"
    assert message["text"].splitlines() == ["📋 menu (2건)", "• 김치찌개", "• 된장찌개"]
    assert message["link"]["web_url"] == f"{DOMAIN}/menu"
    assert message["button_title"] == "자세히 보기"


def test_message_for_custom_template_sees_audience_and_falls_back_to_default_link():
    job = _job("{{ job }} for {{ audience }}: {{ count }}")
    message = message_for(job, Outcome(context={"count": 3}), audience="friend", web_domain=DOMAIN, default_link=f"{DOMAIN}/x")
    assert message["text"] == "menu for friend: 3"
    assert message["link"]["web_url"] == f"{DOMAIN}/x"


def test_message_for_trims_long_text_and_never_sends_empty_text():
    long = message_for(_job("{{ 'ㅋ' * 500 }}"), Outcome(), audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert len(long["text"]) == 200
    empty = message_for(_job("{% if false %}x{% endif %}"), Outcome(), audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert empty["text"] == "📋 menu"
