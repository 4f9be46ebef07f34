"""Confounder analysis of predicted volumes (weak-label paper design).

Ordinary least squares (statsmodels) of the reference WMH volume on the
predicted volume, alone and with covariates such as ventricle, white-matter and
CSF volumes: if the covariates add much explained variance, the predicted
volume is missing something they carry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm

log = logging.getLogger(__name__)

CONFOUNDER_COLUMNS = ("model", "term", "coef", "std_err", "p", "r2", "r2_adj", "n")
_INTERCEPT = "intercept"


def confounder_ols(
    table: pd.DataFrame, *, reference: str, predicted: str, covariates: Sequence[str] = ()
) -> pd.DataFrame:
    """Fit ``reference ~ predicted`` and, with covariates, ``reference ~ predicted + covariates``.

    Both models use the same rows: those complete in every named column, so that
    their R² are comparable.

    Parameters
    ----------
    table
        One row per scan.
    reference, predicted
        Column names of the reference and the predicted volume (mL).
    covariates
        Further columns (e.g. ``vent_ml``, ``wm_ml``, ``csf_ml``).

    Returns
    -------
    pandas.DataFrame
        One row per model term with :data:`CONFOUNDER_COLUMNS`; ``model`` is
        ``"predicted"`` or ``"predicted+covariates"``; ``r2``, ``r2_adj`` and ``n``
        repeat the model's fit.

    Raises
    ------
    ValueError
        Missing or non-numeric columns, or too few complete rows for the model.
    """
    columns = [reference, predicted, *covariates]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the table")
    data = table[columns].apply(pd.to_numeric, errors="coerce")
    complete = data.notna().all(axis=1)
    if not complete.all():
        log.info("confounder OLS: %d row(s) with missing values left out", int((~complete).sum()))
    data = data[complete]
    models = [("predicted", [predicted])]
    if covariates:
        models.append(("predicted+covariates", [predicted, *covariates]))
    rows = []
    for name, terms in models:
        if len(data) <= len(terms) + 1:
            raise ValueError(f"model {name!r} needs more than {len(terms) + 1} complete rows, got {len(data)}")
        design = sm.add_constant(data[terms].to_numpy(dtype=np.float64), has_constant="add")
        fit = sm.OLS(data[reference].to_numpy(dtype=np.float64), design).fit()
        for term, coef, std_err, p in zip([_INTERCEPT, *terms], fit.params, fit.bse, fit.pvalues):
            rows.append({"model": name, "term": term, "coef": float(coef), "std_err": float(std_err),
                         "p": float(p), "r2": float(fit.rsquared), "r2_adj": float(fit.rsquared_adj),
                         "n": int(fit.nobs)})
    return pd.DataFrame(rows, columns=list(CONFOUNDER_COLUMNS))
