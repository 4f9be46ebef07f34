"""Agreement between two sets of WMH volumes (e.g. gold vs predicted, in mL).

* :func:`icc_2_1` — ICC(2,1) of Shrout & Fleiss (McGraw & Wong ICC(A,1)):
  two-way random effects, absolute agreement, single measurement, with the
  F-based 95 % confidence interval of McGraw & Wong (1996), as pingouin reports it.
* :func:`bland_altman` — mean difference and 95 % limits of agreement.
* :func:`pearson` — Pearson correlation and its p-value.

All take two equally long 1-D sequences of paired measurements, one pair per
subject; pairs with a NaN on either side are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

log = logging.getLogger(__name__)

#: Two-sided confidence level of intervals and limits of agreement.
CONFIDENCE = 0.95
_LOA_Z = 1.96  # Bland & Altman (1986) limits: mean ± 1.96 SD
_RELATIVE_ZERO = 1e-12


@dataclass(frozen=True)
class IccResult:
    """ICC(2,1) with its F test and 95 % confidence interval.

    Attributes
    ----------
    icc
        The intraclass correlation.
    ci_low, ci_high
        95 % confidence interval.
    f, df1, df2, p
        F = MSR / MSE with ``(n − 1, (n − 1)(k − 1))`` degrees of freedom and its p-value.
    n
        Number of subjects (complete pairs).
    """

    icc: float
    ci_low: float
    ci_high: float
    f: float
    df1: int
    df2: int
    p: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for tables)."""
        return asdict(self)


def icc_2_1(rater_a: np.ndarray, rater_b: np.ndarray) -> IccResult:
    """ICC(2,1) = (MSR − MSE) / (MSR + (k−1)·MSE + k·(MSC − MSE)/n) for two raters.

    Written out (a two-way ANOVA of an n×k table) rather than taken from pingouin,
    which is a heavy dependency for a dozen lines; tests compare it with pingouin's
    ``intraclass_corr`` "ICC2".

    Parameters
    ----------
    rater_a, rater_b
        Paired measurements (e.g. gold and predicted volumes in mL), shape ``(n,)``.

    Returns
    -------
    IccResult

    Raises
    ------
    ValueError
        Fewer than 3 complete pairs, or no variation at all.
    """
    ratings = _paired(rater_a, rater_b, minimum=3)
    n, k = ratings.shape
    grand = ratings.mean()
    ss_rows = k * np.sum((ratings.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((ratings.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((ratings - grand) ** 2) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    if denominator == 0:
        raise ValueError("ICC is undefined: the volumes do not vary at all")
    icc = (msr - mse) / denominator
    df1, df2 = n - 1, (n - 1) * (k - 1)
    if mse > _RELATIVE_ZERO * (msr + msc):  # rounding leaves ~1e-30 where the residual is 0
        f_value = msr / mse
        ci_low, ci_high = _icc_2_1_ci(icc, msr, msc, mse, n, k)
    else:  # every subject's difference is the same: F is infinite, the interval undefined
        log.warning("the two sets of volumes differ by a constant; the ICC interval is undefined")
        f_value, ci_low, ci_high = np.inf, np.nan, np.nan
    p_value = float(stats.f.sf(f_value, df1, df2))
    return IccResult(float(icc), ci_low, ci_high, float(f_value), df1, df2, p_value, n)


def _icc_2_1_ci(icc: float, msr: float, msc: float, mse: float, n: int, k: int) -> tuple[float, float]:
    """McGraw & Wong (1996) case 2A interval, with Satterthwaite's approximate df."""
    alpha = 1.0 - CONFIDENCE
    fj = msc / mse
    numerator = (k - 1) * (n - 1) * (k * icc * fj + n * (1 + (k - 1) * icc) - k * icc) ** 2
    denominator = (n - 1) * k**2 * icc**2 * fj**2 + (n * (1 + (k - 1) * icc) - k * icc) ** 2
    v = numerator / denominator
    f_upper = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_lower = stats.f.ppf(1 - alpha / 2, v, n - 1)
    low = n * (msr - f_upper * mse) / (f_upper * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f_lower * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_lower * msr)
    return float(low), float(high)


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman agreement of ``b − a`` (same units as the inputs, e.g. mL).

    Attributes
    ----------
    mean_difference
        Mean of ``b − a`` (the bias).
    sd_difference
        Sample standard deviation (ddof 1) of ``b − a``.
    loa_low, loa_high
        95 % limits of agreement, bias ∓ 1.96 SD.
    n
        Number of complete pairs.
    """

    mean_difference: float
    sd_difference: float
    loa_low: float
    loa_high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for tables)."""
        return asdict(self)


def bland_altman(a: np.ndarray, b: np.ndarray) -> BlandAltman:
    """Mean difference and 95 % limits of agreement of paired measurements ``b − a``.

    Examples
    --------
    >>> result = bland_altman([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    >>> result.mean_difference, result.sd_difference
    (1.0, 1.0)
    >>> round(result.loa_low, 2), round(result.loa_high, 2)
    (-0.96, 2.96)
    """
    pairs = _paired(a, b, minimum=2)
    difference = pairs[:, 1] - pairs[:, 0]
    bias = float(difference.mean())
    sd = float(difference.std(ddof=1))
    return BlandAltman(bias, sd, bias - _LOA_Z * sd, bias + _LOA_Z * sd, len(difference))


def pearson(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson correlation ``r`` of paired measurements and its two-sided p-value."""
    pairs = _paired(a, b, minimum=3)
    result = stats.pearsonr(pairs[:, 0], pairs[:, 1])
    return float(result.statistic), float(result.pvalue)


def _paired(a: np.ndarray, b: np.ndarray, *, minimum: int) -> np.ndarray:
    """Stack two sequences as an ``(n, 2)`` float array, dropping pairs with NaN."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired measurements differ in length ({a.size} vs {b.size})")
    pairs = np.column_stack([a, b])
    complete = np.isfinite(pairs).all(axis=1)
    if not complete.all():
        log.info("%d pair(s) with a missing value dropped", int((~complete).sum()))
    pairs = pairs[complete]
    if len(pairs) < minimum:
        raise ValueError(f"need at least {minimum} complete pairs of measurements, got {len(pairs)}")
    return pairs
