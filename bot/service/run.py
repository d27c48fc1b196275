"""`run`: the long-running service — HTTP server (waitress, threads) and background workers.

    code = run_service(app)                       # until SIGTERM/SIGINT (main thread only)
    code = run_service(app, ready=..., stop_event=event)   # tests, embedding: until event is set

Start: BOT_SECRET_KEY is checked, migrations applied (in a child process: Alembic never enters this
one; bot.store.migrate_child), the Flask app built, the socket bound on `[server] listen` (loopback by
default), the webhook workers started, the scheduler started
(bot.service.scheduler: it first catches up on slots missed while down); then `ready()` is called.
Stop (a signal or `stop_event`): the socket stops accepting, requests in flight get up to
DRAIN_TIMEOUT to finish (the scheduler is stopped first: no new runs), idle connections are
closed, the workers are stopped; returns 0.
A second SIGTERM/SIGINT while stopping exits the process at once.
Under systemd (Type=notify, bot.service.systemd): READY=1 once serving, WATCHDOG=1 every WatchdogSec/2,
STOPPING=1 when a stop begins; outside systemd these are no-ops.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Callable

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer
from waitress.trigger import trigger as Trigger

from bot.app import App
from bot.delivery.alert_start import mark_jobs_seen
from bot.connect.shopify_install import shop_graphql
from bot.connect.webhook_needs import sync_all
from bot.delivery.alerts import alert_jobs
from bot.delivery.problems import CHECK_EVERY, ProblemReporter, run_health_checks
from bot.delivery.sweep import SWEEP_EVERY, sweep
from bot.service.scheduler import BotScheduler
from bot.service.systemd import Notifier
from bot.shopify.versions import warn_if_ending
from bot.util.native_memory import limit_arenas
from bot.web.health import ServiceState, attach_service_state
from bot.web.http_limits import Sweeper, guard, raise_open_file_limit, server_options, watch_with_poll
from bot.web.server import MAX_BODY_BYTES, create_app
from bot.webhooks.reconcile import INTERVAL as RECONCILE_EVERY
from bot.webhooks.reconcile import Reconciler
from bot.webhooks.refund_alerts import refund_jobs
from bot.webhooks.unfulfilled import CHECK_EVERY as UNFULFILLED_EVERY
from bot.webhooks.unfulfilled import UnfulfilledCheck, unfulfilled_jobs
from bot.webhooks.worker import WebhookWorker, start_background
from tokens.login_health import UNDECRYPTABLE, unreadable_tokens

log = logging.getLogger("bot.service")

THREADS = 8
DRAIN_TIMEOUT = 5.0  # seconds requests in flight may take to finish once stopping
WORKER_STOP_TIMEOUT = 10.0  # seconds each background worker gets to stop
POLL_TIMEOUT = 1.0  # the event loop's select() timeout; a stop wakes it at once anyway
STATUS_EVERY = 60.0  # seconds between systemd STATUS= updates (the next slot)
# waitress buffers a whole body before the app sees it: this hard cap bounds that buffer. The app
# itself refuses anything over MAX_BODY_BYTES with a JSON 413; beyond this cap waitress answers
# a plain-text 413 without reading the body.
HARD_BODY_CAP = 2 * MAX_BODY_BYTES


def run_service(app: App, *, ready: Callable[[], None] | None = None,
                stop_event: threading.Event | None = None, notifier: Notifier | None = None) -> int:
    """Serve until SIGTERM/SIGINT or `stop_event`; 0 after a clean stop, 1 if serving failed."""
    stop = stop_event if stop_event is not None else threading.Event()
    notifier = notifier if notifier is not None else Notifier.from_environ()
    limit_arenas()  # before the threads below make arenas of their own (bot.util.native_memory)
    app.vault  # noqa: B018 - no BOT_SECRET_KEY, no service: fail now (VaultError), not at the first login
    app.db.migrate(in_child=True)  # Alembic in a child process: never in the service's memory
    warn_if_ending(app.config.shopify.api_version, app.clock(), app.config.path)
    _report_unreadable_tokens(app)
    flask_app = create_app(app)
    state = ServiceState()  # /healthz reads the scheduler and the workers from here (bot.web.health)
    attach_service_state(flask_app, state)
    host, port = app.config.server.host, app.config.server.port
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise_open_file_limit()
    try:
        # Connection limits and timeouts (bot.web.http_limits): idle and slow clients cannot starve real ones.
        server = waitress.create_server(flask_app, host=host, port=port, threads=THREADS, ident=None,
                                        **server_options(HARD_BODY_CAP))
    except OSError as exc:
        log.error("cannot listen on %s ([server] listen): %s", where, exc.strerror or exc)
        return 1
    guard(server)
    loop = _Loop(server)
    loop.start()
    workers: list[WebhookWorker] = []
    scheduler: BotScheduler | None = None
    restore = _install_signal_handlers(stop)
    try:
        workers = state.workers = list(start_background(app) or [])
        # Catches up on slots missed while down, then schedules; a SIGTERM meanwhile cuts a fan-out short.
        scheduler = state.scheduler = _start_scheduler(app, stopping=stop)
        log.info("listening on http://%s (public URL %s)", _listen_text(server, where),
                 app.config.server.public_url)
        if ready is not None:
            ready()
        _tell_systemd(notifier, scheduler)
        while not stop.wait(0.5):
            if not loop.alive():
                log.error("the HTTP server stopped unexpectedly")
                return 1
        log.info("stopping")
        return 0
    finally:
        notifier.stopping()
        if scheduler is not None:  # no new runs while the server drains; runs in progress get a bounded wait
            try:
                scheduler.stop(WORKER_STOP_TIMEOUT)
            except Exception:  # noqa: BLE001 - the server and the workers must still be stopped
                log.exception("stopping the scheduler failed")
        loop.stop(DRAIN_TIMEOUT)
        for worker in workers:
            try:
                worker.stop(WORKER_STOP_TIMEOUT)
            except Exception:  # noqa: BLE001 - the others must still be stopped
                log.exception("stopping background worker %r failed", worker)
        restore()
        log.info("stopped")


def _report_unreadable_tokens(app: App) -> None:
    """A valid BOT_SECRET_KEY that did not encrypt the stored tokens: said at start, by name (every send
    with them would fail); the service still runs for the others, and /healthz answers 503 meanwhile."""

    for what in unreadable_tokens(app.db, app.vault):
        log.error("%s needs a person: %s", what, UNDECRYPTABLE)


def _tell_systemd(notifier: Notifier, scheduler: BotScheduler) -> None:
    """READY=1 (migrated, listening, workers and scheduler running) with the next slot as STATUS=; then
    WATCHDOG=1 and a fresh STATUS= from scheduler jobs, so that a wedged scheduler stops the pings."""
    if not notifier.enabled:
        return

    def status() -> str:
        try:
            return next_slot_text(scheduler)
        except Exception:  # noqa: BLE001 - READY=1 must go out whatever the status text does
            log.exception("cannot tell the next slot")
            return "running"

    notifier.ready(status())
    if notifier.watchdog_interval is not None:
        scheduler.every("systemd-watchdog", notifier.watchdog_interval, notifier.watchdog)
    scheduler.every("systemd-status", STATUS_EVERY, lambda: notifier.status(status()))


def _start_scheduler(app: App, *, stopping: threading.Event | None = None) -> BotScheduler:
    """The job scheduler (bot.service.scheduler.BotScheduler) with the housekeeping jobs on it — health checks
    (bot.delivery.problems) and the order reconciliation (bot.webhooks.reconcile) — started. `stopping`: set at SIGTERM, it
    cuts a fan-out in progress short (the Kakao call in flight finishes and is recorded; the rest is left
    for a re-run)."""
    scheduler = BotScheduler(app, stopping=stopping)
    for register in (register_checks, register_reconciliation, register_unfulfilled_checks,
                     register_delivery_sweep, register_subscription_sync):
        try:
            register(app, scheduler)
        except Exception:  # noqa: BLE001 - the jobs must run even if a housekeeping job cannot
            log.exception("registering %s failed", register.__name__)
    scheduler.start()
    return scheduler


def register_checks(app: App, scheduler: BotScheduler) -> None:
    """The health checks (bot.delivery.problems) at once and then every CHECK_EVERY seconds."""
    reporter = ProblemReporter(app)
    # run_now: /healthz lists the problems from the start; a restart re-tells nothing (once per episode).
    scheduler.every("health-checks", CHECK_EVERY, lambda: run_health_checks(reporter), run_now=True)


def register_reconciliation(app: App, scheduler: BotScheduler,
                            interval: float = RECONCILE_EVERY) -> Reconciler | None:
    """The order reconciliation (bot.webhooks.reconcile) at once and then every `interval` seconds (one pass
    at a time, errors logged, waited for at stop); None, and nothing scheduled, when no `shopify-order-alert`
    job is configured."""
    if not alert_jobs(app) and not refund_jobs(app):
        return None
    mark_jobs_seen(app, app.clock())  # before the first pass and before any webhook is handled
    reconciler = Reconciler(app, stopping=scheduler.stopping)
    scheduler.every("order-reconciliation", interval, reconciler.run_once, run_now=True)
    return reconciler


SUBSCRIPTIONS_EVERY = 6 * 3600.0


def register_subscription_sync(app: App, scheduler: BotScheduler) -> None:
    """At start (and every SUBSCRIPTIONS_EVERY seconds, in case a subscription was removed by Shopify after
    failures): each connected shop's webhook subscriptions follow the configured jobs
    (bot.connect.webhook_needs) — missing ones made, ours nobody needs deleted; scopes they lack named."""
    if not app.config.shopify.apps:
        return
    scheduler.every("webhook-subscriptions", SUBSCRIPTIONS_EVERY,
                    lambda: sync_all(app, lambda shop, app_name: shop_graphql(app, shop, app_name)), run_now=True)


def register_unfulfilled_checks(app: App, scheduler: BotScheduler,
                                interval: float = UNFULFILLED_EVERY) -> UnfulfilledCheck | None:
    """The unfulfilled-orders check (bot.webhooks.unfulfilled) at once and then every `interval` seconds; None,
    and nothing scheduled, when no `shopify-unfulfilled-alert` job is configured."""
    if not unfulfilled_jobs(app):
        return None
    check = UnfulfilledCheck(app, stopping=scheduler.stopping)
    scheduler.every("unfulfilled-orders", interval, check.run_once, run_now=True)
    return check


def register_delivery_sweep(app: App, scheduler: BotScheduler) -> None:
    """The deliveries sweep (bot.delivery.sweep) at once and every SWEEP_EVERY seconds; the scheduler
    (BotScheduler.every) logs a failing round (database still down) and tries again at the next."""
    scheduler.every("delivery-sweep", SWEEP_EVERY, lambda: sweep(app), run_now=True)


def next_slot_text(scheduler: BotScheduler) -> str:
    """The soonest scheduled run, for systemd STATUS=: "next: orders at 2026-11-23 08:00 KST"."""
    runs = [item for item in scheduler.next_runs() if item.next_run is not None]
    if not runs:
        return "next: no scheduled jobs"
    soonest = min(runs, key=lambda item: (item.next_run.timestamp(), item.name))
    together = [item.name for item in runs if item.next_run == soonest.next_run]
    return f"next: {', '.join(together)} at {soonest.next_run:%Y-%m-%d %H:%M %Z}"


def _listen_text(server: BaseWSGIServer | MultiSocketServer, fallback: str) -> str:
    listening = getattr(server, "effective_listen", None)
    if listening is None and hasattr(server, "effective_port"):
        listening = [(server.effective_host, server.effective_port)]
    if not listening:
        return fallback
    return ", ".join(f"[{h}]:{p}" if ":" in str(h) else f"{h}:{p}" for h, p in listening)


class _Loop:
    """waitress's event loop in a thread of its own, with a stop that drains instead of dropping."""

    def __init__(self, server: BaseWSGIServer | MultiSocketServer):
        self.server = server
        self.map: dict = server.map if hasattr(server, "map") else server._map
        self.dispatcher = server.task_dispatcher
        self._stopping = threading.Event()
        self._drain_timeout = DRAIN_TIMEOUT
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)
        self._sweep = Sweeper()

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, drain_timeout: float) -> None:
        """Stop accepting, let requests in flight finish (bounded), close everything; idempotent."""
        self._drain_timeout = drain_timeout
        self._stopping.set()
        self._wake()
        self._thread.join(drain_timeout + 5.0)
        if self._thread.is_alive():
            log.warning("the HTTP server did not stop within %.0f s", drain_timeout + 5.0)

    def _wake(self) -> None:
        for dispatcher in list(self.map.values()):
            if isinstance(dispatcher, Trigger):
                try:
                    dispatcher.pull_trigger()
                except OSError:
                    pass
                return

    def _run(self) -> None:
        try:
            while not self._stopping.is_set() and self.map:
                wasyncore.loop(timeout=POLL_TIMEOUT, map=self.map, use_poll=watch_with_poll(self.map), count=1)
                self._sweep(self.map)
        except Exception:  # noqa: BLE001 - reported; run_service notices the thread is gone
            log.exception("HTTP server loop failed")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        # In the loop's own thread, so nothing else touches the socket map meanwhile.
        for dispatcher in list(self.map.values()):
            if isinstance(dispatcher, BaseWSGIServer):
                wasyncore.dispatcher.close(dispatcher)  # the listening socket only
        deadline = time.monotonic() + self._drain_timeout
        try:
            while time.monotonic() < deadline and self._busy():
                wasyncore.loop(timeout=0.05, map=self.map, use_poll=watch_with_poll(self.map), count=1)
        except Exception:  # noqa: BLE001
            log.exception("HTTP server loop failed while draining")
        if self._busy():
            log.warning("closing connections with requests still in flight")
        self.dispatcher.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        wasyncore.close_all(self.map)

    def _busy(self) -> bool:
        return any(isinstance(channel, HTTPChannel) and (channel.requests or channel.total_outbufs_len)
                   for channel in list(self.map.values()))


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set `stop`; a second one exits at once. Only the main thread may do this."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    signals = [signal.SIGTERM, signal.SIGINT]
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os.write(2, f"second {signal.Signals(signum).name}: exiting at once\n".encode())
            os._exit(128 + signum)
        stop.set()

    for signum in signals:
        signal.signal(signum, handle)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    return restore
