"""Label quality: each bronze method and the silver consensus scored against gold masks.

Scores use :func:`wmhkit.metrics.evaluate.evaluate` (MICCAI 2017 semantics) in
the scan's native space: the gold is the manifest's ``native_gold`` (a manifest
written by ``wmhkit prepare`` and later stages) or ``gold`` (a raw manifest).
Each bronze row also carries that rater's sensitivity and specificity as STAPLE
estimated them for the scan (from the silver mask's sidecar; NaN without one), so
the table shows side by side how good a rater was and how much the consensus
trusted it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_mask
from wmhkit.io.provenance import sidecar_path
from wmhkit.metrics.evaluate import evaluate

#: Metrics kept in the quality tables.
QUALITY_METRICS: tuple[str, ...] = ("dice", "hd95_mm", "avd_pct", "lesion_f1", "vol_pred_ml", "vol_gold_ml")
#: STAPLE's per-scan estimates of each bronze rater, read from the silver sidecar.
RATER_ESTIMATES: tuple[str, ...] = ("staple_sensitivity", "staple_specificity")


def label_quality(manifest: str | os.PathLike[str], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (scan with gold, label): the label's metrics against the gold.

    Parameters
    ----------
    manifest
        A manifest with ``bronze_<method>`` and/or ``silver`` columns and gold masks.
    labels
        Label columns to score (default: every ``bronze_*`` column, then ``silver``).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject``, ``session``, ``scanner``, ``label``, :data:`QUALITY_METRICS` and
        :data:`RATER_ESTIMATES` (NaN for silver and for raters STAPLE did not fuse);
        empty when no scan has both gold and labels.
    """
    table = read_manifest(manifest)
    columns = list(labels) if labels is not None else (
        [c for c in table.table.columns if c.startswith("bronze_")] + (["silver"] if "silver" in table.table.columns else [])
    )
    rows = []
    for row in table.rows():
        gold = _gold(table.root, row)
        if gold is None:
            continue
        estimates = staple_estimates(table.root / row["silver"]) if row.get("silver", "") else {}
        for column in columns:
            if not row.get(column, ""):
                continue
            metrics = evaluate(table.root / row[column], gold, resample=True)
            label = column.removeprefix("bronze_")
            rows.append({"subject": row["subject"], "session": row.get("session", ""),
                         "scanner": row.get("scanner", ""), "label": label,
                         **{m: metrics[m] for m in QUALITY_METRICS},
                         **dict(zip(RATER_ESTIMATES, estimates.get(label, (math.nan, math.nan))))})
    return pd.DataFrame(rows, columns=["subject", "session", "scanner", "label", *QUALITY_METRICS, *RATER_ESTIMATES])


def staple_estimates(silver_mask: Path) -> dict[str, tuple[float, float]]:
    """Rater → (sensitivity, specificity) as STAPLE estimated them, from the silver mask's sidecar ({} without one)."""
    try:
        raters = json.loads(sidecar_path(silver_mask).read_text(encoding="utf-8")).get("raters", {})
    except (OSError, json.JSONDecodeError):
        return {}
    return {name: tuple(math.nan if v.get(k) is None else float(v[k]) for k in ("sensitivity", "specificity"))
            for name, v in raters.items()}


def quality_summary(scores: pd.DataFrame, by: Sequence[str] = ("label",)) -> pd.DataFrame:
    """Mean (± sd) of each metric per group, with the number of scans; NaNs (undefined cases) skipped."""
    grouped = scores.groupby(list(by), sort=True)
    summary = grouped[list(QUALITY_METRICS[:4])].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary.insert(0, "n_scans", grouped.size())
    return summary.reset_index()


def _gold(root: Path, row: dict[str, str]) -> Path | None:
    cell = row.get("native_gold", "") or row.get("gold", "")
    if not cell:
        return None
    path = root / cell
    return path if path.is_file() else None


def finite_mean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when none)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def error_agreement(manifest: str | os.PathLike[str]) -> pd.DataFrame:
    """How much the bronze methods share their errors, over the scans with gold.

    For each pair of methods: the mean over scans of the Dice overlap of their
    false-positive masks (``fp_dice``) and of their false-negative masks
    (``fn_dice``); NaN terms (both empty) are skipped. Low values mean the methods
    err in different places, which is what a consensus can exploit.
    """
    table = read_manifest(manifest)
    methods = [c for c in table.table.columns if c.startswith("bronze_")]
    sums: dict[tuple[str, str], list[list[float]]] = {}
    for row in table.rows():
        gold_path = _gold(table.root, row)
        present = [c for c in methods if row.get(c, "")]
        if gold_path is None or len(present) < 2:
            continue
        gold = load_mask(gold_path, allowed_labels=(0, 1, 2)).array == 1
        masks = {c: load_mask(table.root / row[c]).array.astype(bool) for c in present}
        if any(m.shape != gold.shape for m in masks.values()):
            continue
        for i, a in enumerate(present):
            for b in present[i + 1:]:
                entry = sums.setdefault((a, b), [[], []])
                entry[0].append(_dice(masks[a] & ~gold, masks[b] & ~gold))
                entry[1].append(_dice(~masks[a] & gold, ~masks[b] & gold))
    rows = [{"method_a": a.removeprefix("bronze_"), "method_b": b.removeprefix("bronze_"),
             "fp_dice": finite_mean(fp), "fn_dice": finite_mean(fn)} for (a, b), (fp, fn) in sorted(sums.items())]
    return pd.DataFrame(rows, columns=["method_a", "method_b", "fp_dice", "fn_dice"])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else float("nan")
