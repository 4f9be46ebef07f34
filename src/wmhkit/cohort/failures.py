"""What a failed scan leaves behind: a row in ``failures.tsv`` and a crash file with the traceback.

Errors travel from Dask workers as :class:`ErrorReport` (plain text), not as
exception objects: wmhkit's errors take several constructor arguments and do
not survive pickling, and a traceback never does.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wmhkit.io.atomic import write_text_atomic

#: Columns of ``failures.tsv``; bronze and silver add ``method`` before ``error``.
FAILURE_COLUMNS: tuple[str, ...] = ("subject", "session", "error")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorReport:
    """An exception as text: its one-line summary and its full traceback."""

    error: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> "ErrorReport":
        """Describe ``exc`` (with the traceback it carries)."""
        return cls(one_line(exc), "".join(traceback.format_exception(exc)))


@dataclass(frozen=True)
class ScanFailure:
    """A scan (or one method of a scan) that failed.

    Attributes
    ----------
    subject, session
        The scan's identifiers (session may be "").
    error
        One-line error message.
    crash_file
        The file holding the traceback.
    method
        The bronze method or fusion rule that failed; "" for a whole-scan failure
        of prepare or predict.
    """

    subject: str
    session: str
    error: str
    crash_file: Path
    method: str = ""


def one_line(exc: BaseException) -> str:
    """The error as one line; the type name is added for unexpected (non-input) errors.

    Examples
    --------
    >>> one_line(ValueError("bad\\n  value")), one_line(KeyError("flair"))
    ('bad value', "KeyError: 'flair'")
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"


def write_crash_file(path: str | os.PathLike[str], reports: Mapping[str, ErrorReport]) -> Path | None:
    """Write the tracebacks of one scan, one ``== <label> ==`` section per failed step or method.

    Best effort: when the crash file itself cannot be written (the disk that made the
    scan fail may be full), the tracebacks go to the log instead and None is returned,
    so that one scan's failure never stops the cohort.
    """
    text = "".join(f"== {label} ==\n{report.traceback}" for label, report in reports.items())
    try:
        return write_text_atomic(path, text)
    except OSError as exc:
        log.error("could not write the crash file %s (%s); the tracebacks were:\n%s", path, exc, text)
        return None


def write_failures(failures: Sequence[ScanFailure], path: str | os.PathLike[str], *, with_method: bool = False) -> Path:
    """Write ``failures.tsv``: subject, session[, method], error — a header only when nothing failed.

    Tabs and line breaks inside cells are replaced by spaces so that every failure is one row.
    """
    columns = list(FAILURE_COLUMNS)
    if with_method:
        columns.insert(2, "method")
    lines = ["\t".join(columns)]
    for failure in failures:
        lines.append("\t".join(" ".join(str(getattr(failure, c)).split()) for c in columns))
    return write_text_atomic(path, "\n".join(lines) + "\n")
