"""An embedded app merchant's life cycle through the webhooks: app/uninstalled deletes their own Kakao login
(and any login still in progress), so a re-install starts unconnected; shop/redact also deletes the
deliveries their login sent. Another shop's merchant and the operator's login stay untouched."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import App
from bot.connect.merchant_kakao import start_connect
from bot.delivery.trial_message import TEST_JOB, send_test_message
from bot.kakao.recipients import Recipient
from bot.sandbox.shopify import ShopifySandbox
from bot.store.merchant_settings import merchant_account
from bot.webhooks.worker import WebhookWorker
from tokens.models import OAuthState

from webhook_helpers import OTHER_SHOP, SHOP, Hooks, events


def merchant(bot: App, logged_in, shop: str) -> str:  # noqa: ANN001 — the conftest's login helper
    account = merchant_account("default", shop)
    logged_in(bot, account)
    send_test_message(bot, account, [Recipient("me")])
    return account


def test_app_uninstalled_deletes_the_merchants_kakao_login_and_pending_logins(
        bot: App, hooks: Hooks, shopify: ShopifySandbox, worker: WebhookWorker, logged_in) -> None:  # noqa: ANN001
    mine, theirs = merchant(bot, logged_in, SHOP), merchant(bot, logged_in, OTHER_SHOP)
    start_connect(bot, "default", SHOP)  # a reconnect left half-way
    shopify.uninstall(SHOP, "shopify-client-id", webhook_url=hooks.url + "/shopify/default/webhooks")
    assert worker.drain_once() == 1

    assert bot.kakao_tokens.status(mine) is None
    assert bot.kakao_tokens.status(theirs) is not None and bot.kakao_tokens.status("default") is not None
    with bot.db.session() as session:
        assert session.scalars(select(OAuthState).where(OAuthState.purpose == f"kakao:{mine}")).all() == []
    (event,) = events(bot)
    assert event.status == "done" and "Kakao login deleted, 1 login state(s) deleted" in event.result
    assert len(bot.deliveries.history(sender=mine)) == 1  # the history stays until a redaction


def test_shop_redact_also_deletes_the_deliveries_the_merchant_sent(bot: App, hooks: Hooks, worker: WebhookWorker,
                                                                  logged_in) -> None:  # noqa: ANN001
    mine, theirs = merchant(bot, logged_in, SHOP), merchant(bot, logged_in, OTHER_SHOP)
    assert hooks.send("shop/redact", {"shop_id": 1, "shop_domain": SHOP}).status_code == 200
    worker.drain_once()

    assert bot.kakao_tokens.status(mine) is None and bot.deliveries.history(sender=mine) == []
    assert [row.job for row in bot.deliveries.history(sender=theirs)] == [TEST_JOB]
    assert "1 delivery record(s) deleted" in events(bot)[-1].result
