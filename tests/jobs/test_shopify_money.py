"""Shopify's amounts and currency codes, as both alert kinds and the refund reader take them."""

from decimal import Decimal

import pytest

from jobs.shopify_money import currency_code, money_amount


@pytest.mark.parametrize("value, expected", [
    ("12000.00", Decimal("12000.00")),  # REST: money as a string
    (" 5.5 ", Decimal("5.5")),
    (0, Decimal(0)),
    (19.9, Decimal("19.9")),  # via str: not the float's binary expansion
    ("-3", Decimal(-3)),  # a negative adjustment is still an amount
])
def test_amounts_are_read_as_decimals(value, expected):
    assert money_amount(value) == expected


@pytest.mark.parametrize("value", [None, True, False, "", "12,000", "abc", "NaN", "Infinity", "-inf", [], {}])
def test_what_is_not_a_finite_amount_is_unknown(value):
    assert money_amount(value) is None


@pytest.mark.parametrize("value, expected", [("KRW", "KRW"), ("krw", "KRW"), (" usd ", "USD")])
def test_currency_codes_are_upper_cased(value, expected):
    assert currency_code(value) == expected


@pytest.mark.parametrize("value", [None, "", "KR", "KRWX", "₩", "K1W", 410, b"KRW"])
def test_anything_else_is_no_currency(value):
    assert currency_code(value) is None
