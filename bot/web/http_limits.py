"""How `run`'s HTTP server (waitress) sizes and times out connections, so that idle, slow-header
and slow-body clients cannot starve real ones.

waitress's defaults let 100 connections in (`connection_limit`) and keep an idle one for 120 s
(`channel_timeout`): 105 idle TCP connections that never sent a byte made `/healthz` and the
webhook route time out for as long as they stayed open, while Shopify waits 5 s. Here:

- CONNECTION_LIMIT connections (waitress answers none beyond it; they wait in the listen backlog),
  watched with select() while every descriptor is below FD_SETSIZE, with poll() once one is not
  (`watch_with_poll`);
- a connection with nothing to do (no request, or idle keep-alive) is closed after IDLE_TIMEOUT;
- a request must arrive whole — headers and body — within REQUEST_DEADLINE of its first byte,
  however steadily it trickles (waitress's own timeout restarts at every byte): `sweep` closes
  the others;
- headers are capped at MAX_HEADER_BYTES; the body cap is the caller's (`server_options`).

Nothing here occupies a worker thread: waitress hands a request to a thread only once it is
complete, so slow clients cost a socket each, never a thread. The process's open-file limit is
raised (soft up to hard) when it is too low for CONNECTION_LIMIT.
"""

from __future__ import annotations

import logging
import resource
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

log = logging.getLogger(__name__)

CONNECTION_LIMIT = 2000
IDLE_TIMEOUT = 10.0  # seconds a connection may sit with nothing to do
REQUEST_DEADLINE = 10.0  # seconds from a request's first byte to its last
CLEANUP_INTERVAL = 1  # seconds between waitress's idle checks (it takes whole seconds)
SWEEP_EVERY = 0.5  # seconds between checks for requests past their deadline
MAX_HEADER_BYTES = 64 * 1024
SPARE_FILES = 200  # descriptors besides the connections: database, logs, outbound HTTPS, temp files
FD_SETSIZE = 1024  # select() cannot watch a descriptor at or above this


def server_options(max_body_bytes: int) -> dict[str, Any]:
    """Keyword arguments for `waitress.create_server`: the limits above."""
    return dict(connection_limit=CONNECTION_LIMIT, channel_timeout=int(IDLE_TIMEOUT) or 1,
                cleanup_interval=CLEANUP_INTERVAL, max_request_header_size=MAX_HEADER_BYTES,
                max_request_body_size=max_body_bytes,
                # waitress would drop X-Forwarded-For & co. unseen; /healthz and the install rate limit
                # must see them to know a loopback peer is a proxy (nothing else trusts them).
                clear_untrusted_proxy_headers=False)


def raise_open_file_limit(needed: int = CONNECTION_LIMIT + SPARE_FILES) -> int:
    """Raise the soft RLIMIT_NOFILE towards `needed` (never above the hard limit); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        if soft < needed:
            log.warning("the open-file limit (%d) is below the %d the HTTP server may need: raise LimitNOFILE",
                        soft, needed)
    return soft


def watch_with_poll(socket_map: dict[int, Any]) -> bool:
    """True when the event loop must use poll(): a descriptor of `socket_map` is beyond select()'s reach.

    Otherwise select(): on 2 cores, 8 keep-alive connections, this app on a plain waitress answered signed
    webhooks at 390-440 requests/s with waitress's poll() loop and 560-760 with its select() loop, so poll()
    is kept for when it is needed.
    """
    return max(socket_map, default=0) >= FD_SETSIZE


class GuardedChannel(HTTPChannel):
    """waitress's channel, noting when the request being received began (see `sweep`)."""

    request_began: float | None = None

    def received(self, data: bytes) -> bool:
        if data and self.request is None:
            self.request_began = time.monotonic()
        return super().received(data)


def guard(server: BaseWSGIServer | MultiSocketServer) -> None:
    """Make the listening server(s) of `waitress.create_server` accept GuardedChannels."""
    servers = [server] if isinstance(server, BaseWSGIServer) else [
        dispatcher for dispatcher in getattr(server, "map", {}).values() if isinstance(dispatcher, BaseWSGIServer)]
    for listening in servers:
        listening.channel_class = GuardedChannel


class Sweeper:
    """Closes connections whose request is still arriving REQUEST_DEADLINE after its first byte.
    Called from the event loop's own thread (waitress's socket map is not thread-safe)."""

    def __init__(self) -> None:
        self._next = 0.0

    def __call__(self, socket_map: dict) -> int:
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + SWEEP_EVERY
        cut = 0
        for channel in list(socket_map.values()):
            if (isinstance(channel, GuardedChannel) and channel.request is not None and not channel.requests
                    and not channel.will_close and channel.request_began is not None
                    and now - channel.request_began > REQUEST_DEADLINE):
                channel.will_close = True  # waitress's own way: closed at the loop's next pass
                cut += 1
        if cut:
            log.warning("closed %d connection(s) whose request did not arrive within %.0f s", cut, REQUEST_DEADLINE)
        return cut
