"""Group statistics of per-scan metrics: ANOVA + Holm-corrected t-tests, volume agreement, OLS."""

from wmhkit.stats.agreement import volume_agreement
from wmhkit.stats.analysis import analyse_metrics, write_results
from wmhkit.stats.confounders import confounder_ols
from wmhkit.stats.groups import compare_groups, one_way_anova, pairwise_ttests
from wmhkit.stats.tables import read_table, to_markdown, write_csv, write_tables

__all__ = [
    "analyse_metrics", "compare_groups", "confounder_ols", "one_way_anova", "pairwise_ttests",
    "read_table", "to_markdown", "volume_agreement", "write_csv", "write_results", "write_tables",
]
