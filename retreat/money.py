"""Money: integer minor units plus an ISO-4217 currency. Never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Parse a human amount ("1,250.50") into integer minor units, refusing sub-minor precision."""
    if isinstance(amount, float):
        raise MoneyError("floats are not accepted for money")
    text = str(amount).strip().replace(",", "").replace("_", "")
    for sym in _SYMBOLS.values():
        text = text.replace(sym, "")
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {amount!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not an amount: {amount!r}")
    exp = exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{currency} amounts have at most {exp} decimal places")
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
