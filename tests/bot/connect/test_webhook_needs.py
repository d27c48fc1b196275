"""Subscriptions and scopes follow the configured jobs (bot.connect.webhook_needs), against the Shopify stand-in."""

from __future__ import annotations

from typing import Callable

from bot.app import App, load_config
from bot.connect.shopify_install import shop_graphql
from bot.connect.webhook_needs import missing_scopes, missing_text, needed_topics, sync_all, sync_shop
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.subscriptions import subscribe, unsubscribe, webhook_uri

from webhook_helpers import ALERT_JOB, SHOP

REFUND_JOB = f"""
[[jobs]]
name = "refunds"
kind = "shopify-refund-alert"
shop = "{SHOP}"
events = ["refund"]
to = ["me"]
"""
ELSEWHERE = "https://elsewhere.example.com/hooks"


def topics_at(shopify: ShopifySandbox, uri: str) -> list[str]:
    return sorted(sub["topic"] for sub in shopify.subscriptions.get(SHOP, []) if sub["uri"] == uri)


def test_a_shop_is_subscribed_to_what_its_jobs_need_once(make_bot: Callable[..., App], shopify: ShopifySandbox) -> None:
    app = make_bot(ALERT_JOB + REFUND_JOB)
    assert needed_topics(app, SHOP) == ("orders/create", "orders/updated", "refunds/create", "app/uninstalled")
    assert needed_topics(app, "other.myshopify.com") == ("app/uninstalled",)
    synced = sync_shop(app, shop_graphql(app, SHOP, "default"), SHOP, "default")
    assert synced.error is None and synced.deleted == ()
    assert synced.created == ("ORDERS_CREATE", "ORDERS_UPDATED", "REFUNDS_CREATE", "APP_UNINSTALLED")
    again = sync_shop(app, shop_graphql(app, SHOP, "default"), SHOP, "default")
    assert (again.created, again.deleted) == ((), ())
    assert topics_at(shopify, synced.uri) == ["APP_UNINSTALLED", "ORDERS_CREATE", "ORDERS_UPDATED", "REFUNDS_CREATE"]


def test_topics_no_job_needs_any_more_are_deleted_only_at_our_address(make_bot: Callable[..., App],
                                                                      shopify: ShopifySandbox) -> None:
    before = make_bot(ALERT_JOB + REFUND_JOB)
    gql = shop_graphql(before, SHOP, "default")
    sync_shop(before, gql, SHOP, "default")
    subscribe(gql, ELSEWHERE, ("ORDERS_CREATE",))  # someone else's address: never ours to delete
    after = make_bot(REFUND_JOB.replace('events = ["refund"]', 'events = ["cancelled"]'), login=False, connect=False)
    synced = sync_shop(after, shop_graphql(after, SHOP, "default"), SHOP, "default")
    assert synced.created == ("ORDERS_CANCELLED",)
    assert sorted(synced.deleted) == ["ORDERS_CREATE", "ORDERS_UPDATED", "REFUNDS_CREATE"]
    assert topics_at(shopify, synced.uri) == ["APP_UNINSTALLED", "ORDERS_CANCELLED"]
    assert topics_at(shopify, ELSEWHERE) == ["ORDERS_CREATE"]


def test_an_order_alert_without_on_update_needs_no_orders_updated(make_bot: Callable[..., App]) -> None:
    app = make_bot(ALERT_JOB.replace('to = ["me"]', 'to = ["me"]\non_update = false'))
    assert needed_topics(app) == ("orders/create", "app/uninstalled")


def test_deleting_a_subscription_that_is_gone_is_not_an_error(make_bot: Callable[..., App],
                                                             shopify: ShopifySandbox) -> None:
    app = make_bot()
    gql = shop_graphql(app, SHOP, "default")
    assert unsubscribe(gql, "gid://shopify/WebhookSubscription/999999") is False


def test_a_failing_sync_is_returned_not_raised(make_bot: Callable[..., App], shopify: ShopifySandbox) -> None:
    app = make_bot()
    shopify.fail_next("/graphql.json", 500, {"errors": "Internal error"}, times=5)
    synced = sync_shop(app, shop_graphql(app, SHOP, "default"), SHOP, "default")
    assert synced.error and synced.created == ()


def test_run_start_syncs_every_active_install_and_names_missing_scopes(make_bot: Callable[..., App],
                                                                       shopify: ShopifySandbox, caplog) -> None:  # noqa: ANN001
    app = make_bot(ALERT_JOB)
    app.shopify_tokens.store_legacy("default", SHOP, shopify.legacy_token(SHOP, scope="read_products"), "read_products")
    (synced,) = sync_all(app, lambda shop, name: shop_graphql(app, shop, name))
    assert synced.uri == webhook_uri(app.config.server.public_url, "default")
    assert "was not granted read_orders (for new-orders)" in caplog.text


def test_missing_scopes_count_write_as_read_and_name_the_jobs(make_bot: Callable[..., App]) -> None:
    app = make_bot(ALERT_JOB + REFUND_JOB)
    assert missing_scopes(app, SHOP, ["write_orders"]) == {}
    missing = missing_scopes(app, SHOP, ["read_products"])
    assert missing_text(missing) == "read_orders (for new-orders, refunds)"


def test_a_job_needing_a_scope_no_app_asks_for_is_a_config_warning(write_config) -> None:  # noqa: ANN001
    path = write_config(f"""
        [[shopify.apps]]
        name = "default"
        scopes = ["read_products"]
        {REFUND_JOB}
        """)
    config = load_config(path)
    assert any("job 'refunds' (shopify-refund-alert) needs the Shopify scope(s) read_orders" in warning
               for warning in config.warnings)
