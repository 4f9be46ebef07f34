"""Typed errors raised by wmhkit.

Every error about user input names the offending file (and row, for manifests)
and says how to fix it, so that a cohort run can record it in a failure row and
move on to the next scan.
"""

from __future__ import annotations

from os import PathLike


class WmhkitError(Exception):
    """Base class of every error wmhkit raises on purpose."""


class InputError(WmhkitError, ValueError):
    """An input file is unreadable, malformed or unsuitable.

    Parameters
    ----------
    path
        The offending file (or folder).
    reason
        What is wrong, in one sentence.
    fix
        What the user can do about it.

    Examples
    --------
    >>> str(InputError("scan.nii.gz", "file is empty", "re-export the scan"))
    'scan.nii.gz: file is empty. Fix: re-export the scan.'
    """

    def __init__(self, path: str | PathLike[str] | None, reason: str, fix: str = "") -> None:
        self.path = None if path is None else str(path)
        self.reason = reason.rstrip(".")
        self.fix = fix.rstrip(".")
        where = f"{self.path}: " if self.path else ""
        message = f"{where}{self.reason}."
        if self.fix:
            message += f" Fix: {self.fix}."
        super().__init__(message)


class HeaderError(InputError):
    """The NIfTI header is invalid, degenerate or unsafe to load."""


class GeometryError(InputError):
    """Two images that must share a voxel grid do not, or a grid is degenerate."""


class MaskError(InputError):
    """A label image holds values or content that a mask cannot have."""


class ManifestError(InputError):
    """A manifest (or dataset layout) is malformed.

    ``row`` is the 1-based data row of the manifest (header excluded), or None
    when the problem concerns the whole file.
    """

    def __init__(
        self, path: str | PathLike[str] | None, reason: str, fix: str = "", row: int | None = None
    ) -> None:
        self.row = row
        if row is not None:
            reason = f"row {row}: {reason}"
        super().__init__(path, reason, fix)


class OutputError(WmhkitError, ValueError):
    """An output path is unsafe (escapes the output folder, is a symlink, equals an input)."""
