"""URL helpers: `host:port` of a URL, for messages about an upstream that could not be reached, and
whether two URLs share an origin (a message link must be on the Kakao app's registered web domain).

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


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port (default ports filled in); a malformed port never matches."""
    pa, pb = urlsplit(a), urlsplit(b)
    try:
        port_a = pa.port or _DEFAULT_PORTS.get(pa.scheme)
        port_b = pb.port or _DEFAULT_PORTS.get(pb.scheme)
    except ValueError:
        return False
    return (
        pa.scheme.lower() == pb.scheme.lower()
        and (pa.hostname or "") == (pb.hostname or "")  # .hostname is already lower-case
        and port_a == port_b
    )
