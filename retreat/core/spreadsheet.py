"""The one guard for every CSV the app writes (finance ledger and payouts, the cohort roster, the
audit log, the dosing session record): spreadsheet formula injection.

A spreadsheet reads a cell beginning with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or a
carriage return) as a formula, so ``=HYPERLINK(...)`` typed as a name or a note would run when
someone opens the export. Every such cell is prefixed with a single quote, in every column; a plain
number (``-12.50``, a refund) is no formula and stays as it is, so amounts still add up.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def safe_cell(value) -> str:
    """``value`` as the text of one CSV cell that no spreadsheet evaluates."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def safe_row(row: Iterable) -> list[str]:
    return [safe_cell(c) for c in row]


def csv_text(rows: Iterable[Iterable], *, lineterminator: str = "\r\n") -> str:
    """Rows (a header first) as CSV text, every cell through ``safe_cell``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    for row in rows:
        writer.writerow(safe_row(row))
    return buf.getvalue()
