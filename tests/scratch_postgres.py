"""A PostgreSQL database of the tests' own: created with a random name on the server that
BOT_TEST_POSTGRES_URL names, dropped afterwards. The database in that URL is only connected to
(to create and drop the scratch one); nothing in it is ever read, changed or dropped, so pointing
the tests at a server that also holds the bot's real database is safe."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PREFIX = "kakao_bot_test_"


def postgres_server_url() -> str:
    """BOT_TEST_POSTGRES_URL: the server the PostgreSQL tests make their databases on. CI sets it,
    so there they never skip."""
    url = os.environ.get("BOT_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: set BOT_TEST_POSTGRES_URL")
        pytest.skip("BOT_TEST_POSTGRES_URL not set")
    return url


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the server of `server_url`; it is dropped on exit."""
    name = PREFIX + secrets.token_hex(6)
    url = make_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                # FORCE (PostgreSQL 13+): a connection a failed test left open must not keep it alive.
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
