"""The README's demo: the whole of wmhkit end to end on a phantom cohort (and optionally real scans).

:func:`run_demo` synthesizes a multi-scanner phantom cohort, prepares it, makes
bronze and silver labels, trains the baseline, M3SL, (transfer) and weak-label
volume models, predicts the held-out gold scans, evaluates, runs the statistics
and writes the HTML report; see :mod:`wmhkit.demo.pipeline`.
"""

from wmhkit.demo.pipeline import FULL_COHORT, QUICK_COHORT, DemoResult, run_demo
from wmhkit.demo.summary import SUMMARY_COLUMNS, summary_table

__all__ = ["FULL_COHORT", "QUICK_COHORT", "SUMMARY_COLUMNS", "DemoResult", "run_demo", "summary_table"]
