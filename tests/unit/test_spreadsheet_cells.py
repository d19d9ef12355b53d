"""The one CSV formula guard (retreat.core.spreadsheet), and that every CSV export uses it."""

from __future__ import annotations

import csv
import io
import pathlib

from retreat.core.spreadsheet import csv_text, safe_cell


def test_every_formula_start_is_quoted_and_plain_numbers_stay_numbers():
    for bad in ('=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "- felt dizzy"):
        assert safe_cell(bad) == "'" + bad
    for fine in ("Sam Rivera", "-12.50", "+3", "42", "", None, 7, "a=b"):
        assert safe_cell(fine) == ("" if fine is None else str(fine))
    rows = list(csv.reader(io.StringIO(csv_text([["name", "note"], ["=HYPERLINK(1)", "@x"]]))))
    assert rows == [["name", "note"], ["'=HYPERLINK(1)", "'@x"]]


def test_no_csv_writer_bypasses_the_guard():
    """Every module writing CSV rows passes them through retreat.core.spreadsheet."""
    root = pathlib.Path(__file__).resolve().parents[2] / "retreat"
    writers = [p for p in root.rglob("*.py") if "writerow(" in p.read_text() and p.name != "spreadsheet.py"]
    assert writers, "expected some CSV exports"
    for p in writers:
        text = p.read_text()
        assert "safe_row" in text or "safe_cell" in text, f"{p} writes CSV without the formula guard"
