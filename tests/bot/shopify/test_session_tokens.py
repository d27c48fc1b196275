"""App Bridge session tokens: every claim checked, every odd input an InvalidSessionToken (never another error)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest

from bot.shopify.client import ShopifyApp
from bot.shopify.session_tokens import LEEWAY_SECONDS, InvalidSessionToken, verify_session_token

SHOP = "first-shop.myshopify.com"
APP = ShopifyApp(name="default", api_key="client-id", api_secret="shpss_" + "1" * 32,
                 old_api_secret="shpss_" + "0" * 32)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def claims(**changes: Any) -> dict[str, Any]:
    at = int(NOW.timestamp())
    base = {"iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": APP.api_key, "sub": "42",
            "exp": at + 60, "nbf": at - 1, "iat": at - 1, "jti": "jti-1", "sid": "session-1"}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def token(secret: str = APP.api_secret, algorithm: str = "HS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), secret, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(payload: Any) -> str:
    """An HS256 token with the app's secret around any JSON payload (PyJWT will not encode odd claims)."""
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(payload).encode())
    signature = hmac.new(APP.api_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_the_forged_helper_makes_tokens_that_verify():
    assert verify_session_token(forged(claims()), APP, now=NOW).shop == SHOP


def refused(raw: Any) -> str:
    with pytest.raises(InvalidSessionToken) as caught:
        verify_session_token(raw, APP, now=NOW)
    return caught.value.reason


def test_a_token_of_the_shops_admin_names_the_shop_and_user():
    verified = verify_session_token(token(), APP, now=NOW)
    assert (verified.shop, verified.user_id, verified.session_id) == (SHOP, "42", "session-1")
    assert verified.expires_at == datetime.fromtimestamp(NOW.timestamp() + 60, timezone.utc)


def test_the_shop_is_lower_cased():
    upper = "First-Shop.myshopify.com"
    verified = verify_session_token(token(dest=f"https://{upper}", iss=f"https://{upper}/admin"), APP, now=NOW)
    assert verified.shop == SHOP


def test_the_previous_secret_still_verifies_during_a_rotation():
    assert verify_session_token(token(secret=APP.old_api_secret), APP, now=NOW).shop == SHOP


def test_a_token_signed_with_another_secret_is_refused():
    assert "signature" in refused(token(secret="shpss_" + "9" * 32))


def test_a_token_for_another_app_is_refused():
    assert "another app" in refused(token(aud="other-client-id"))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_hs256_is_accepted(algorithm):
    assert "HS256" in refused(token(secret=APP.api_secret * 2, algorithm=algorithm))


def test_an_unsigned_token_is_refused():
    unsigned = jwt.encode(claims(), None, algorithm="none")  # alg "none": the classic forgery
    assert refused(unsigned)


def test_expired_beyond_the_leeway_is_refused_within_it_accepted():
    at = int(NOW.timestamp())
    assert verify_session_token(token(exp=at - LEEWAY_SECONDS + 1), APP, now=NOW).shop == SHOP
    assert "expired" in refused(token(exp=at - LEEWAY_SECONDS - 1))


def test_not_yet_valid_beyond_the_leeway_is_refused():
    at = int(NOW.timestamp())
    assert verify_session_token(token(nbf=at + LEEWAY_SECONDS - 1), APP, now=NOW).shop == SHOP
    assert "not valid yet" in refused(token(nbf=at + LEEWAY_SECONDS + 1))


@pytest.mark.parametrize("claim", ["iss", "dest", "aud", "sub", "exp", "nbf"])
def test_each_required_claim_must_be_there(claim):
    assert refused(token(**{claim: None}))


@pytest.mark.parametrize("dest", ["https://evil.com", "http://first-shop.myshopify.com",
                                  "https://first-shop.myshopify.com.evil.com", "https://first-shop.myshopify.com:8443",
                                  "https://first-shop.myshopify.com/other", "first-shop.myshopify.com",
                                  "https://[::1", "https://first-shop.myshopify.com:port", 42, ["https://x"]])
def test_dest_must_be_a_shop(dest):
    assert refused(forged(claims(dest=dest)))


@pytest.mark.parametrize("issuer", ["https://second-shop.myshopify.com/admin", f"https://{SHOP}",
                                    f"http://{SHOP}/admin", f"https://{SHOP}/admin/../x", 7])
def test_iss_must_be_the_admin_of_that_shop(issuer):
    assert refused(forged(claims(iss=issuer)))


@pytest.mark.parametrize("value", ["60", True, {"x": 1}])
def test_times_must_be_numbers(value):
    assert refused(forged(claims(exp=value)))


@pytest.mark.parametrize("raw", ["", "not-a-jwt", "a.b.c", "a.b", "..", "x" * 5000, None, 42, b"bytes",
                                 b64(b'{"alg":"HS256"}') + "." + b64(b"[1,2]") + ".sig",
                                 b64(b'{"alg":"HS256"}') + "." + b64(b"\xff\xfe") + ".sig"])
def test_garbage_is_refused_not_an_error(raw):
    assert refused(raw)


def test_a_payload_that_is_not_an_object_is_refused():
    assert refused(forged("just a string"))
    assert refused(forged([claims()]))
