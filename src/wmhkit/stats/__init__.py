"""Group statistics of per-scan metrics: ANOVA + Holm-corrected t-tests, volume agreement, OLS."""

# The names are imported on first use (PEP 562): importing one light submodule, such as
# the table writer, must not pay for the statistics libraries the others need.
import importlib
from typing import Any

_SUBMODULE = {
    "analyse_metrics": "wmhkit.stats.analysis",
    "compare_groups": "wmhkit.stats.groups",
    "confounder_ols": "wmhkit.stats.confounders",
    "one_way_anova": "wmhkit.stats.groups",
    "pairwise_ttests": "wmhkit.stats.groups",
    "read_table": "wmhkit.stats.tables",
    "to_markdown": "wmhkit.stats.tables",
    "volume_agreement": "wmhkit.stats.agreement",
    "write_csv": "wmhkit.stats.tables",
    "write_results": "wmhkit.stats.analysis",
    "write_tables": "wmhkit.stats.tables",
}

__all__ = sorted(_SUBMODULE)


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_SUBMODULE[name]), name)
