"""`host:port` of a URL, for messages about an upstream that could not be reached.

"cannot reach Kakao" alone leaves a person guessing whether a proxy, a stand-in or a typo in
`[kakao].api_url` was tried; the host and port (never the path or query: codes travel there) say it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_port(url: str) -> str:
    """`https://kapi.kakao.com/v1/…` → `kapi.kakao.com:443`; an IPv6 host in brackets."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number: show the authority as written
        return parts.netloc or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host
