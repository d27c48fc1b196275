"""What makes a stored Kakao login or Shopify install unhealthy: one rule set for every place that judges them.

/healthz (bot.web.health), the periodic problem checks (bot.delivery.problems) and `kakao status`
(bot.cli.kakao) all judge by these rules, so they cannot disagree:
- a Kakao login needs a person when tokens.login_health.login_problem says why; its fix is
  `login_fix`; its refresh token is worth a warning when it expires within REFRESH_WARNING;
- a Shopify install's state is its stored status, or "undecryptable" when an active install's
  tokens cannot be read with BOT_SECRET_KEY; the states in SHOPIFY_NEEDS_PERSON need a person
  ("uninstalled" is the merchant's choice, not a fault);
- an embedded app merchant's own Kakao login is judged by the same rule (`merchant_states`), but
  it is the merchant's to fix, on their page: the operator sees it per shop, never as a problem.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.app import App
from bot.store.merchant_settings import merchant_account
from tokens.login_health import install_unreadable, login_problem, merchant_logins
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


@dataclass(frozen=True)
class MerchantState:
    """One embedded app merchant as the operator sees them (`shopify shops`, /healthz): never a token."""

    app: str
    shop: str
    kakao: str  # connected | needs_login | not_connected
    settings_version: int  # 0: nothing saved yet
    jobs: int


def merchant_states(app: App) -> list[MerchantState]:
    """Every shop with merchant settings or a merchant Kakao login, read in three queries whatever their number."""
    now, vault = app.clock(), judging_vault(app)
    logins = {row.account: row for row in merchant_logins(app.db)}
    settings = {(stored.app, stored.shop): stored for stored in app.merchant_settings.all()}
    shops = set(settings) | {(status.app, status.shop) for status in app.shopify_tokens.all_status()
                             if merchant_account(status.app, status.shop) in logins}
    jobs_of = Counter(job.sender for job in app.merchant_jobs.current())  # a merchant's jobs send from their login
    states = []
    for app_name, shop in sorted(shops, key=lambda pair: (pair[1], pair[0])):
        account = merchant_account(app_name, shop)
        login = logins.get(account)
        kakao = ("not_connected" if login is None else
                 "needs_login" if login_problem(login, vault, now) else "connected")
        stored = settings.get((app_name, shop))
        states.append(MerchantState(app_name, shop, kakao, stored.version if stored else 0, jobs_of[account]))
    return states
