"""What makes a stored Kakao login or Shopify install unhealthy: one rule set for every place that judges them.

/healthz (bot.web.health), the periodic problem checks (bot.delivery.problems) and `kakao status`
(bot.cli.kakao) all judge by these rules, so they cannot disagree:
- a Kakao login needs a person when tokens.login_health.login_problem says why; its fix is
  `login_fix`; its refresh token is worth a warning when it expires within REFRESH_WARNING;
- a Shopify install's state is its stored status, or "undecryptable" when an active install's
  tokens cannot be read with BOT_SECRET_KEY; the states in SHOPIFY_NEEDS_PERSON need a person
  ("uninstalled" is the merchant's choice, not a fault).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.app import App
from tokens.login_health import install_unreadable
from tokens.models import ShopifyInstall
from tokens.vault import Vault, VaultError

REFRESH_WARNING = timedelta(days=7)  # a Kakao refresh token expiring within this is reported
UNDECRYPTABLE_STATE = "undecryptable"
SHOPIFY_NEEDS_PERSON = ("invalid", "needs_reauth", UNDECRYPTABLE_STATE)


def judging_vault(app: App) -> Vault | None:
    """The vault tokens are judged with; None when there is no key at all (reported where a token is
    needed — `run` refuses to start without one — not as a login or install problem)."""
    try:
        return app.vault
    except VaultError:
        return None


def login_fix(account: str) -> str:
    """What a person runs to make the Kakao login `account` work again."""
    return f"run `python -m bot kakao login --account {account}`"


def refresh_expiring(refresh_expires_at: datetime, now: datetime) -> bool:
    """A refresh token this close to expiring is worth a warning (a new login before then)."""
    return refresh_expires_at - now <= REFRESH_WARNING


def install_state(row: ShopifyInstall, vault: Vault | None) -> str:
    """The install's stored status, or UNDECRYPTABLE_STATE when it is active but its tokens cannot be read."""
    return UNDECRYPTABLE_STATE if install_unreadable(row, vault) else row.status


def install_needs_person(state: str) -> bool:
    """Whether an install in this state (`install_state`) needs a person."""
    return state in SHOPIFY_NEEDS_PERSON
