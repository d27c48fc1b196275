"""Kakao's 30,000 messages a day per app, planned across every shop: one problem for the operator,
raised before a slot would run past it (when merchants' settings change, and at `run`'s start),
resolved once the plan fits again."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from bot.app import App
from bot.config.plan import app_quota_warning
from bot.delivery.problems import INFO, ProblemReporter

log = logging.getLogger(__name__)

KEY = "kakao-app-quota"


def check_app_quota(app: App) -> str | None:
    """Raise or resolve the app-wide quota problem for the jobs as they are now; the warning, if any."""
    warning = app_quota_warning(app.jobs(), app.config)
    reporter = ProblemReporter(app)
    try:
        if warning:
            reporter.raise_(KEY, warning, severity=INFO)
        else:
            reporter.resolve(KEY)
    except SQLAlchemyError as exc:  # a warning is best effort: the scheduler starts and syncs regardless
        log.error("the app-wide quota plan could not be recorded (%s)%s", type(exc).__name__,
                  f": {warning}" if warning else "")
    return warning
