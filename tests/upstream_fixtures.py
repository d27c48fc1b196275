"""Recorded Kakao and Shopify answers (JSON files under tests/fixtures/), loaded for the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> Any:
    """tests/fixtures/<name> as a Python object, e.g. load_fixture("kakao/token.json")."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
