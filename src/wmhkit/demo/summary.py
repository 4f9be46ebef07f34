"""The demo's closing table: mean scores of every model on the held-out scans, per kind of data."""

from __future__ import annotations

import pandas as pd

from wmhkit.report.attribution import ATTRIBUTIONS

#: Columns of :func:`summary_table`; the scores are means over the scans of the row.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "model", "data", "scans", "dice", "hd95_mm", "avd_pct", "lesion_f1", "vol_gold_ml", "vol_pred_ml",
)
_SCORES = ("dice", "hd95_mm", "avd_pct", "lesion_f1", "vol_gold_ml", "vol_pred_ml")


def data_label(dataset: str) -> str:
    """``phantom`` for phantoms; ``real: <title>, <licence>`` for a dataset with an attribution entry.

    Examples
    --------
    >>> data_label("phantom"), data_label("lesjak2018")
    ('phantom', 'real: lesjak2018 (CC BY 4.0)')
    """
    if dataset == "phantom":
        return "phantom"
    entry = ATTRIBUTIONS.get(dataset)
    return f"real: {dataset} ({entry.licence})" if entry is not None else f"real: {dataset}"


def summary_table(metrics: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """One row per (model variant, dataset) of a demo ``metrics.csv`` table, in ``variants`` order.

    Parameters
    ----------
    metrics
        Per-scan metrics with ``variant`` and ``dataset`` columns and the columns of
        :data:`wmhkit.metrics.segmentation.METRIC_COLUMNS`.
    variants
        Model variants in display order.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`: the number of scans and the mean of each
        score (NaN values, e.g. the HD95 of an empty prediction, left out of the mean).
    """
    rows = []
    datasets = sorted(metrics["dataset"].astype(str).unique(), key=lambda name: (name != "phantom", name))
    for variant in variants:
        for dataset in datasets:
            part = metrics[(metrics["variant"] == variant) & (metrics["dataset"].astype(str) == dataset)]
            if part.empty:
                continue
            means = {score: float(pd.to_numeric(part[score], errors="coerce").mean()) for score in _SCORES}
            rows.append({"model": variant, "data": data_label(dataset), "scans": len(part), **means})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
