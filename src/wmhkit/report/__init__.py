"""One self-contained HTML report of a run folder: provenance, per-scan table, overlays, figures, statistics.

:func:`write_report` is the whole step; :func:`gather_run` documents (and reads)
the run folder contract, :func:`render_report` turns it into HTML.
"""

from wmhkit.report.attribution import ATTRIBUTIONS, Attribution, attributions_for
from wmhkit.report.context import ReportContext, gather_run
from wmhkit.report.render import render_report, write_report

__all__ = ["ATTRIBUTIONS", "Attribution", "ReportContext", "attributions_for", "gather_run", "render_report",
           "write_report"]
