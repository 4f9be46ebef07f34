"""Tables as the HTML template sees them: cells with display text, a sort key and a CSS class.

The template escapes every text (Jinja2 autoescape); nothing here builds HTML.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Shown for an undefined (NaN) or missing value.
MISSING_TEXT = "—"
#: Significant digits of floats in tables.
DIGITS = 4


@dataclass(frozen=True)
class Cell:
    """One table cell.

    Attributes
    ----------
    text
        What is shown.
    sort
        Sort key read by the table's script: a float's ``repr`` for numbers, the
        text otherwise, ``""`` for missing values (sorted last).
    numeric
        Whether ``sort`` is a number (right-aligned, compared numerically).
    css
        Extra CSS class (``"flag"``, ...), or "".
    """

    text: str
    sort: str
    numeric: bool = False
    css: str = ""


@dataclass(frozen=True)
class TableView:
    """A titled table: header names and rows of :class:`Cell`.

    Attributes
    ----------
    name
        Short identifier (HTML ``id`` suffix): letters, digits and ``-`` only.
    title
        Heading shown above the table.
    columns
        Header texts.
    rows
        Rows of cells, each as long as ``columns``.
    row_css
        CSS class per row ("" for none), as long as ``rows``.
    note
        A sentence under the heading (where the table came from), or "".
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    row_css: list[str] = field(default_factory=list)
    note: str = ""


def format_value(value: object, *, digits: int = DIGITS) -> Cell:
    """A cell for one value: floats to ``digits`` significant digits, NaN/None as :data:`MISSING_TEXT`.

    Examples
    --------
    >>> format_value(0.812345).text, format_value(float("nan")).text, format_value("CN").text
    ('0.8123', '—', 'CN')
    >>> format_value(True).text, format_value(np.int64(7)).sort
    ('yes', '7')
    """
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return Cell(MISSING_TEXT, "", numeric=True)
    if isinstance(value, (bool, np.bool_)):
        return Cell("yes" if value else "no", "1" if value else "0")
    if isinstance(value, (int, np.integer)):
        return Cell(str(int(value)), str(int(value)), numeric=True)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isinf(number):
            return Cell("∞" if number > 0 else "−∞", repr(number), numeric=True)
        return Cell(f"{number:.{digits}g}", repr(number), numeric=True)
    text = "" if pd.isna(value) else str(value)
    return Cell(text, text)


def table_view(
    table: pd.DataFrame,
    *,
    name: str,
    title: str,
    columns: Sequence[str] | None = None,
    note: str = "",
    row_css: Callable[[pd.Series], str] | None = None,
) -> TableView:
    """A :class:`TableView` of ``table`` (its ``columns``, default all) in row order.

    ``row_css`` maps a row to a CSS class (e.g. ``"sig"`` for significant tests).
    """
    shown = [c for c in (columns if columns is not None else table.columns) if c in table.columns]
    rows, classes = [], []
    for _, record in table.iterrows():
        rows.append([format_value(record[c]) for c in shown])
        classes.append(row_css(record) if row_css is not None else "")
    return TableView(name=name, title=title, columns=[str(c) for c in shown], rows=rows, row_css=classes, note=note)
