"""A merchant's settings document: checked like config.toml's jobs, turned into ordinary jobs with stable names."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.kakao.recipients import Recipient
from jobs.merchant import SettingsInvalid, empty, jobs_of, validate

SHOP = "first-shop.myshopify.com"
ACCOUNT = "shop-" + "a" * 40


def test_a_full_document_makes_a_digest_and_an_alert_job_sending_from_the_merchants_login():
    document = validate({"recipients": ["me", "uuid:abcdef12345", "me"], "digest": {"at": ["18:00", "08:05", "18:00"]},
                         "new_orders": {"min_total": 50000, "quiet": "22:00-08:00"}}, SHOP)
    assert document == {"recipients": ["me", "uuid:abcdef12345"], "digest": {"at": ["08:05", "18:00"]},
                        "new_orders": {"min_total": 50000, "quiet": "22:00-08:00"}, "refunds": None,
                        "low_stock": None, "high_risk": None, "unfulfilled": None}
    digest, alert = jobs_of(document, shop=SHOP, account=ACCOUNT)
    assert (digest.name, digest.kind, digest.at, digest.sender) == (
        f"{ACCOUNT}:digest", "shopify-orders", ("5 8 * * *", "0 18 * * *"), ACCOUNT)
    assert digest.to == (Recipient("me"), Recipient("uuid", "abcdef12345")) and digest.params.shop == SHOP
    assert (alert.name, alert.kind, alert.at, alert.sender) == (f"{ACCOUNT}:new-orders", "shopify-order-alert", (),
                                                                ACCOUNT)
    assert alert.params.min_total == Decimal(50000) and str(alert.params.quiet) == "22:00-08:00"


def test_every_alert_kind_the_bot_supports_is_a_setting_with_its_config_options():
    document = validate({"recipients": ["me"], "refunds": {"events": ["cancelled"]}, "low_stock": {"threshold": 3},
                         "high_risk": {"level": "high"}, "unfulfilled": {"hours": 48}}, SHOP)
    made = {job.name.split(":")[1]: job for job in jobs_of(document, shop=SHOP, account=ACCOUNT)}
    assert {name: job.kind for name, job in made.items()} == {
        "refunds": "shopify-refund-alert", "low-stock": "shopify-stock-alert", "high-risk": "shopify-risk-alert",
        "unfulfilled": "shopify-unfulfilled-alert"}
    assert made["low-stock"].params.shop == SHOP and all(job.sender == ACCOUNT for job in made.values())


def test_an_empty_document_makes_no_job():
    assert jobs_of(validate(empty(), SHOP), shop=SHOP, account=ACCOUNT) == []


@pytest.mark.parametrize("document, key", [
    ([], "settings"),
    ({"recipients": []}, "recipients"),
    ({"recipients": ["friend:홍길동"]}, "recipients"),
    ({"recipients": ["uuid:"]}, "recipients"),
    ({"recipients": ["me"] * 21}, "recipients"),
    ({"recipients": "me"}, "recipients"),
    ({"digest": {"at": []}}, "digest.at"),
    ({"digest": {"at": ["24:00"]}}, "digest.at"),
    ({"digest": {"at": ["8:00"]}}, "digest.at"),
    ({"digest": {"at": ["08:00"], "extra": 1}}, "digest.at"),
    ({"digest": {"at": ["0%d:00" % n for n in range(7)]}}, "digest.at"),
    ({"digest": "08:00"}, "digest.at"),
    ({"new_orders": {"min_total": -1}}, "new_orders.min_total"),
    ({"new_orders": {"min_total": "many"}}, "new_orders.min_total"),
    ({"new_orders": {"quiet": "late"}}, "new_orders.quiet"),
    ({"new_orders": {"shop": "other.myshopify.com"}}, "new_orders.shop"),
    ({"new_orders": []}, "new_orders"),
    ({"low_stock": {"threshold": -1}}, "low_stock.threshold"),
    ({"refunds": {"events": ["nothing"]}}, "refunds.events"),
    ({"high_risk": {"level": "scary"}}, "high_risk.level"),
    ({"unfulfilled": {"shop": SHOP}}, "unfulfilled.shop"),
    ({"schedule": {}}, "schedule"),
])
def test_what_cannot_be_kept_is_refused_naming_the_key(document, key):
    with pytest.raises(SettingsInvalid) as caught:
        validate(document, SHOP)
    assert caught.value.key == key
