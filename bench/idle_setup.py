"""bench/idle.py's deployments: stand-ins in their own processes, a temporary config, VmRSS.

Light at import (the slot-run child imports it beside the bot it measures): the stand-ins' modules
are imported in their own processes.

`Standins` starts the Kakao stand-in (the owner and 4 friends, its daily caps lifted: the bot's own
QuotaBook is what binds) and the web page to scrape, each in a spawned process (bench/standin.py).
The stand-in's clock is the real one plus `Calendar` (a file both it and the slot-run child map): the
child moves the bot's clock and the stand-in's together, a day per run, so tokens age on both sides as
in service (an access token expired at every run, the refresh token rotated in its last month). The
calendar only moves forward (the stand-in's rate limits remember issuance instants): a login is stored,
and the next growth run starts, on the day the last one ended.
`Deployment` is one config + database + secrets: `prepare(login=True)` migrates it and stores a Kakao
login (in this process); `env(tree)` is the environment a `python -m bot` of checkout `tree` runs in.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import StandinProcess, free_port  # noqa: E402

JOB = "menu"
SHOP = "bench-shop.myshopify.com"
WEBHOOK_SECRET = "bench-webhook-secret"
FRIENDS = ["직원A", "직원B", "직원C", "직원D"]  # the stand-in's friends; the job sends to the first two
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID")

CONFIG = """\
[database]
url = "{db}"

[server]
listen = "127.0.0.1:{port}"

[delivery]
quota_reserve = 0

[kakao]
redirect_uri = "http://127.0.0.1:8080/kakao/callback"
auth_url = "{kakao}"
api_url = "{kakao}"
web_domain = "{web}"

[shopify]
origin = "{web}/{{shop}}"

[[jobs]]
name = "{job}"
kind = "scrape"
url = "{web}/menu"
select = "ul.menu > li"
at = ["noon"]
to = ["me", "friend:{f1}", "friend:{f2}"]

[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{shop}"
to = ["me"]
"""


class Calendar:
    """Seconds the simulated calendar is ahead of the real clock: 8 bytes of a file mapped by the slot-run
    child, which sets them before each run, and by the Kakao stand-in, whose clock reads them."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.exists():
            self.path.write_bytes(bytes(8))
        with open(self.path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), 8)

    def ahead(self) -> float:
        return struct.unpack_from("d", self._map)[0]

    def set(self, seconds: float) -> None:
        struct.pack_into("d", self._map, 0, seconds)

    def clock(self) -> float:
        """time.time() on the simulated calendar."""
        return time.time() + self.ahead()

    def utcnow(self) -> datetime:
        """The bot's clock (bot.store.db.utcnow) on the simulated calendar."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.ahead())


def build_kakao(args: dict[str, Any]) -> tuple[Any, Any, dict[str, str]]:
    """In the Kakao stand-in's process: the owner, 4 friends, no daily caps of its own, the shared calendar."""
    from bot.sandbox.kakao import KakaoSandbox

    sandbox = KakaoSandbox(clock=Calendar(args["calendar"]).clock)
    sandbox.sender_daily = sandbox.recipient_daily = sandbox.pair_daily = 10**9
    for nickname in FRIENDS:
        sandbox.add_friend(nickname)
    return sandbox, sandbox.wsgi_app(), {"rest_api_key": sandbox.rest_api_key,
                                         "client_secret": sandbox.client_secret or ""}


def build_web(args: dict[str, Any]) -> tuple[None, Any, None]:
    from bot.sandbox.web import DEMO_MENU_HTML, create_web_app

    return None, create_web_app({"/menu": DEMO_MENU_HTML}), None


def issue_code(sandbox: Any, redirect_uri: str) -> str:
    """A query: an authorization code as if the owner had just consented."""
    return sandbox.issue_code(redirect_uri)


def sends(sandbox: Any, payload: Any = None) -> int:
    """A query: Kakao send calls (to me and to friends) seen so far."""
    return sandbox.count("/send")


def token_calls(sandbox: Any, payload: Any = None) -> int:
    """A query: Kakao token requests (code exchanges and refreshes) seen so far."""
    return sandbox.count("/oauth/token")


class Standins:
    """The Kakao stand-in and the web page, each in its own process, and the secrets that go with them."""

    def __init__(self, folder: Path):
        self.calendar = Calendar(folder / "calendar")

    def __enter__(self) -> "Standins":
        from cryptography.fernet import Fernet

        self.kakao = StandinProcess(build_kakao, {"calendar": str(self.calendar.path)}, name="kakao-standin")
        self.web = StandinProcess(build_web, {}, name="web-standin")
        self.secrets = {"BOT_SECRET_KEY": Fernet.generate_key().decode(),
                        "KAKAO_REST_API_KEY": self.kakao.greeting["rest_api_key"],
                        "KAKAO_CLIENT_SECRET": self.kakao.greeting["client_secret"],
                        "SHOPIFY_API_KEY": "bench-client-id", "SHOPIFY_API_SECRET": WEBHOOK_SECRET}
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kakao.close()
        self.web.close()


@dataclass
class Deployment:
    folder: Path
    url: str
    config: Path
    port: int
    standins: Standins

    @classmethod
    def make(cls, folder: Path, url: str, standins: Standins, name: str) -> "Deployment":
        port = free_port()
        config = folder / f"{name}.toml"
        config.write_text(CONFIG.format(db=url, port=port, kakao=standins.kakao.url, web=standins.web.url, job=JOB,
                                        f1=FRIENDS[0], f2=FRIENDS[1], shop=SHOP), encoding="utf-8")
        return cls(folder, url, config, port, standins)

    def prepare(self, login: bool) -> None:
        """Migrate, and store the owner's Kakao login (as `kakao login` would, on the calendar's day)."""
        from bot.app import App, load_config
        from bot.config.secrets import Secrets

        app = App(load_config(self.config), Secrets(self.standins.secrets), clock=self.standins.calendar.utcnow)
        try:
            app.db.migrate()
            if login:
                code = self.standins.kakao.ask(issue_code, app.config.kakao.redirect_uri)
                app.kakao_tokens.store_login("default", app.kakao_auth.exchange_code(code))
        finally:
            app.close()

    def env(self, tree: Path) -> dict[str, str]:
        """The environment of a `python -m bot` of checkout `tree`: its secrets, that tree first on the path."""
        skip = ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", "PYTHONPATH", *SYSTEMD_VARIABLES)
        env = {key: value for key, value in os.environ.items() if key not in skip}
        env.update(self.standins.secrets, PYTHONPATH=str(tree))
        return env
