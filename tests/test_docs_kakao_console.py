"""Issue 8 item 26 (Kakao): since 2025-12-03 Kakao's console keeps the redirect URI and web domain under the
app key ([Platform Key]) and message links under [Product Link]; the setup docs point there, not to the old
"Platform → Web" page (UPSTREAMS.md, Kakao console)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["README.md", "config.example.toml"])
def test_the_kakao_setup_names_the_console_places_of_2025_12_03(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert "[Platform Key]" in text and "[Product Link]" in text
    flat = re.sub(r"\s*\n\s*#?\s*", " ", text)  # lines wrapped in Markdown or TOML comments joined
    # The old place may be named only as what it was before the change.
    old_places = re.findall(r"(?:플랫폼|Platform) → Web", flat)
    assert len(re.findall(r"before 2025-12-03:? (?:it was under )?(?:플랫폼|Platform) → Web", flat)) == len(old_places)
