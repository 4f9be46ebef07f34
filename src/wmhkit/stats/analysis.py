"""The ``stats`` step: every analysis of a metrics table, written as CSV + Markdown."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from wmhkit.stats.agreement import volume_agreement
from wmhkit.stats.confounders import confounder_ols
from wmhkit.stats.groups import compare_groups, variant_subsets
from wmhkit.stats.tables import write_tables

#: Metrics analysed when none are named (those present in the table).
DEFAULT_METRICS: tuple[str, ...] = (
    "dice", "iou", "precision", "recall", "hd95_mm", "avd_pct", "lesion_recall", "lesion_precision", "lesion_f1",
)


def analyse_metrics(
    table: pd.DataFrame,
    *,
    by: Sequence[str],
    metrics: Sequence[str] | None = None,
    volumes: tuple[str, str] | None = None,
    covariates: Sequence[str] = (),
) -> dict[str, pd.DataFrame]:
    """Run the group comparisons and, with ``volumes``, the volume agreement and confounder OLS.

    Parameters
    ----------
    table
        One row per scan (and variant), e.g. ``wmhkit evaluate``'s CSV.
    by
        Grouping columns for the ANOVAs (``variant``, ``stage``, ``scanner``, ...).
    metrics
        Metric columns; default: those of :data:`DEFAULT_METRICS` present in ``table``.
    volumes
        ``(reference, predicted)`` volume columns in mL (e.g. ``vol_gold_ml``, ``vol_pred_ml``).
    covariates
        Covariate columns of the confounder OLS (needs ``volumes``).

    Returns
    -------
    dict
        ``anova``, ``pairwise``, ``skipped`` (comparisons not run: too few scans) and, with ``volumes``, ``agreement`` and ``confounders``
        tables (per variant when a ``variant`` column exists).
    """
    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if m in table.columns]
    if covariates and volumes is None:
        raise ValueError("covariates need the reference and predicted volume columns (--volumes)")
    anova, pairwise, skipped = compare_groups(table, by=by, metrics=metrics)
    results = {"anova": anova, "pairwise": pairwise, "skipped": skipped}
    if volumes is not None:
        reference, predicted = volumes
        results["agreement"] = volume_agreement(table, reference=reference, predicted=predicted)
        parts = []
        for subset, rows in variant_subsets(table):
            fits = confounder_ols(rows, reference=reference, predicted=predicted, covariates=covariates)
            fits.insert(0, "subset", subset)
            parts.append(fits)
        results["confounders"] = pd.concat(parts, ignore_index=True)
    return results


def write_results(results: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write each result table as ``<name>.csv`` and ``<name>.md`` under ``out_dir``."""
    written = []
    for name, result in results.items():
        written.extend(write_tables(result, out_dir, name))
    return written
