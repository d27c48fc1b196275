"""The WSGI app for another server: `gunicorn bot.wsgi:application`.

Importing this module (and only this module) loads the config (`$BOT_CONFIG`, else
./config.toml), the secrets (environment, .env beside the config, $CREDENTIALS_DIRECTORY),
applies migrations and builds the Flask app. A bad config raises at import, with the key
and the reason, so the server refuses to start.

Only the HTTP routes run here: webhooks are stored and answered, but the background workers
that process them (and the scheduler) are started by `python -m bot run` — keep one `run`
instance on the same database when serving through gunicorn.
"""

from __future__ import annotations

import logging

from flask import Flask

from bot.app import App, load_config
from bot.config.model import default_config_path
from bot.config.secrets import Secrets
from bot.util.logs import setup_logging
from bot.util.redaction import Redactor
from bot.web.server import create_app


def _load() -> Flask:
    redactor = Redactor()
    if not logging.getLogger().handlers:  # a server that configured logging keeps its own
        setup_logging(scrub=redactor.scrub)
    path = default_config_path()
    config = load_config(path, require_file=True)  # never defaults: they would create ./data
    for warning in config.warnings:
        logging.getLogger("bot").warning("%s: %s", path, warning)
    app = App(config, Secrets.load(config.base_dir), redactor=redactor)
    app.vault  # noqa: B018 - no BOT_SECRET_KEY, no server
    app.db.migrate(in_child=True)  # Alembic in a child process: never in the server's memory
    return create_app(app)


application = _load()
