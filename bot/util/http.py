"""The one way a `requests` session is made: every upstream call carries the bot's User-Agent, and the
environment's proxy and CA-bundle settings are read once per host instead of on every request.

`requests` looks at the environment on every call it sends (`HTTPS_PROXY`, `NO_PROXY`,
`REQUESTS_CA_BUNDLE` and a read of ~/.netrc): about 1.5 ms of CPU per Kakao call, more than the
rest of the client. The service's environment does not change while it runs, so `UpstreamSession`
reads the proxies and CA bundle for a scheme and host the first time and keeps them. ~/.netrc is
never used: its Basic credentials would replace the bearer or token header the clients set.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies

from bot import __version__

USER_AGENT = f"kakao-shopify-bot/{__version__} (+python-requests)"


class UpstreamSession(requests.Session):
    """A Session whose environment settings are read once per (scheme, host, no_proxy)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # requests' per-call reads (and ~/.netrc) off: merge_environment_settings below
        self.headers["User-Agent"] = USER_AGENT
        self._environment: dict[tuple[str, str, str | None], tuple[dict[str, str], str | None]] = {}

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        proxies = dict(proxies or {})
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, proxies.get("no_proxy"))
        found = self._environment.get(key)
        if found is None:
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = self._environment[key] = (get_environ_proxies(url, no_proxy=key[2]), ca_bundle)
        environ_proxies, ca_bundle = found
        for scheme, proxy in environ_proxies.items():
            proxies.setdefault(scheme, proxy)
        if ca_bundle and (verify is True or verify is None):
            verify = ca_bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def new_session() -> requests.Session:
    return UpstreamSession()
