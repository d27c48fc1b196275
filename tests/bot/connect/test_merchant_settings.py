"""A merchant's settings through the embedded app's API: read, saved with the version read (a stale save is a
409, never an overwrite), refused with the key named when they cannot be kept, one shop's never another's;
saved settings become the merchant's jobs, and an uninstall removes them."""

from __future__ import annotations

import pytest

from bot.connect.merchant_kakao import forget_merchant
from bot.store.merchant_settings import merchant_account
from jobs.merchant import empty

from shopify_install_helpers import KEY, OTHER_SHOP, SHOP

GOOD = {"recipients": ["me"], "digest": {"at": ["08:00", "18:00"]}, "new_orders": {"min_total": 100000}}


def get(client, standin, shop: str = SHOP):
    return client.get("/shopify/default/api/settings",
                      headers={"Authorization": f"Bearer {standin.session_token(shop, KEY)}"})


def put(client, standin, body, shop: str = SHOP):
    headers = {"Authorization": f"Bearer {standin.session_token(shop, KEY)}"}
    if isinstance(body, bytes):
        return client.put("/shopify/default/api/settings", data=body, content_type="application/json", headers=headers)
    return client.put("/shopify/default/api/settings", json=body, headers=headers)


def job_names(app) -> list[str]:  # noqa: ANN001
    app.merchant_jobs.refresh()
    return [job.name for job in app.jobs()]


def test_a_new_shop_reads_the_empty_settings_at_version_0(client, standin):
    answer = get(client, standin)
    assert answer.status_code == 200 and answer.json == {"version": 0, "settings": empty()}
    assert answer.headers["Cache-Control"] == "no-store"


def test_saved_settings_are_read_back_and_become_the_merchants_jobs(client, app, standin):
    saved = put(client, standin, {"version": 0, "settings": GOOD})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.json["version"] == 1 and saved.json["settings"]["digest"] == {"at": ["08:00", "18:00"]}
    assert get(client, standin).json == {"version": 1, "settings": saved.json["settings"]}
    account = merchant_account("default", SHOP)
    assert job_names(app) == ["new-orders", f"{account}:digest", f"{account}:new-orders"]


def test_saving_alerts_subscribes_the_shop_to_the_order_topics(client, app, standin):
    headers = {"Authorization": f"Bearer {standin.session_token(OTHER_SHOP, KEY)}"}
    assert client.get("/shopify/default/api/shop", headers=headers).status_code == 200  # installed: no jobs yet
    assert {sub["topic"] for sub in standin.subscriptions[OTHER_SHOP]} == {"APP_UNINSTALLED"}
    saved = put(client, standin, {"version": 0, "settings": {"recipients": ["me"], "new_orders": {}}}, shop=OTHER_SHOP)
    assert saved.status_code == 200 and saved.json["webhooks_error"] is None
    assert {sub["topic"] for sub in standin.subscriptions[OTHER_SHOP]} == {
        "APP_UNINSTALLED", "ORDERS_CREATE", "ORDERS_UPDATED"}


def test_saving_before_the_shop_is_installed_keeps_the_settings_and_says_why_webhooks_wait(client, standin):
    saved = put(client, standin, {"version": 0, "settings": GOOD}, shop=OTHER_SHOP)
    assert saved.status_code == 200 and saved.json["webhooks_error"]


def test_a_save_over_a_newer_version_is_409_and_changes_nothing(client, app, standin):
    put(client, standin, {"version": 0, "settings": GOOD})
    put(client, standin, {"version": 1, "settings": {**GOOD, "new_orders": None}})
    stale = put(client, standin, {"version": 1, "settings": empty()})
    assert stale.status_code == 409 and stale.json["error"] == "version_conflict" and stale.json["version"] == 2
    assert get(client, standin).json["settings"]["digest"] == {"at": ["08:00", "18:00"]}


@pytest.mark.parametrize("body, key", [
    ({"version": 0, "settings": {"recipients": ["friend:홍길동"]}}, "recipients"),
    ({"version": 0, "settings": {"digest": {"at": ["25:00"]}}}, "digest.at"),
    ({"version": 0, "settings": {"new_orders": {"min_total": -5}}}, "new_orders.min_total"),
    ({"version": 0, "settings": None}, "settings"),
])
def test_settings_that_cannot_be_kept_are_400_naming_the_key(client, app, standin, body, key):
    answer = put(client, standin, body)
    assert answer.status_code == 400 and answer.json["error"] == "bad_settings" and answer.json["key"] == key
    assert get(client, standin).json["version"] == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"settings": {}}', b'{"version": -1, "settings": {}}',
                                  b'{"version": true, "settings": {}}', b'{"version": "0", "settings": {}}'])
def test_a_malformed_save_is_400(client, standin, body):
    answer = put(client, standin, body)
    assert answer.status_code == 400 and answer.json["error"] == "bad_settings"


def test_one_shops_settings_are_never_another_shops(client, standin):
    put(client, standin, {"version": 0, "settings": GOOD}, shop=SHOP)
    assert get(client, standin, shop=OTHER_SHOP).json == {"version": 0, "settings": empty()}
    own = put(client, standin, {"version": 0, "settings": empty()}, shop=OTHER_SHOP)
    assert own.status_code == 200 and own.json["version"] == 1
    assert get(client, standin, shop=SHOP).json["settings"]["new_orders"] == {"min_total": 100000}


def test_an_uninstall_removes_the_settings_and_their_jobs(client, app, standin):
    put(client, standin, {"version": 0, "settings": GOOD})
    assert "settings deleted" in forget_merchant(app, "default", SHOP)
    assert job_names(app) == ["new-orders"]
    assert get(client, standin).json == {"version": 0, "settings": empty()}
