"""Per-scan QC flags, the per-scan table and the per-variant summary of a metrics table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wmhkit.metrics.evaluate import ICV_COLUMNS
from wmhkit.metrics.segmentation import METRIC_COLUMNS
from wmhkit.report.views import Cell, TableView, format_value, table_view

#: Identification and metadata columns, shown first in this order when present.
ID_COLUMNS: tuple[str, ...] = ("subject", "session", "variant", "dataset", "scanner", "stage", "age", "sex")
#: Text columns of a metrics table (read as text, never as numbers).
TEXT_COLUMNS: tuple[str, ...] = ("subject", "session", "variant", "dataset", "scanner", "stage", "sex", "split")
#: Dice below this flags a scan ``low_dice``.
LOW_DICE = 0.3
#: Absolute volume difference (%) above this flags a scan ``volume_off``.
HIGH_AVD_PCT = 100.0
#: Flag name → what it means (shown in the report's legend).
QC_FLAGS: dict[str, str] = {
    "empty_prediction": "no WMH predicted although the gold mask has some",
    "empty_gold": "gold mask empty: overlap metrics are undefined or trivial",
    "undefined_metric": "Dice or HD95 undefined (NaN)",
    "low_dice": f"Dice below {LOW_DICE}",
    "volume_off": f"predicted volume differs from the gold volume by more than {HIGH_AVD_PCT:.0f} %",
}
#: Columns of the per-variant summary (mean ± sd).
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("dice", "F-measure"), ("iou", "IoU"), ("hd95_mm", "HD95 (mm)"), ("avd_pct", "AVD (%)"),
    ("lesion_f1", "lesion F1"),
)


def qc_flags(table: pd.DataFrame) -> pd.Series:
    """The QC flags of every row of a metrics table, as a list of :data:`QC_FLAGS` names per row.

    Columns that are absent raise no flag; NaN compares as "not flagged" except
    for ``undefined_metric``.

    Examples
    --------
    >>> rows = pd.DataFrame({"dice": [0.8, 0.1, float("nan")], "vol_pred_ml": [2.0, 0.0, 1.0],
    ...                      "vol_gold_ml": [2.0, 3.0, 0.0]})
    >>> qc_flags(rows).tolist()
    [[], ['empty_prediction', 'low_dice'], ['empty_gold', 'undefined_metric']]
    """
    def numeric(column: str) -> pd.Series:
        if column not in table.columns:
            return pd.Series(np.nan, index=table.index)
        return pd.to_numeric(table[column], errors="coerce")

    dice, hd95 = numeric("dice"), numeric("hd95_mm")
    pred_ml, gold_ml, avd = numeric("vol_pred_ml"), numeric("vol_gold_ml"), numeric("avd_pct")
    conditions = {
        "empty_prediction": (pred_ml == 0) & (gold_ml > 0),
        "empty_gold": gold_ml == 0,
        "undefined_metric": (dice.isna() if "dice" in table.columns else False)
        | (hd95.isna() if "hd95_mm" in table.columns else False),
        "low_dice": dice < LOW_DICE,
        "volume_off": avd > HIGH_AVD_PCT,
    }
    flags = pd.Series([[] for _ in range(len(table))], index=table.index, dtype=object)
    for name, condition in conditions.items():
        hits = pd.Series(condition, index=table.index).fillna(False).astype(bool)
        for index in table.index[hits]:
            flags[index].append(name)
    return flags


def scan_columns(table: pd.DataFrame) -> list[str]:
    """Columns of the per-scan table: IDs and metadata, metrics, then any other column.

    ``session`` is left out when every cell is empty.
    """
    ids = [c for c in ID_COLUMNS if c in table.columns]
    if "session" in ids and table["session"].fillna("").astype(str).str.strip().eq("").all():
        ids.remove("session")
    metrics = [c for c in (*METRIC_COLUMNS, *ICV_COLUMNS) if c in table.columns]
    rest = [c for c in table.columns if c not in ID_COLUMNS and c not in metrics]
    return ids + metrics + rest


def scan_table(table: pd.DataFrame) -> TableView:
    """The sortable per-scan table: every column of :func:`scan_columns` plus ``QC flags``."""
    columns = scan_columns(table)
    flags = qc_flags(table)
    view = table_view(table, name="scans", title="Per-scan results", columns=columns)
    rows = []
    for cells, row_flags in zip(view.rows, flags):
        text = ", ".join(row_flags)
        rows.append([*cells, Cell(text, text, css="flag" if row_flags else "")])
    row_css = ["flagged" if row_flags else "" for row_flags in flags]
    return TableView(name=view.name, title=view.title, columns=[*view.columns, "QC flags"], rows=rows,
                     row_css=row_css, note=view.note)


def flag_counts(table: pd.DataFrame) -> list[tuple[str, str, int]]:
    """``(flag, meaning, number of rows flagged)`` for every :data:`QC_FLAGS` entry."""
    flags = qc_flags(table)
    return [(name, meaning, int(sum(name in row for row in flags))) for name, meaning in QC_FLAGS.items()]


def variant_summary(table: pd.DataFrame) -> TableView | None:
    """Mean ± sd of the main metrics per variant (or over all scans), with scan counts.

    Returns
    -------
    TableView or None
        None when no :data:`SUMMARY_METRICS` column is present.
    """
    metrics = [(c, label) for c, label in SUMMARY_METRICS if c in table.columns]
    if not metrics:
        return None
    if "variant" in table.columns:
        names = sorted({str(v) for v in table["variant"] if str(v).strip()})
        groups = [(name, table[table["variant"].astype(str) == name]) for name in names]
    else:
        groups = [("all scans", table)]
    rows = []
    for name, rows_of_group in groups:
        cells = [format_value(name), format_value(len(rows_of_group))]
        for column, _ in metrics:
            values = pd.to_numeric(rows_of_group[column], errors="coerce")
            values = values[np.isfinite(values)]
            if values.empty:
                cells.append(format_value(None))
                continue
            sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            mean = float(values.mean())
            text = f"{mean:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"
            cells.append(Cell(text + ("" if len(values) == len(rows_of_group) else f" (n={len(values)})"),
                              repr(mean), numeric=True))
        rows.append(cells)
    columns = ["variant", "scans", *[f"{label} mean ± sd" for _, label in metrics]]
    return TableView(name="summary", title="At a glance", columns=columns, rows=rows, row_css=[""] * len(rows),
                     note="Mean ± sample SD over scans with a defined, finite value; n shown where some are not.")
