"""Volume agreement table: ICC(2,1), Bland–Altman and Pearson per variant."""

from __future__ import annotations

import pandas as pd

from wmhkit.metrics.volume import bland_altman, icc_2_1, pearson
from wmhkit.stats.groups import variant_subsets

AGREEMENT_COLUMNS = (
    "subset", "reference", "predicted", "n", "icc", "icc_ci_low", "icc_ci_high", "icc_p",
    "mean_difference_ml", "loa_low_ml", "loa_high_ml", "pearson_r", "pearson_p",
)


def volume_agreement(table: pd.DataFrame, *, reference: str, predicted: str) -> pd.DataFrame:
    """Agreement of ``predicted`` with ``reference`` volumes (mL), per variant when present.

    Bland–Altman differences are ``predicted − reference``.

    Returns
    -------
    pandas.DataFrame
        One row per subset (``"all"`` or ``"variant=<name>"``) with :data:`AGREEMENT_COLUMNS`.

    Raises
    ------
    ValueError
        Missing columns, or too few complete pairs (ICC needs 3).
    """
    missing = [c for c in (reference, predicted) if c not in table.columns]
    if missing:
        raise ValueError(f"volume column(s) {missing} not in the table")
    rows = []
    for subset, rows_of_subset in variant_subsets(table):
        ref = pd.to_numeric(rows_of_subset[reference], errors="coerce").to_numpy()
        pred = pd.to_numeric(rows_of_subset[predicted], errors="coerce").to_numpy()
        icc = icc_2_1(ref, pred)
        agreement = bland_altman(ref, pred)
        r, p = pearson(ref, pred)
        rows.append({
            "subset": subset, "reference": reference, "predicted": predicted, "n": icc.n,
            "icc": icc.icc, "icc_ci_low": icc.ci_low, "icc_ci_high": icc.ci_high, "icc_p": icc.p,
            "mean_difference_ml": agreement.mean_difference, "loa_low_ml": agreement.loa_low,
            "loa_high_ml": agreement.loa_high, "pearson_r": r, "pearson_p": p,
        })
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
