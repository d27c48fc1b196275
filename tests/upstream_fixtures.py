"""Recorded Kakao and Shopify answers (JSON files under tests/fixtures/), loaded for the tests, and the
shape two answers must share when their values are random."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> Any:
    """tests/fixtures/<name> as a Python object, e.g. load_fixture("kakao/token.json")."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def shape(value: Any) -> Any:
    """Keys and value types, recursively: what must match when values are random."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__
