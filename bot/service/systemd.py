"""systemd's notify protocol (sd_notify), without a dependency: one datagram per message.

    notifier = Notifier.from_environ()
    notifier.ready("next: noon 12:00")     # READY=1 + STATUS=…
    notifier.watchdog()                    # WATCHDOG=1, every notifier.watchdog_interval seconds
    notifier.stopping()                    # STOPPING=1

Outside systemd (no $NOTIFY_SOCKET) every call is a no-op returning False. A failed send
never raises: the service must not die because its supervisor's socket went away; the
first failure is logged, later ones are not (the watchdog would repeat it every few seconds).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None, *, watchdog_usec: str | None = None, watchdog_pid: str | None = None):
        self.address = address or None
        self._watchdog_usec, self._watchdog_pid = watchdog_usec, watchdog_pid
        self._lock = threading.Lock()
        self._complained = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Notifier":
        return cls(environ.get("NOTIFY_SOCKET"), watchdog_usec=environ.get("WATCHDOG_USEC"),
                   watchdog_pid=environ.get("WATCHDOG_PID"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is asked for."""
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            if not self._watchdog_pid.strip().isdigit() or int(self._watchdog_pid) != os.getpid():
                return None  # the watchdog is meant for another process (e.g. our parent)
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def notify(self, *lines: str) -> bool:
        """Send the lines ("READY=1", "STATUS=…") as one datagram; True when it was sent."""
        if not self.address or not lines:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, target)
            return True
        except (OSError, ValueError) as exc:
            with self._lock:
                first, self._complained = not self._complained, True
            if first:
                log.warning("cannot notify systemd at $NOTIFY_SOCKET %s: %s (further failures not logged)",
                            self.address, exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = "stopping") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def __repr__(self) -> str:
        return f"Notifier({self.address!r}, watchdog_interval={self.watchdog_interval})"
