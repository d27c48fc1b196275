"""What a route reaches the bot through (the role of Flask's globals.py): the App of the Flask
app handling the request, and the JSON error body every 4xx/5xx of the server has."""

from __future__ import annotations

import re

from flask import Response, current_app, jsonify

from bot.app import App


def bot_app() -> App:
    """The bot App of the Flask app handling this request."""
    return current_app.extensions["bot"]


def error_response(status: int, error: str, message: str) -> Response:
    """The JSON error body every 4xx/5xx of this server has."""
    response = jsonify(error=error, message=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def printable(value: str, limit: int) -> str:
    """`value` safe for one log line or message: control and non-ASCII characters as "?", cut at `limit`."""
    value = re.sub(r"[^\x21-\x7e]", "?", value)
    return value if len(value) <= limit else value[:limit] + "…"
