"""Amounts and currency codes as Shopify sends them, read leniently: a webhook's REST body (money as
strings: `"12000.00"`, `"KRW"`) or a GraphQL `MoneyV2` (`amount`, `currencyCode`). A value that is not
a finite amount or a three-letter code reads as None, for the caller to treat as unknown."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

CURRENCY_CODE = re.compile(r"\s*[A-Za-z]{3}\s*")


def money_amount(value: Any) -> Decimal | None:
    """`value` as a finite Decimal, or None (missing, a boolean, not a number, NaN or infinite)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def currency_code(value: Any) -> str | None:
    """An ISO 4217-shaped code, upper-cased ("krw " → "KRW"); None for anything else."""
    return value.strip().upper() if isinstance(value, str) and CURRENCY_CODE.fullmatch(value) else None
