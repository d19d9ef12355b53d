"""Money: integer minor units plus an ISO-4217 currency. Never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 exponents that differ from 2.
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}
SUPPORTED_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY")


class MoneyError(ValueError):
    pass


def exponent(currency: str) -> int:
    cur = normalize_currency(currency)
    return _EXPONENTS.get(cur, 2)


def normalize_currency(currency: str) -> str:
    cur = (currency or "").strip().upper()
    if len(cur) != 3 or not cur.isalpha():
        raise MoneyError(f"not an ISO-4217 currency code: {currency!r}")
    return cur


# What a person may write before or after an amount, and the one currency each mark means.
# A bare "$" means US dollars only: format_money prints USD as "$" and the other dollars with
# their prefix (CA$, A$), so a "$1,000" copied from any of our pages is a US amount; accepting it
# for a CAD cohort would turn it silently into Canadian dollars. "¥" is the yen (CN¥ the yuan).
# Any ISO code (USD, cad, "12.50 CHF") is accepted too, before or after the number.
_MARKS = {
    "$": "USD", "US$": "USD", "CA$": "CAD", "C$": "CAD", "A$": "AUD", "AU$": "AUD",
    "NZ$": "NZD", "HK$": "HKD", "S$": "SGD", "MX$": "MXN", "€": "EUR", "£": "GBP",
    "¥": "JPY", "JP¥": "JPY", "CN¥": "CNY", "₩": "KRW", "₹": "INR",
}
# sign, mark, sign, number (digits with optional thousands commas, optional fraction), mark.
_AMOUNT = re.compile(
    r"(?P<sign>[-+]?)\s*(?P<pre>[^\d.+-]*?)\s*(?P<sign2>[-+]?)\s*"
    r"(?P<number>\d[\d,_]*(?:\.\d*)?|\.\d+)\s*(?P<post>[^\d.+-]*)"
)
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+")


def currency_marks(currency: str) -> list[str]:
    """The marks ``to_minor`` accepts for a currency, longest first (its code last)."""
    cur = normalize_currency(currency)
    return sorted((m for m, c in _MARKS.items() if c == cur and m != cur), key=len, reverse=True) + [cur]


def _mark_currency(mark: str) -> str | None:
    mark = mark.upper()
    if mark in _MARKS:
        return _MARKS[mark]
    return mark if len(mark) == 3 and mark.isascii() and mark.isalpha() else None


def _parse_amount(text: str, currency: str) -> Decimal:
    m = _AMOUNT.fullmatch(re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " ")).strip())
    if m is None or (m["sign"] and m["sign2"]) or (m["pre"] and m["post"]):
        raise MoneyError(f"not an amount: {text!r}")
    mark = (m["pre"] or m["post"]).replace(" ", "")
    if mark:
        marked = _mark_currency(mark)
        if marked is None:
            raise MoneyError(f"not a currency symbol or code: {mark!r} in {text!r}")
        if marked != currency:
            accepted = ", ".join(currency_marks(currency))
            raise MoneyError(f"{mark!r} marks an amount in {marked}, not {currency} (write {accepted} or no symbol)")
    whole = m["number"].split(".", 1)[0].replace("_", "")
    if "," in whole and not _GROUPED.fullmatch(whole):
        raise MoneyError(f"commas only group thousands (1,250.50): {text!r}")
    return Decimal((m["sign"] or m["sign2"]) + m["number"].replace(",", "").replace("_", ""))


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Parse a human amount ("1,250.50", "CA$100", "12.50 CHF") into integer minor units.

    A symbol or code, if given, must mean ``currency`` (``_MARKS``); sub-minor precision is refused.
    """
    if isinstance(amount, float):
        raise MoneyError("floats are not accepted for money")
    cur = normalize_currency(currency)
    if isinstance(amount, int | Decimal):
        value = Decimal(amount)
    else:
        value = _parse_amount(str(amount), cur)
    if not value.is_finite():
        raise MoneyError(f"not an amount: {amount!r}")
    exp = exponent(cur)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{cur} amounts have at most {exp} decimal places")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    return Decimal(int(amount_minor)).scaleb(-exponent(currency))


def format_money(amount_minor: int | None, currency: str) -> str:
    """Format for people: ``$1,250.00``, ``¥5,000``, ``-€12.50``."""
    if amount_minor is None:
        return ""
    cur = normalize_currency(currency)
    exp = exponent(cur)
    value = from_minor(abs(amount_minor), cur).quantize(Decimal(1).scaleb(-exp), rounding=ROUND_HALF_UP)
    number = f"{value:,.{exp}f}"
    sign = "-" if amount_minor < 0 else ""
    symbol = _SYMBOLS.get(cur)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {cur}"


def percent_of(amount_minor: int, percent: int | Decimal) -> int:
    """Percentage of an amount, rounded half up to a whole minor unit."""
    return int((Decimal(amount_minor) * Decimal(percent) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
