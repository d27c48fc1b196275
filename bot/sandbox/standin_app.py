"""The Flask app of a stand-in: its routes from a table, and a hook that runs before every
handler to record the request, wait the stand-in's latency and play any scripted fault.

Each stand-in adds its own error handlers, since each upstream words its errors its own way.
"""

from __future__ import annotations

from typing import Callable

from flask import Flask, Response, request

from bot.sandbox.faults import Fault, FaultPlan
from bot.sandbox.recording import RequestLog

Route = tuple[str, str, Callable[..., Response]]  # (path rule, method, view)


def standin_app(import_name: str, routes: list[Route], requests: RequestLog, faults: FaultPlan,
                latency: Callable[[], float], answer: Callable[[Fault], Response]) -> Flask:
    """A Flask app serving `routes`; `latency()` is read per request, so tests may change it any time;
    `answer` turns a scripted fault into the upstream's response."""
    app = Flask(import_name)

    def before() -> Response | None:
        requests.record(request.method, request.path)
        fault = faults.play(request.path, latency())
        return answer(fault) if fault else None

    app.before_request(before)
    for path, method, view in routes:
        app.add_url_rule(path, view.__name__, view, methods=[method])
    return app
