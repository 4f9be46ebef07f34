"""Render the report context with the packaged Jinja2 template into one self-contained HTML file.

Autoescaping is on for every value, so subject IDs and metadata (which a user
can edit in a CSV) reach the page as text, never as markup or script. Figures
are embedded as PNG data URIs; the page fetches nothing. Its Content Security
Policy allows no network source and only the packaged table script (by its
SHA-256), so even markup that slipped past escaping could not run a script.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from wmhkit.io.atomic import write_text_atomic
from wmhkit.report.context import DEFAULT_MAX_OVERLAYS, ReportContext, gather_run

log = logging.getLogger(__name__)

#: The template, in the package's ``templates`` folder.
TEMPLATE_NAME = "report.html.j2"
#: The page's only script (sortable tables), inlined and allowed by its hash.
SCRIPT_NAME = "report.js"
#: Default report file name inside the run folder.
REPORT_FILE = "report.html"


def template_environment() -> Environment:
    """The Jinja2 environment: packaged templates, autoescape always on, undefined names an error."""
    # autoescape=True rather than select_autoescape(): the template ends in ".j2", which
    # select_autoescape would not recognise as HTML.
    return Environment(
        loader=PackageLoader("wmhkit", "templates"), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def render_report(context: ReportContext) -> str:
    """The report page for ``context`` as an HTML string."""
    environment = template_environment()
    script, _, _ = environment.loader.get_source(environment, SCRIPT_NAME)
    script_hash = "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return environment.get_template(TEMPLATE_NAME).render(report=context, script=Markup(script),
                                                          script_hash=script_hash)


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    max_overlays: int = DEFAULT_MAX_OVERLAYS,
    baseline: str = "baseline",
    improved: str = "m3sl",
) -> Path:
    """Gather ``run_dir`` and write its HTML report atomically.

    Parameters
    ----------
    run_dir
        The run folder (contract in :mod:`wmhkit.report.context`).
    out
        Report file; default ``run_dir/report.html``.
    max_overlays, baseline, improved
        See :func:`wmhkit.report.context.gather_run`.

    Returns
    -------
    pathlib.Path
        The written report.
    """
    context = gather_run(run_dir, max_overlays=max_overlays, baseline=baseline, improved=improved)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    html = render_report(context)
    log.info("report of %s: %d overlay(s), %d figure(s), %d missing input(s)", context.run_name,
             len(context.overlays), len(context.group_figures) + len(context.volume_figures)
             + (context.paired_figure is not None), len(context.missing))
    return write_text_atomic(path, html)
