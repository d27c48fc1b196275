"""Shopify request checks: the documented HMAC vector, tampering, every parameter counted,
shop domains, webhook signatures with secret rotation and timestamps."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bot.shopify.signing import (
    fresh_timestamp,
    is_valid_shop,
    normalize_shop,
    query_hmac,
    query_message,
    verify_query,
    verify_webhook,
    webhook_hmac,
)

# Shopify's documented example (secret "hush").
VECTOR = [("code", "0907a61c0c8d55e99db179b68161bc00"), ("shop", "some-shop.myshopify.com"),
          ("state", "0.6784241404160823"), ("timestamp", "1337178173")]
VECTOR_HMAC = "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"


def signed(pairs, secret="hush"):
    return list(pairs) + [("hmac", query_hmac(pairs, secret))]


def test_shopifys_documented_example_verifies():
    assert query_message(VECTOR) == ("code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com"
                                     "&state=0.6784241404160823&timestamp=1337178173")
    assert query_hmac(VECTOR, "hush") == VECTOR_HMAC
    assert verify_query(VECTOR + [("hmac", VECTOR_HMAC)], ["hush"])


def test_order_of_parameters_does_not_matter_and_hmac_signature_are_excluded():
    shuffled = [VECTOR[2], ("hmac", VECTOR_HMAC), VECTOR[0], ("signature", "ignored"), VECTOR[3], VECTOR[1]]
    assert verify_query(shuffled, ["hush"])


@pytest.mark.parametrize("index", range(len(VECTOR)))
def test_a_tampered_value_fails(index):
    key, value = VECTOR[index]
    tampered = list(VECTOR)
    tampered[index] = (key, value + "0")
    assert not verify_query(tampered + [("hmac", VECTOR_HMAC)], ["hush"])


def test_an_extra_parameter_is_covered_by_the_signature_not_whitelisted_away():
    with_host = VECTOR + [("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvc29tZS1zaG9w")]
    # Added after signing: the old signature no longer holds.
    assert not verify_query(with_host + [("hmac", VECTOR_HMAC)], ["hush"])
    # Signed with it: verifies, and the hmac differs from the one without it.
    resigned = signed(with_host)
    assert verify_query(resigned, ["hush"]) and resigned[-1][1] != VECTOR_HMAC


def test_wrong_secret_missing_empty_or_repeated_hmac_fail():
    good = VECTOR + [("hmac", VECTOR_HMAC)]
    assert not verify_query(good, ["not-hush"])
    assert not verify_query(VECTOR, ["hush"])
    assert not verify_query(VECTOR + [("hmac", "")], ["hush"])
    assert not verify_query(good + [("hmac", VECTOR_HMAC)], ["hush"])
    assert not verify_query(good, [""])


def test_uppercase_hex_is_accepted_and_old_secret_verifies_during_rotation():
    assert verify_query(VECTOR + [("hmac", VECTOR_HMAC.upper())], ["hush"])
    assert verify_query(VECTOR + [("hmac", VECTOR_HMAC)], ["new-secret", "hush"])


def test_array_parameters_are_signed_as_shopify_signs_them():
    pairs = [("ids[]", "1"), ("ids[]", "2"), ("shop", "a.myshopify.com")]
    assert query_message(pairs) == 'ids=["1", "2"]&shop=a.myshopify.com'
    assert query_message([("ids[]", "7")]) == 'ids=["7"]'
    assert verify_query(signed(pairs), ["hush"])


@pytest.mark.parametrize("shop", ["evil.com", "x.myshopify.com.evil.com", "a/../b.myshopify.com",
                                  "https://a.myshopify.com", "a.myshopify.com/", "a.myshopify.com:443",
                                  "-a.myshopify.com", ".myshopify.com", "a_b.myshopify.com", "a.myshopify.com\n",
                                  "a.b.myshopify.com", "", None, "a" * 250 + ".myshopify.com"])
def test_bad_shops_are_refused(shop):
    assert not is_valid_shop(shop)
    with pytest.raises(ValueError):
        normalize_shop(shop or "")


@pytest.mark.parametrize("shop", ["my-store.myshopify.com", "Store1.myshopify.com", "a.myshopify.com"])
def test_good_shops_pass_and_are_lower_cased(shop):
    assert is_valid_shop(shop) and normalize_shop(shop) == shop.lower()


def test_webhook_signature_is_base64_hmac_of_the_raw_body():
    body = b'{"id": 820982911946154508, "name": "#9999"}'
    expected = base64.b64encode(hmac.new(b"secret", body, hashlib.sha256).digest()).decode()
    assert webhook_hmac(body, "secret") == expected
    assert verify_webhook(body, expected, ["secret"])


def test_webhook_signature_fails_on_any_change_missing_header_or_wrong_secret():
    body = b'{"id":1}'
    header = webhook_hmac(body, "secret")
    assert not verify_webhook(body + b" ", header, ["secret"])
    assert not verify_webhook(body, None, ["secret"])
    assert not verify_webhook(body, "", ["secret"])
    assert not verify_webhook(body, header, ["other"])


def test_webhook_signed_with_the_previous_secret_verifies_while_it_is_configured():
    body = b'{"id":1}'
    old = webhook_hmac(body, "old-secret")
    assert verify_webhook(body, old, ["new-secret", "old-secret"])
    assert not verify_webhook(body, old, ["new-secret"])


@pytest.mark.parametrize("timestamp, ok", [("1000", True), ("700", True), ("1300", True), ("699", False),
                                           ("1301", False), ("", False), (None, False), ("12a", False)])
def test_timestamps_within_five_minutes(timestamp, ok):
    assert fresh_timestamp(timestamp, now=1000.0) is ok
