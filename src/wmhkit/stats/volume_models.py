"""The evaluation table of volume models: agreement with the reference and the confounder analysis.

Input: per-scan predictions (:func:`wmhkit.infer.volume.predict_scans`, one table
per model, optionally stacked with a ``model`` and a ``set`` column). Output:

* :func:`agreement_table` — per (model, set): n, ICC(2,1) with its 95 % CI,
  Pearson r, Bland–Altman bias and limits (predicted − reference, mL) and the
  mean Dice of the segmentations against the gold;
* :func:`confounder_table` — per (model, set): OLS of the reference volume on
  the predicted volume, alone and with the ventricle, CSF and WM volumes
  (:func:`wmhkit.stats.confounders.confounder_ols`);
* :func:`seed_summary` — mean and SD over repeated initialisations.

Severity models are scored the same way on grades (``reference="fazekas"``,
``predicted="predicted_grade"``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wmhkit.metrics.volume import bland_altman, icc_2_1, pearson
from wmhkit.stats.confounders import CONFOUNDER_COLUMNS, confounder_ols

log = logging.getLogger(__name__)

GROUP_COLUMNS: tuple[str, ...] = ("model", "set")
AGREEMENT_COLUMNS: tuple[str, ...] = (
    *GROUP_COLUMNS, "reference", "predicted", "n", "icc", "icc_ci_low", "icc_ci_high", "pearson_r", "pearson_p",
    "bias", "loa_low", "loa_high", "dice_mean", "dice_n",
)
DEFAULT_COVARIATES: tuple[str, ...] = ("vent_ml", "wm_ml", "csf_ml")


def _groups(scans: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    table = scans.copy()
    for column in GROUP_COLUMNS:
        if column not in table.columns:
            table[column] = "all"
    return [((str(m), str(s)), part) for (m, s), part in table.groupby(list(GROUP_COLUMNS), sort=False)]


def agreement_table(scans: pd.DataFrame, *, reference: str = "volume_ml",
                    predicted: str = "predicted_volume_ml") -> pd.DataFrame:
    """ICC(2,1) + 95 % CI, Pearson r, Bland–Altman and mean Dice per (model, set).

    Raises
    ------
    ValueError
        Missing columns, or fewer than 3 complete pairs in a group.
    """
    missing = [c for c in (reference, predicted) if c not in scans.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the predictions table")
    rows = []
    for (model, subset), part in _groups(scans):
        ref = pd.to_numeric(part[reference], errors="coerce").to_numpy(dtype=np.float64)
        pred = pd.to_numeric(part[predicted], errors="coerce").to_numpy(dtype=np.float64)
        icc = icc_2_1(ref, pred)
        r, p = _pearson_or_nan(ref, pred, model, subset)
        agreement = bland_altman(ref, pred)
        dice = pd.to_numeric(part.get("dice", pd.Series(dtype=float)), errors="coerce").dropna()
        rows.append({"model": model, "set": subset, "reference": reference, "predicted": predicted, "n": icc.n,
                     "icc": icc.icc, "icc_ci_low": icc.ci_low, "icc_ci_high": icc.ci_high, "pearson_r": r,
                     "pearson_p": p, "bias": agreement.mean_difference, "loa_low": agreement.loa_low,
                     "loa_high": agreement.loa_high, "dice_mean": float(dice.mean()) if len(dice) else np.nan,
                     "dice_n": len(dice)})
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


def _pearson_or_nan(ref: np.ndarray, pred: np.ndarray, model: str, subset: str) -> tuple[float, float]:
    """Pearson r and p, or NaN when either side is constant (e.g. a collapsed model predicting one value)."""
    complete = np.isfinite(ref) & np.isfinite(pred)
    if np.ptp(ref[complete]) == 0 or np.ptp(pred[complete]) == 0:
        log.warning("%s on %s: constant volumes, Pearson r is undefined", model, subset)
        return float("nan"), float("nan")
    return pearson(ref, pred)


def confounder_table(scans: pd.DataFrame, *, reference: str = "volume_ml", predicted: str = "predicted_volume_ml",
                     covariates: Sequence[str] = DEFAULT_COVARIATES) -> pd.DataFrame:
    """OLS of ``reference`` on ``predicted`` with and without ``covariates``, per (model, set): R², coefficients, p.

    The ``fit`` column names the OLS model (``predicted`` or ``predicted+covariates``).
    """
    frames = []
    for (model, subset), part in _groups(scans):
        fit = confounder_ols(part, reference=reference, predicted=predicted, covariates=covariates)
        fit = fit.rename(columns={"model": "fit"})  # "predicted" or "predicted+covariates"
        fit.insert(0, "set", subset)
        fit.insert(0, "model", model)
        frames.append(fit)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[*GROUP_COLUMNS, "fit", *CONFOUNDER_COLUMNS[1:]])


def seed_summary(agreement: pd.DataFrame, *, by: str = "model", seed_column: str = "seed",
                 metrics: Sequence[str] = ("icc", "pearson_r", "bias", "dice_mean")) -> pd.DataFrame:
    """Mean and SD (ddof 1) of agreement metrics over seeds, per ``by`` value and set.

    ``agreement`` needs a ``seed_column`` next to ``by`` (e.g. model ``weak`` with seeds 0, 1, 2).
    """
    missing = [c for c in (by, seed_column, "set") if c not in agreement.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the agreement table")
    grouped = agreement.groupby([by, "set"], sort=False)
    summary = grouped[list(metrics)].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary.insert(0, "seeds", grouped[seed_column].nunique())
    return summary.reset_index()
