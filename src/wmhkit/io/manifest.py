"""``manifest.tsv``: one row per scan, paths absolute or relative to the manifest file.

Columns (ARCHITECTURE.md): ``subject``, ``session``, ``dataset``, ``scanner``, ``stage``
(CN / MCI / AD / other), ``age``, ``sex``, ``flair``, ``t1``, ``brain_mask``, ``gold``,
``bronze_<method>``, ``silver``, ``volume_ml``, ``fazekas``, ``split``. Only ``subject``
and ``flair`` are required; an empty cell means "not available"; unknown columns are
kept, after the known ones. Every cell is read as text so nothing is silently re-typed.

Validation rules (each violation is a :class:`~wmhkit.errors.ManifestError` naming the
file and the 1-based data row):

* ``subject`` (required) and ``session`` (optional) are IDs of at most 64 characters:
  ASCII letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit (so no
  ``/``, ``..`` escapes or spreadsheet formulas). The scan ID ``subject[_session]``
  names output files, so it must be unique ignoring case (``Sub01`` and ``sub01``
  would collide on case-insensitive filesystems, as would subject ``a_b`` and subject
  ``a`` + session ``b``).
* Path columns (``flair``, ``t1``, ``brain_mask``, ``gold``, ``silver``,
  ``bronze_<method>``) are absolute, or relative to the manifest's folder (``..`` and
  symlinks allowed: inputs often live in a read-only dataset elsewhere on disk); with
  ``check_files`` they must be existing files. A Windows drive or UNC path is refused
  on other systems, which cannot open it. Outputs stay confined: the scan ID names
  output files, so it is checked as above.
* No cell or column name holds control characters (NUL, tab, newline, ...).
* ``stage`` is one of CN / MCI / AD / other (case-insensitive, stored canonically);
  ``volume_ml`` a finite number ≥ 0; ``fazekas`` a whole number 0–6.

Leading and trailing blanks around cells are removed (spreadsheets add them).
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import pandas as pd

from wmhkit.errors import ManifestError
from wmhkit.io.atomic import write_text_atomic

#: Known columns in their canonical order; ``bronze_<method>`` columns (sorted) and
#: then unknown columns (in their own order) follow.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "subject", "session", "dataset", "scanner", "stage", "age", "sex",
    "flair", "t1", "brain_mask", "gold", "silver", "volume_ml", "fazekas", "split",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("subject", "flair")
#: Fixed path columns; every ``bronze_<method>`` column is a path column too.
PATH_COLUMNS: tuple[str, ...] = ("flair", "t1", "brain_mask", "gold", "silver")
STAGES: tuple[str, ...] = ("CN", "MCI", "AD", "other")
#: Highest Fazekas score accepted (periventricular 0–3 plus deep 0–3).
FAZEKAS_MAX = 6
ID_MAX_LENGTH = 64
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
#: Cell delimiters a manifest may use, in the order they are tried (TSV is the
#: format wmhkit writes; comma and semicolon come from spreadsheet CSV exports).
DELIMITER_NAMES: dict[str, str] = {"\t": "tab-separated", ",": "comma-separated", ";": "semicolon-separated"}

log = logging.getLogger(__name__)


def is_path_column(column: str) -> bool:
    """True for columns holding file paths (``flair``, ``gold``, ``bronze_<method>``, ...)."""
    return column in PATH_COLUMNS or column.startswith("bronze_")


def is_valid_id(value: str) -> bool:
    """True when ``value`` is a safe subject/session ID (see the module docstring).

    Examples
    --------
    >>> is_valid_id("sub-01"), is_valid_id("../x"), is_valid_id("=cmd()")
    (True, False, False)
    """
    return len(value) <= ID_MAX_LENGTH and _ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, eq=False)
class Manifest:
    """A validated manifest table and the folder its relative paths start from.

    Attributes
    ----------
    table
        One row per scan, all cells strings ("" = not available), columns in
        canonical order followed by unknown columns.
    root
        Folder that relative paths are resolved against (the manifest's folder).
    source
        The manifest file, when read from disk (used in error messages).
    """

    table: pd.DataFrame
    root: Path
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def bronze_methods(self) -> list[str]:
        """Names of the bronze methods present as ``bronze_<method>`` columns."""
        return [c[len("bronze_"):] for c in self.table.columns if c.startswith("bronze_")]

    def rows(self) -> Iterator[dict[str, str]]:
        """Iterate over rows as ``{column: cell}`` dicts (cells are strings)."""
        for record in self.table.to_dict(orient="records"):
            yield {str(k): str(v) for k, v in record.items()}

    def path(self, row: dict[str, str] | int, column: str) -> Path | None:
        """Absolute path in ``column`` of ``row`` (a row dict or index), or None when empty."""
        record = self.table.iloc[row].to_dict() if isinstance(row, int) else row
        cell = str(record.get(column, "") or "")
        return (self.root / cell) if cell else None

    def scan_id(self, row: dict[str, str]) -> str:
        """``subject`` or ``subject_session``: the name used for a scan's output files."""
        session = row.get("session", "")
        return f"{row['subject']}_{session}" if session else row["subject"]


def read_manifest(path: str | os.PathLike[str], *, check_files: bool = True) -> Manifest:
    """Read and validate ``manifest.tsv`` (UTF-8, a byte-order mark is accepted).

    Cells are tab-separated; a spreadsheet's CSV export (comma or semicolon, CRLF
    line ends) is detected from the header row and read as well (logged).

    Parameters
    ----------
    path
        The manifest file; its folder is the root of the relative paths in it.
    check_files
        Also require every path to be an existing file.

    Raises
    ------
    ManifestError
        For an unreadable or empty file, and for any rule of the module docstring
        broken (with the 1-based data row).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, "manifest file does not exist", "check the path, or build one with `wmhkit manifest`")
    delimiter = _delimiter(path)
    try:
        # header=None keeps duplicate column names (pandas would rename them "x.1"); only
        # "\n" ends a row, so a stray "\r" stays in its cell (and is rejected) while the
        # "\r" of CRLF files is stripped with the other surrounding blanks.
        raw = pd.read_csv(
            path, sep=delimiter, header=None, dtype=str, keep_default_na=False, na_filter=False,
            encoding="utf-8-sig", lineterminator="\n",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(
            path, f"not a readable {DELIMITER_NAMES[delimiter]} file ({exc})", "save it as UTF-8 with a header row"
        ) from exc
    if len(raw) < 2:
        raise ManifestError(path, "manifest has a header but no scans", "add one row per scan")
    table = pd.DataFrame(raw.iloc[1:].to_numpy(), columns=list(raw.iloc[0]))
    return validate_manifest(table, root=path.parent, source=path, check_files=check_files)


def _delimiter(path: Path) -> str:
    """The manifest's cell delimiter: tab, or comma / semicolon (spreadsheet exports) when
    the header row holds the required columns only when split on that character."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            header = stream.readline()
    except UnicodeDecodeError:
        return "\t"  # pandas reports the decoding error with its position
    for delimiter, name in DELIMITER_NAMES.items():
        columns = {cell.strip().strip('"') for cell in header.split(delimiter)}
        if all(required in columns for required in REQUIRED_COLUMNS):
            if delimiter != "\t":
                log.info("%s: read as a %s file (detected from its header row)", path, name)
            return delimiter
    return "\t"


def validate_manifest(
    table: pd.DataFrame, *, root: str | os.PathLike[str], source: Path | None = None, check_files: bool = True
) -> Manifest:
    """Validate a manifest table (see :func:`read_manifest`) and return it in canonical column order.

    Missing cells (None/NaN) become ""; cells are stripped of surrounding blanks;
    ``stage`` is written canonically. The caller's table is not modified.
    """
    where = source or Path(root) / "manifest.tsv"
    table = table.astype(object).fillna("").astype(str)
    table = table.apply(lambda column: column.str.strip())
    table.columns = [str(c).strip() for c in table.columns]
    _check_columns(where, list(table.columns))
    root = Path(root)
    seen: dict[str, int] = {}
    records = table.to_dict(orient="records")
    for index, record in enumerate(records, start=1):
        _check_row(where, index, record, root, seen, check_files)
    table = pd.DataFrame(records, columns=table.columns)
    return Manifest(table[canonical_columns(table.columns)].reset_index(drop=True), root, source)


def canonical_columns(columns: list[str] | pd.Index) -> list[str]:
    """``columns`` in canonical order: known ones, then sorted ``bronze_*``, then the rest as given."""
    columns = [str(c) for c in columns]
    known = [c for c in MANIFEST_COLUMNS if c in columns]
    bronze = sorted(c for c in columns if c.startswith("bronze_"))
    others = [c for c in columns if c not in known and c not in bronze]
    return known + bronze + others


def _check_columns(where: Path, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ManifestError(
            where, f"missing required column(s) {missing} (header read as {columns})",
            "add them to the header row; separate cells with tabs (or commas, in a CSV export)",
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ManifestError(where, f"duplicate column(s) {duplicated}", "keep one column of each name")
    for column in columns:
        if not column or _CONTROL_CHARACTERS.search(column):
            raise ManifestError(where, f"column name {column!r} is empty or has control characters", "rename the column")
        if column.startswith("bronze_") and not is_valid_id(column[len("bronze_"):]):
            raise ManifestError(
                where, f"column {column!r} does not name a method after 'bronze_'", "name it like bronze_lst"
            )


def _check_row(
    where: Path, row: int, record: dict[str, str], root: Path, seen: dict[str, int], check_files: bool
) -> None:
    for column, cell in record.items():
        if _CONTROL_CHARACTERS.search(cell):
            raise ManifestError(where, f"{column} cell has control characters (NUL, tab, newline...)", "fix the cell", row=row)
    subject = record["subject"]
    session = record.get("session", "")
    if not subject:
        raise ManifestError(where, "empty subject", "give every row a subject ID", row=row)
    for name, value in (("subject", subject), ("session", session)):
        if value and not is_valid_id(value):
            raise ManifestError(
                where,
                f"{name} {value!r} is not a safe ID (at most {ID_MAX_LENGTH} of letters, digits, '.', '_', '-', "
                "starting with a letter or digit)",
                "use IDs like sub01 or 2019-03", row=row,
            )
    scan = f"{subject}_{session}" if session else subject
    key = scan.lower()  # case collisions would collide on case-insensitive filesystems
    if key in seen:
        raise ManifestError(
            where, f"scan {scan!r} (subject {subject!r}, session {session!r}) repeats row {seen[key]} "
            "(scan IDs subject_session compared ignoring case)",
            "give each scan a unique subject/session pair", row=row,
        )
    seen[key] = row
    if not record["flair"]:
        raise ManifestError(where, f"subject {subject!r} has no flair path", "fill the flair column", row=row)
    _check_values(where, row, record)
    for column, cell in record.items():
        if is_path_column(column) and cell:
            _check_path(where, row, column, cell, root, check_files)


def _check_values(where: Path, row: int, record: dict[str, str]) -> None:
    """Check (and canonicalise, in place) the cells with a fixed vocabulary or type."""
    stage = record.get("stage", "")
    if stage:
        canonical = {s.lower(): s for s in STAGES}.get(stage.lower())
        if canonical is None:
            raise ManifestError(
                where, f"stage {stage!r} is not one of {', '.join(STAGES)}",
                "map the diagnosis to CN/MCI/AD/other (keep finer groups in another column)", row=row,
            )
        record["stage"] = canonical
    volume = record.get("volume_ml", "")
    volume_ml = _as_float(volume) if volume else 0.0
    if volume_ml is None or volume_ml < 0:
        raise ManifestError(where, f"volume_ml {volume!r} is not a finite number >= 0", "write the WMH volume in mL", row=row)
    fazekas = record.get("fazekas", "")
    if fazekas:
        value = _as_float(fazekas)
        if value is None or value != int(value) or not 0 <= value <= FAZEKAS_MAX:
            raise ManifestError(
                where, f"fazekas {fazekas!r} is not a whole number 0-{FAZEKAS_MAX}", "write the Fazekas score", row=row
            )


def _as_float(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_path(where: Path, row: int, column: str, cell: str, root: Path, check_files: bool) -> None:
    if os.name != "nt" and PureWindowsPath(cell).drive:
        raise ManifestError(
            where, f"{column} path {cell!r} is a Windows drive or network path, which this system cannot open",
            "write the path as this machine sees the file (e.g. /mnt/data/...), or relative to the manifest", row=row,
        )
    if check_files and not (root / cell).is_file():
        where_resolved = "" if os.path.isabs(cell) else f" (looked for {os.path.abspath(root / cell)})"
        raise ManifestError(
            where, f"{column} file {cell!r} does not exist{where_resolved}",
            "fix the path (relative paths start at the manifest's folder) or the file", row=row,
        )


def write_manifest(manifest: Manifest | pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate and write a manifest as TSV atomically: columns canonical, rows as given.

    A :class:`Manifest` whose ``root`` is not ``path``'s folder has its relative path
    cells rewritten for the new folder (see :func:`relative_path`: relative where the
    file is near, absolute otherwise), so a manifest may be written anywhere. A bare
    DataFrame's path cells must already be absolute or relative to ``path``'s folder.
    Files are not checked for existence here; :func:`read_manifest` does that.

    Raises
    ------
    ManifestError
        When the table breaks a rule of the module docstring.
    """
    path = Path(path)
    if isinstance(manifest, Manifest):
        table = _rebase(manifest, path)
    else:
        table = manifest
    checked = validate_manifest(table, root=path.parent, source=path, check_files=False)
    buffer = io.StringIO()
    checked.table.to_csv(buffer, sep="\t", index=False, lineterminator="\n")
    return write_text_atomic(path, buffer.getvalue())


def _rebase(manifest: Manifest, path: Path) -> pd.DataFrame:
    """The manifest's table with path cells valid from ``path``'s folder."""
    new_root = Path(os.path.abspath(path.parent))
    old_root = Path(os.path.abspath(manifest.root))
    if new_root == old_root:
        return manifest.table
    table = manifest.table.copy()
    for column in table.columns:
        if is_path_column(column):
            table[column] = [relative_path(old_root / cell, new_root) if cell else "" for cell in table[column]]
    return table


#: A file at most this many folders above the manifest's folder (``../../x``) is
#: written relative to it, so a study or output tree can be moved as a whole; a file
#: further away (a dataset elsewhere on disk) is written absolute, so the manifest
#: can be moved on its own.
MAX_PARENT_STEPS = 2


def relative_path(target: str | os.PathLike[str], manifest_dir: str | os.PathLike[str]) -> str:
    """How a manifest in ``manifest_dir`` names ``target``, with forward slashes.

    Relative when ``target`` is inside ``manifest_dir`` or at most
    :data:`MAX_PARENT_STEPS` folders above it, absolute otherwise (or when no
    relative path exists, across Windows drives). Both are made absolute without
    following symlinks, so a symlinked file (a DataLad/git-annex dataset, say) is
    recorded under its own name.

    Examples
    --------
    >>> relative_path("/data/study/sub-01/anat/x.nii.gz", "/data/study")
    'sub-01/anat/x.nii.gz'
    >>> relative_path("/data/study/raw/x.nii.gz", "/data/study/work/prepared")
    '../../raw/x.nii.gz'
    >>> relative_path("/data/study/x.nii.gz", "/home/me/runs/prepared")
    '/data/study/x.nii.gz'
    """
    absolute = os.path.abspath(target)
    try:
        relative = Path(os.path.relpath(absolute, os.path.abspath(manifest_dir)))
    except ValueError:  # another Windows drive
        return Path(absolute).as_posix()
    if relative.parts[:MAX_PARENT_STEPS + 1].count("..") > MAX_PARENT_STEPS:
        return Path(absolute).as_posix()
    return relative.as_posix()
