"""CSV files staff open in spreadsheet tools."""

from __future__ import annotations

# A cell starting with one of these is run as a formula by Excel and LibreOffice
# (CSV injection: a customer named "=HYPERLINK(…)" in an imported file).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """The value as a CSV cell that a spreadsheet shows as text, never runs."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def row(values: list[object]) -> list[str]:
    return [cell(v) for v in values]
