"""The service's sweep of the deliveries table, every SWEEP_EVERY seconds.

A row left `sending` — its process died during the Kakao request, or the database went away
during it so its outcome was never written — used to stay so until a restart or a re-run of the
same slot. The sweep resolves it as `unknown` as soon as the database answers again
(bot.store.deliveries.DeliveryLog.resolve_stuck), and raises every `unknown` delivery not reported yet,
whichever path recorded it (bot.delivery.unknown_sends).
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.app import App
from bot.delivery.unknown_sends import report_unknown_sends

log = logging.getLogger(__name__)

SWEEP_EVERY = 60  # seconds


def sweep(app: App, now: datetime | None = None) -> list[int]:
    """One round: resolve the stuck `sending` rows, report the unknown sends; the ids resolved now."""
    resolved = app.deliveries.resolve_stuck()
    if resolved:
        log.warning("%d delivery row(s) left `sending` resolved as unknown (the message may have been "
                    "delivered): ids %s", len(resolved), ", ".join(map(str, resolved)))
    report_unknown_sends(app, now)
    return resolved
