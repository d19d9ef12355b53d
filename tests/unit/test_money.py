"""retreat.money: parsing what people type, and round trips through what we print (issue #16, 21)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retreat.money import (
    _SYMBOLS,
    SUPPORTED_CURRENCIES,
    MoneyError,
    currency_marks,
    exponent,
    format_money,
    from_minor,
    to_minor,
)

# Supported ones, plus currencies without a symbol of ours and other exponents (0 and 3).
CURRENCIES = [*SUPPORTED_CURRENCIES, "CHF", "KRW", "KWD", "NZD"]
amounts = st.integers(min_value=-(10**12), max_value=10**12)


# (what a person typed, the amount's currency, minor units or the start of the MoneyError)
CASES = [
    ("CA$100", "CAD", 10000), ("C$100", "CAD", 10000), ("CAD 100", "CAD", 10000), ("100 cad", "CAD", 10000),
    ("A$5", "AUD", 500), ("AU$5.25", "AUD", 525), ("AUD5", "AUD", 500),
    ("$1,250.50", "USD", 125050), ("US$1", "USD", 100), ("  1,250  ", "USD", 125000),
    ("-€12.50", "EUR", -1250), ("€-12.5", "EUR", -1250), ("£0.99", "GBP", 99),
    ("¥5,000", "JPY", 5000), ("5000 JPY", "JPY", 5000), ("12.50 CHF", "CHF", 1250),
    ("1.250 KWD", "KWD", 1250), ("CA$\u00a0100", "CAD", 10000),
    # A symbol or code of another currency is refused, whatever the order of the prefixes.
    ("€12.5", "CAD", "'€' marks an amount in EUR, not CAD"),
    ("$100", "CAD", "'$' marks an amount in USD, not CAD"),
    ("$5", "AUD", "'$' marks an amount in USD, not AUD"),
    ("A$5", "CAD", "'A$' marks an amount in AUD, not CAD"),
    ("CA$5", "USD", "'CA$' marks an amount in CAD, not USD"),
    ("¥100", "USD", "'¥' marks an amount in JPY, not USD"),
    ("100 EUR", "GBP", "'EUR' marks an amount in EUR, not GBP"),
    ("XX$5", "USD", "not a currency symbol"), ("CA$A$5", "CAD", "not a currency symbol"),
    ("$5 USD", "USD", "not an amount"), ("--5", "USD", "not an amount"), ("$", "USD", "not an amount"),
    ("", "USD", "not an amount"), ("12,50", "EUR", "commas only group thousands"),
    ("¥5.5", "JPY", "JPY amounts have at most 0 decimal places"),
    ("1.005", "USD", "USD amounts have at most 2 decimal places"),
]


@pytest.mark.parametrize(("text", "currency", "expected"), CASES)
def test_what_people_type(text, currency, expected):
    if isinstance(expected, int):
        assert to_minor(text, currency) == expected
    else:
        with pytest.raises(MoneyError) as exc:
            to_minor(text, currency)
        assert str(exc.value).startswith(expected)


def test_the_mismatch_message_says_what_to_write():
    with pytest.raises(MoneyError) as exc:
        to_minor("$100", "CAD")
    assert "CA$, C$, CAD" in str(exc.value)
    assert currency_marks("aud") == ["AU$", "A$", "AUD"]


def test_floats_are_refused_and_decimals_and_ints_pass_through():
    with pytest.raises(MoneyError):
        to_minor(12.5, "USD")
    assert to_minor(Decimal("1E+3"), "USD") == 100000
    assert to_minor(7, "JPY") == 7


def test_every_symbol_we_print_is_read_back_as_its_own_currency():
    for currency, symbol in _SYMBOLS.items():
        assert symbol in currency_marks(currency)
        assert to_minor(f"{symbol}1", currency) == 10 ** exponent(currency)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(minor=amounts, currency=st.sampled_from(CURRENCIES))
def test_format_money_round_trips(minor, currency):
    assert to_minor(format_money(minor, currency), currency) == minor


@settings(max_examples=200, derandomize=True, deadline=None)
@given(minor=amounts, currency=st.sampled_from(CURRENCIES))
def test_from_minor_round_trips(minor, currency):
    value = from_minor(minor, currency)
    assert to_minor(value, currency) == minor
    assert to_minor(str(value), currency) == minor


@settings(max_examples=200, derandomize=True, deadline=None)
@given(minor=amounts, currency=st.sampled_from(CURRENCIES), other=st.sampled_from(CURRENCIES))
def test_another_currencys_printed_amount_is_refused(minor, currency, other):
    printed = format_money(minor, other)
    if other == currency:
        assert to_minor(printed, currency) == minor
    else:
        with pytest.raises(MoneyError):
            to_minor(printed, currency)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(minor=st.integers(min_value=0, max_value=10**9))
def test_zero_decimal_currencies_have_no_minor_fraction(minor):
    assert format_money(minor, "JPY") == f"¥{minor:,}"
    assert to_minor(f"{minor}", "JPY") == minor
    with pytest.raises(MoneyError):
        to_minor(f"{minor}.5", "JPY")
