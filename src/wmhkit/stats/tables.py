"""Result tables on disk: CSV (atomic, formula-safe, NaN as empty) and Markdown.

CSV cells that a spreadsheet would run as a formula (text starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) get a leading ``'``; numbers and
text that reads as a plain number are written as they are. :func:`read_table`
undoes the prefix.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from wmhkit.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ESCAPE = "'"


def formula_safe(cell: object) -> object:
    """Prefix ``'`` to text that a spreadsheet would run as a formula; other cells unchanged.

    Examples
    --------
    >>> formula_safe("=HYPERLINK(1)"), formula_safe("-1.5"), formula_safe(-1.5), formula_safe("CN")
    ("'=HYPERLINK(1)", '-1.5', -1.5, 'CN')
    """
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.match(cell):
        return _ESCAPE + cell
    return cell


def write_csv(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` as UTF-8 CSV atomically: columns and rows as given, NaN as empty cells.

    Floats keep full precision (``repr``) so that re-runs are byte-identical and
    nothing is lost. The number of empty (NaN) numeric cells is logged.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    missing = int(table.select_dtypes(include="number").isna().to_numpy().sum())
    safe = table.map(formula_safe) if len(table) else table
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, lineterminator="\n", na_rep="")
    if missing:
        log.debug("%s: %d undefined (NaN) value(s) written as empty cells", Path(path).name, missing)
    return write_text_atomic(path, buffer.getvalue())


def read_table(path: str | os.PathLike[str], *, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV written by :func:`write_csv` (empty cells → NaN, ``'`` prefixes removed).

    Columns named in ``text_columns`` are kept as text (empty → ``""``).
    """
    table = pd.read_csv(path, dtype={c: str for c in text_columns}, keep_default_na=False, na_values=[""])
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].map(_unescape)
    for column in text_columns:
        if column in table.columns:
            table[column] = table[column].astype(object).fillna("").astype(str)  # all-empty columns read as float
    return table


def to_markdown(table: pd.DataFrame, *, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table of ``table``; floats to ``digits`` significant digits.

    Examples
    --------
    >>> print(to_markdown(pd.DataFrame({"group": ["CN"], "dice": [0.812345]})), end="")
    | group | dice |
    | --- | --- |
    | CN | 0.8123 |
    """
    header = "| " + " | ".join(_markdown_cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    lines = [header, rule]
    for record in table.itertuples(index=False):
        lines.append("| " + " | ".join(_format_cell(value, digits) for value in record) + " |")
    return "\n".join(lines) + "\n"


def write_tables(table: pd.DataFrame, out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write ``table`` as ``<out_dir>/<name>.csv`` and ``<out_dir>/<name>.md`` (both atomic)."""
    out_dir = Path(out_dir)
    csv_path = write_csv(table, out_dir / f"{name}.csv")
    md_path = write_text_atomic(out_dir / f"{name}.md", to_markdown(table))
    return csv_path, md_path


def _format_cell(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}"
    return _markdown_cell(value)


def _markdown_cell(value: object) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("|", "\\|")


def _unescape(cell: object) -> object:
    if isinstance(cell, str) and cell.startswith(_ESCAPE) and cell[1:].startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell
