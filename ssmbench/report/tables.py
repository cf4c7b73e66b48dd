"""Tables from DataFrames: rich for the screen, Markdown for summary.md."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from rich.markup import escape
from rich.table import Table


def fmt(value: object, digits: int = 4) -> str:
    """Compact cell text: ints as ints, floats with ``digits`` significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def rich_table(df: pd.DataFrame, title: str | None = None, columns: Sequence[str] | None = None) -> Table:
    cols = list(columns) if columns is not None else list(df.columns)
    table = Table(title=title, show_lines=False)
    for c in cols:
        numeric = pd.api.types.is_numeric_dtype(df[c]) if c in df else False
        table.add_column(c, justify="right" if numeric else "left")
    for _, row in df.iterrows():
        table.add_row(*(escape(fmt(row.get(c))) for c in cols))
    return table


def markdown_table(df: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    cols = list(columns) if columns is not None else list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"
