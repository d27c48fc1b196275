"""Memory the service frees, given back to the system (glibc malloc).

CPython hands objects larger than 512 bytes, and C libraries (SQLite, libpq, OpenSSL) all they
allocate, to malloc. glibc keeps what is freed for reuse, in one arena per thread that allocated
(up to 8 per core): `run` allocates from waitress's request threads, the webhook workers and the
scheduler's threads, so each slot run or burst of webhooks leaves free chunks scattered over
several arenas, and the resident size drifts upwards although nothing is kept (bench/idle.py's
growth runs: a +1 MB per 1,000 slot runs that `malloc_trim` gives back).

- `limit_arenas()`, at the start of `run`: at most ARENAS arenas, so threads share the free
  chunks. MALLOC_ARENA_MAX in the environment would do the same, but glibc reads it when the
  process starts: too early for anything `run` decides, and easy to lose from a unit file.
- `trim()`, after each slot run: returns the free pages of every arena (malloc_trim(0)), not only
  those at the top of the main heap that glibc returns by itself.

Elsewhere (musl, macOS) both do nothing and say so (False).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

M_ARENA_MAX = -8  # glibc's <malloc.h>
ARENAS = 2


@lru_cache(maxsize=1)
def _glibc() -> Any:
    """The C library of this process if it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` (arenas already made stay); True if glibc took it."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system; True if there were any."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
