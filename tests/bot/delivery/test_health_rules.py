"""The one rule set /healthz, the problem checks and `kakao status` judge logins and installs by."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.delivery.health_rules import (
    REFRESH_WARNING,
    SHOPIFY_NEEDS_PERSON,
    install_needs_person,
    install_state,
    login_fix,
    refresh_expiring,
)
from tokens.models import ShopifyInstall

NOW = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)


def test_the_kakao_fix_names_the_account() -> None:
    assert login_fix("shop") == "run `python -m bot kakao login --account shop`"


def test_a_refresh_token_is_worth_a_warning_within_a_week() -> None:
    assert REFRESH_WARNING == timedelta(days=7)
    assert refresh_expiring(NOW + REFRESH_WARNING, NOW)
    assert not refresh_expiring(NOW + REFRESH_WARNING + timedelta(seconds=1), NOW)


def test_install_states_that_need_a_person() -> None:
    assert SHOPIFY_NEEDS_PERSON == ("invalid", "needs_reauth", "undecryptable")
    assert [state for state in ("active", "invalid", "needs_reauth", "uninstalled", "undecryptable")
            if install_needs_person(state)] == ["invalid", "needs_reauth", "undecryptable"]
    # Without a vault nothing can be found unreadable: the stored status is the state.
    assert install_state(ShopifyInstall(shop="s.myshopify.com", app="default", status="uninstalled"), None) == "uninstalled"
