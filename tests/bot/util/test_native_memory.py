"""bot.util.native_memory: glibc gives what the service freed back to the system. Checked in a python of
its own, whose heap holds nothing but what the check allocates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.util import native_memory

ROOT = Path(__file__).resolve().parents[3]
GLIBC = native_memory._glibc() is not None  # noqa: SLF001 - which libc this test runs on

FREE_THEN_TRIM = """
from bot.util.native_memory import trim

def rss_mb():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]) / 1024

chunks = [bytes(1024) for _ in range(40_000)]  # 40 MB from malloc (over pymalloc's 512 bytes)
fence = [bytes(1024) for _ in range(100)]  # allocated last: the freed space is not at the heap's top
del chunks
freed = rss_mb()
trimmed = trim()
print(trimmed, freed - rss_mb())
"""


@pytest.mark.skipif(not GLIBC, reason="glibc only (elsewhere trim() does nothing)")
def test_trim_gives_memory_freed_inside_the_heap_back():
    done = subprocess.run([sys.executable, "-c", FREE_THEN_TRIM], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    trimmed, given_back_mb = done.stdout.split()
    assert trimmed == "True"
    assert float(given_back_mb) > 30  # of the 40 MB freed, which glibc alone keeps


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_glibc_takes_the_arena_limit():
    assert native_memory.limit_arenas() is True


def test_without_glibc_both_do_nothing(monkeypatch):
    monkeypatch.setattr(native_memory, "_glibc", lambda: None)
    assert native_memory.limit_arenas() is False
    assert native_memory.trim() is False
