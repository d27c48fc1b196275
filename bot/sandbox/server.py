"""Run a WSGI app (a sandbox stand-in) on a real local port, in a background thread.

Tests, benchmarks and `demo` point the bot's real HTTP clients at these servers, so the
code under test goes through sockets, headers and timeouts exactly as in production.

    with serve(KakaoSandbox().app) as server:
        requests.get(server.url + "/v1/user/access_token_info")
"""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    # One access-log line per request would drown the demo's own output and test logs;
    # errors are still reported through log_error.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class RunningServer:
    """A started server: `.url`, `.port`, `.close()`; also a context manager."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread):
        self._server = server
        self._thread = thread
        self._closed = False
        self._close_lock = threading.Lock()
        self.host: str = server.host
        self.port: int = server.port
        self.url: str = f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop accepting requests and wait for the serving thread; safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}{' closed' if self._closed else ''}>"


def serve(wsgi_app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `wsgi_app` on host:port (port 0 = any free port) until `.close()`."""
    # threaded=True: a client under test may hold one request open (hang_next, a long
    # poll) while making another; request threads are daemons, so close() never waits
    # on a request that is still sleeping.
    try:
        server = make_server(host, port, wsgi_app, threaded=True, request_handler=_QuietHandler)
    except SystemExit as exc:
        # werkzeug prints the reason and exits the process when the port is busy; a helper
        # used inside tests and the CLI must raise instead.
        raise OSError(f"cannot listen on {host}:{port}") from exc
    # A short poll interval: close() waits up to one interval, and tests start many servers.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"sandbox-server-{server.port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(server, thread)
