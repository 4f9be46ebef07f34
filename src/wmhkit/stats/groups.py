"""Group comparisons of per-scan metrics (M3SL paper design).

For each metric and each grouping column: a one-way ANOVA across the groups
(:func:`scipy.stats.f_oneway`); where it is significant (p < α), every pair of
groups is compared with a two-sample t-test with pooled variance
(:func:`scipy.stats.ttest_ind`, ``equal_var=True``) and the pair p-values are
Holm–Bonferroni corrected within that family (statsmodels ``multipletests``).

When the table has a ``variant`` column (several models scored on the same
scans), every other grouping (stage, scanner, ...) is analysed within each
variant, as in the paper: "across clinical stages per variant".
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

log = logging.getLogger(__name__)

#: Skipped comparisons named in the one log line that reports them.
SKIPPED_SHOWN = 3
#: Groups with fewer scans than this are left out of the ANOVA and pair tests (a mean and a
#: variance from one or two scans mean nothing); a comparison needs two such groups.
MIN_GROUP_SCANS = 3

#: Significance level of the ANOVA gate and of the Holm-corrected pair tests.
ALPHA = 0.05
#: Column naming model variants; other groupings are analysed within each variant.
VARIANT_COLUMN = "variant"
#: Subset label of analyses over the whole table.
ALL_SCANS = "all"

ANOVA_COLUMNS = ("metric", "grouping", "subset", "groups", "n", "f", "df_between", "df_within", "p", "significant")
PAIRWISE_COLUMNS = (
    "metric", "grouping", "subset", "group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b",
    "t", "df", "p", "p_holm", "significant",
)
#: Comparisons :func:`compare_groups` did not run, and why.
SKIPPED_COLUMNS = ("metric", "grouping", "subset", "reason")


def one_way_anova(values: pd.Series, groups: pd.Series) -> dict[str, float] | None:
    """One-way ANOVA of ``values`` across the labels in ``groups``.

    NaN values, empty group labels and groups of fewer than :data:`MIN_GROUP_SCANS` values are left out.

    Returns
    -------
    dict or None
        ``groups`` (count), ``n``, ``f``, ``df_between``, ``df_within``, ``p``; None when
        fewer than two groups, or no within-group degree of freedom, remain.
    """
    samples = _tested_samples(values, groups)
    n = sum(len(s) for s in samples.values())
    if len(samples) < 2 or n - len(samples) < 1:
        return None
    result = stats.f_oneway(*samples.values())
    return {
        "groups": len(samples), "n": n, "f": float(result.statistic),
        "df_between": len(samples) - 1, "df_within": n - len(samples), "p": float(result.pvalue),
    }


def pairwise_ttests(values: pd.Series, groups: pd.Series, *, alpha: float = ALPHA) -> pd.DataFrame:
    """Pooled-variance t-tests between every pair of groups, Holm–Bonferroni corrected.

    Returns
    -------
    pandas.DataFrame
        One row per pair (groups in sorted order): ``group_a``, ``group_b``, ``n_a``,
        ``n_b``, ``mean_a``, ``mean_b``, ``t``, ``df``, ``p``, ``p_holm``, ``significant``
        (``p_holm`` < ``alpha``). Groups of fewer than :data:`MIN_GROUP_SCANS` values
        are left out.
    """
    samples = _tested_samples(values, groups)
    rows = []
    for group_a, group_b in itertools.combinations(sorted(samples), 2):
        a, b = samples[group_a], samples[group_b]
        result = stats.ttest_ind(a, b, equal_var=True)
        rows.append({
            "group_a": group_a, "group_b": group_b, "n_a": len(a), "n_b": len(b),
            "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)),
            "t": float(result.statistic), "df": len(a) + len(b) - 2, "p": float(result.pvalue),
        })
    table = pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS[3:-2]))
    if rows:
        reject, corrected, _, _ = multipletests(table["p"].to_numpy(), alpha=alpha, method="holm")
        table["p_holm"] = corrected
        table["significant"] = reject
    else:
        table["p_holm"] = pd.Series(dtype=float)
        table["significant"] = pd.Series(dtype=bool)
    return table


def compare_groups(
    table: pd.DataFrame, *, by: Sequence[str], metrics: Sequence[str], alpha: float = ALPHA
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """ANOVA of every metric across every grouping; pair tests where the ANOVA is significant.

    Groups with fewer than :data:`MIN_GROUP_SCANS` scans are left out; a comparison with fewer
    than two groups left, or whose values are all equal, is not run and is listed in ``skipped``.

    Parameters
    ----------
    table
        One row per scan (and variant), e.g. the output of ``wmhkit evaluate``.
    by
        Grouping columns (``variant``, ``stage``, ``scanner``, ...).
    metrics
        Numeric metric columns (``dice``, ``hd95_mm``, ...).
    alpha
        Significance level of the ANOVA gate.

    Returns
    -------
    anova, pairwise, skipped
        Tables with :data:`ANOVA_COLUMNS`, :data:`PAIRWISE_COLUMNS` and :data:`SKIPPED_COLUMNS`;
        ``subset`` is ``"all"`` or ``"variant=<name>"``.

    Raises
    ------
    ValueError
        A named column is missing, or a metric column is not numeric.
    """
    _require_columns(table, [*by, *metrics])
    for metric in metrics:
        if not pd.api.types.is_numeric_dtype(table[metric]):
            raise ValueError(f"metric column {metric!r} is not numeric; choose numeric columns with --metrics")
    anova_rows, pair_tables, skipped = [], [], []
    for grouping in by:
        for subset, rows in _subsets(table, grouping):
            for metric in metrics:
                samples = _samples(rows[metric], rows[grouping])
                reason = _untestable(samples)
                if reason:
                    skipped.append({"metric": metric, "grouping": grouping, "subset": subset, "reason": reason})
                    continue
                result = one_way_anova(rows[metric], rows[grouping])
                significant = bool(result["p"] < alpha)
                anova_rows.append({"metric": metric, "grouping": grouping, "subset": subset, **result,
                                   "significant": significant})
                if significant:
                    pairs = pairwise_ttests(rows[metric], rows[grouping], alpha=alpha)
                    pairs.insert(0, "subset", subset)
                    pairs.insert(0, "grouping", grouping)
                    pairs.insert(0, "metric", metric)
                    pair_tables.append(pairs)
    if skipped:
        shown = "; ".join(f"{s['metric']} by {s['grouping']} ({s['subset']})" for s in skipped[:SKIPPED_SHOWN])
        log.info("%d comparison(s) not run (too few scans per group, or no variation): %s%s", len(skipped), shown,
                 "; ..." if len(skipped) > SKIPPED_SHOWN else "")
    anova = pd.DataFrame(anova_rows, columns=list(ANOVA_COLUMNS))
    pairwise = (pd.concat(pair_tables, ignore_index=True) if pair_tables
                else pd.DataFrame(columns=list(PAIRWISE_COLUMNS)))
    return anova, pairwise[list(PAIRWISE_COLUMNS)], pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS))


def _untestable(samples: dict[str, np.ndarray]) -> str:
    """Why a comparison of ``samples`` (group → values) means nothing, or "" when it can be tested."""
    large = _large_groups(samples)
    if len(large) < 2:
        sizes = ", ".join(f"{group}: {len(values)}" for group, values in samples.items()) or "no values"
        return f"fewer than two groups with {MIN_GROUP_SCANS} or more scans ({sizes})"
    values = np.concatenate(list(large.values()))
    if np.ptp(values) == 0:
        return f"every value is {values[0]:g} (nothing to compare)"
    return ""


def variant_subsets(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``[("variant=<name>", rows), ...]`` when a ``variant`` column exists, else ``[("all", table)]``."""
    if VARIANT_COLUMN not in table.columns:
        return [(ALL_SCANS, table)]
    variants = table[VARIANT_COLUMN].fillna("").astype(str)
    return [(f"{VARIANT_COLUMN}={name}", table[variants == name]) for name in sorted(variants.unique()) if name]


def _subsets(table: pd.DataFrame, grouping: str) -> list[tuple[str, pd.DataFrame]]:
    """The whole table, or one part per variant when grouping by something else."""
    if grouping == VARIANT_COLUMN:
        return [(ALL_SCANS, table)]
    return variant_subsets(table)


def _samples(values: pd.Series, groups: pd.Series) -> dict[str, np.ndarray]:
    """Group label → finite values (NaN values and empty labels left out), labels sorted."""
    values = pd.to_numeric(values, errors="coerce")
    labels = groups.fillna("").astype(str)
    keep = values.notna() & (labels != "")
    samples = {}
    for label in sorted(labels[keep].unique()):
        samples[label] = values[keep & (labels == label)].to_numpy(dtype=np.float64)
    return samples


def _tested_samples(values: pd.Series, groups: pd.Series) -> dict[str, np.ndarray]:
    """:func:`_samples` without the groups of fewer than :data:`MIN_GROUP_SCANS` values."""
    return _large_groups(_samples(values, groups))


def _large_groups(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {group: values for group, values in samples.items() if len(values) >= MIN_GROUP_SCANS}


def _require_columns(table: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the table (columns: {', '.join(map(str, table.columns))})")
