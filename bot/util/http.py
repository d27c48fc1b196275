"""The one way a `requests` session is made: every upstream call carries the bot's User-Agent."""

from __future__ import annotations

import requests

from bot import __version__

USER_AGENT = f"kakao-shopify-bot/{__version__} (+python-requests)"


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session
