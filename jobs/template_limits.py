"""Bounds on what a job's template may compute, so that rendering one cannot hang the service.

Jinja's sandbox stops a template from reaching unsafe attributes, not from computing for ever:
`{{ 10 ** (job|length * 30000000) }}` held the GIL for minutes and froze every thread of `run`.
`BoundedEnvironment` (a SandboxedEnvironment) adds, per render (`with render_budget(): …`):

- arithmetic: `**` and `*` of integers whose result would exceed MAX_INT_BITS, and `*` / `+`
  building a string or list longer than MAX_LENGTH, are refused before Python computes them;
- string formatting (`%`, `|format`, `str.format`, `|center`) with a width above MAX_LENGTH;
- `range()` is limited to MAX_RANGE items;
- steps: every loop iteration and every call (macros, functions, `loop()`) spends one of
  MAX_STEPS, so nested loops or recursive macros end instead of running for ever;
- output: rendering stops once the text exceeds MAX_OUTPUT characters.

Each refusal raises TemplateTooCostly (a jinja2 SecurityError) naming the bound; the caller
(jobs.render) turns it into a failed job with that message. Far above anything a KakaoTalk
message (at most a few hundred characters, a few dozen orders) needs.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterable, Iterator

from jinja2 import nodes
from jinja2.filters import do_center, do_format
from jinja2.sandbox import SandboxedEnvironment, SecurityError

MAX_INT_BITS = 4096  # about 1,230 decimal digits
MAX_LENGTH = 100_000  # characters of a string, items of a list, a formatting width
MAX_RANGE = 10_000
MAX_STEPS = 200_000  # loop iterations plus calls, per render
MAX_OUTPUT = 200_000  # characters of rendered text

# Widths and precisions in %-style ("%09999999d", "%.*f") and {}-style ("{:>99999999}") specs.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_NUMBER = re.compile(r"\d+")

_steps: ContextVar[list[int] | None] = ContextVar("template_steps", default=None)


class TemplateTooCostly(SecurityError):
    """A template tried to compute more than the bounds allow."""


@contextmanager
def render_budget(steps: int = MAX_STEPS) -> Iterator[None]:
    """Give the renders in this block (this thread or task) `steps` loop iterations and calls in total."""
    token = _steps.set([steps])
    try:
        yield
    finally:
        _steps.reset(token)


def spend(steps: int = 1) -> None:
    """Spend steps of the current budget; TemplateTooCostly once it is used up (no budget: no limit)."""
    box = _steps.get()
    if box is None:
        return
    box[0] -= steps
    if box[0] < 0:
        raise TemplateTooCostly(f"the template ran more than {MAX_STEPS:,} loop steps and calls")


def bounded_output(chunks: Iterable[str]) -> str:
    """Join rendered chunks, stopping once they exceed MAX_OUTPUT characters."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TemplateTooCostly(f"the template's output is longer than {MAX_OUTPUT:,} characters")
        parts.append(chunk)
    return "".join(parts)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` if its result would be out of bounds (before computing it)."""
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if abs(left).bit_length() * right > MAX_INT_BITS:
            raise TemplateTooCostly(f"{_short(left)} ** {_short(right)} is larger than {MAX_INT_BITS} bits")
    elif operator == "*":
        if _is_int(left) and _is_int(right):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise TemplateTooCostly(f"a product larger than {MAX_INT_BITS} bits")
        elif _is_sized(left) and _is_int(right) or _is_sized(right) and _is_int(left):
            sequence, times = (left, right) if _is_sized(left) else (right, left)
            if len(sequence) * times > MAX_LENGTH:
                raise TemplateTooCostly(f"repeating {len(sequence):,} items {_short(times)} times is longer "
                                        f"than {MAX_LENGTH:,}")
    elif operator == "+" and _is_sized(left) and _is_sized(right):
        if len(left) + len(right) > MAX_LENGTH:
            raise TemplateTooCostly(f"joining to more than {MAX_LENGTH:,} characters or items")
    elif operator == "%" and isinstance(left, str):
        check_format(left)


def check_format(spec: str) -> None:
    """Refuse a format string whose widths or precisions exceed MAX_LENGTH (or are given by `*`)."""
    numbers = [group for match in _PERCENT_SPEC.finditer(spec) for group in match.groups() if group]
    numbers += [number for match in _BRACE_SPEC.finditer(spec) for number in _NUMBER.findall(match.group(1))]
    for number in numbers:
        if number == "*" or len(number) > 6 or int(number) > MAX_LENGTH:
            raise TemplateTooCostly(f"a formatting width or precision above {MAX_LENGTH:,}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _is_sized(value: Any) -> bool:
    return isinstance(value, (str, list, tuple, bytes))


def _short(number: int) -> str:
    text = str(number) if abs(number) < 10 ** 30 else f"a {number.bit_length()}-bit number"
    return text


def _bounded_center(value: str, width: int = 80) -> str:
    if _is_int(width) and width > MAX_LENGTH:
        raise TemplateTooCostly(f"center width above {MAX_LENGTH:,}")
    return do_center(value, width)


def _bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
    check_format(str(value))
    return do_format(value, *args, **kwargs)


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateTooCostly(f"range() of more than {MAX_RANGE:,} items")
    return numbers


class BoundedEnvironment(SandboxedEnvironment):
    """A SandboxedEnvironment whose templates cannot compute without bound (see the module doc)."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.globals["range"] = _bounded_range
        self.filters["center"] = _bounded_center
        self.filters["format"] = _bounded_format

    def compile(self, source: Any, name: str | None = None, filename: str | None = None,
                raw: bool = False, defer_init: bool = False) -> Any:
        # Every {% for %} iterates through steps(): the tree is changed before code is generated.
        tree = self.parse(source, name, filename) if isinstance(source, str) else source
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("steps"), [loop.iter], [], None, None,
                                   lineno=loop.lineno)
        return super().compile(tree, name, filename, raw, defer_init)

    @staticmethod
    def steps(iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            spend()
            yield item

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as Jinja's
        spend()
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            check_format(value.__self__)
        return wrapper
