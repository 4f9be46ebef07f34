"""``manifest.tsv``: one row per scan, paths relative to the manifest file.

Columns (ARCHITECTURE.md): ``subject``, ``session``, ``dataset``, ``scanner``, ``stage``
(CN / MCI / AD / other), ``age``, ``sex``, ``flair``, ``t1``, ``brain_mask``, ``gold``,
``bronze_<method>``, ``silver``, ``volume_ml``, ``fazekas``, ``split``. Only ``subject``
and ``flair`` are required; an empty cell means "not available"; unknown columns are
kept in place. Every cell is read as text so nothing is silently re-typed.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from wmhkit.errors import ManifestError
from wmhkit.io.atomic import write_text_atomic

#: Known columns in their canonical order; unknown columns follow, in their own order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "subject", "session", "dataset", "scanner", "stage", "age", "sex",
    "flair", "t1", "brain_mask", "gold", "silver", "volume_ml", "fazekas", "split",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("subject", "flair")
#: Fixed path columns; every ``bronze_<method>`` column is a path column too.
PATH_COLUMNS: tuple[str, ...] = ("flair", "t1", "brain_mask", "gold", "silver")
STAGES: tuple[str, ...] = ("CN", "MCI", "AD", "other")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_path_column(column: str) -> bool:
    """True for columns holding file paths (``flair``, ``gold``, ``bronze_<method>``, ...)."""
    return column in PATH_COLUMNS or column.startswith("bronze_")


@dataclass(frozen=True)
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
    """Read and validate ``manifest.tsv``.

    Raises
    ------
    ManifestError
        With the 1-based row number for: missing required columns or cells, bad or
        duplicate subject/session IDs, paths that are absolute or escape the
        manifest's folder (``..``), paths with control characters, and (when
        ``check_files``) paths that do not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, "manifest file does not exist", "check the path, or build one with `wmhkit manifest`")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(path, f"not a readable tab-separated file ({exc})", "save it as UTF-8 TSV with a header row") from exc
    return validate_manifest(table, root=path.parent, source=path, check_files=check_files)


def validate_manifest(
    table: pd.DataFrame, *, root: str | os.PathLike[str], source: Path | None = None, check_files: bool = True
) -> Manifest:
    """Validate a manifest table (see :func:`read_manifest`) and return it in canonical column order."""
    where = source or Path(root) / "manifest.tsv"
    table = table.astype(str).fillna("")
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(where, f"missing required column(s) {missing}", "add them to the header row")
    duplicated = table.columns[table.columns.duplicated()].tolist()
    if duplicated:
        raise ManifestError(where, f"duplicate column(s) {duplicated}", "keep one column of each name")
    root = Path(root)
    seen: dict[str, int] = {}
    for index, record in enumerate(table.to_dict(orient="records"), start=1):
        _check_row(where, index, record, root, seen, check_files)
    known = [c for c in MANIFEST_COLUMNS if c in table.columns]
    bronze = sorted(c for c in table.columns if c.startswith("bronze_"))
    others = [c for c in table.columns if c not in known and c not in bronze]
    return Manifest(table[known + bronze + others].reset_index(drop=True), root, source)


def _check_row(
    where: Path, row: int, record: dict[str, str], root: Path, seen: dict[str, int], check_files: bool
) -> None:
    subject = record["subject"].strip()
    session = record.get("session", "").strip()
    for name, value in (("subject", subject), ("session", session)):
        if name == "subject" and not value:
            raise ManifestError(where, "empty subject", "give every row a subject ID", row=row)
        if value and not _ID_PATTERN.match(value):
            raise ManifestError(
                where, f"{name} {value!r} has characters other than letters, digits, '.', '_' and '-'",
                "use IDs like sub01 or 2019-03", row=row,
            )
    key = f"{subject}\t{session}".lower()  # case collisions would collide on case-insensitive filesystems
    if key in seen:
        raise ManifestError(
            where, f"subject {subject!r} session {session!r} repeats row {seen[key]} (IDs compared ignoring case)",
            "give each scan a unique subject/session pair", row=row,
        )
    seen[key] = row
    if not record["flair"].strip():
        raise ManifestError(where, f"subject {subject!r} has no flair path", "fill the flair column", row=row)
    for column, cell in record.items():
        if is_path_column(column) and cell.strip():
            _check_path(where, row, column, cell.strip(), root, check_files)


def _check_path(where: Path, row: int, column: str, cell: str, root: Path, check_files: bool) -> None:
    if any(c in cell for c in ("\x00", "\n", "\r")):
        raise ManifestError(where, f"{column} path contains control characters", "fix the cell", row=row)
    posix = PurePosixPath(cell.replace("\\", "/"))
    if posix.is_absolute() or os.path.isabs(cell) or ".." in posix.parts:
        raise ManifestError(
            where, f"{column} path {cell!r} is absolute or leaves the manifest's folder",
            "use a path relative to the manifest's folder, without '..'", row=row,
        )
    if check_files:
        target = root / cell
        if not target.is_file():
            raise ManifestError(where, f"{column} file {cell!r} does not exist", "fix the path or the file", row=row)
        resolved_root = root.resolve()
        if resolved_root not in target.resolve().parents:
            raise ManifestError(
                where, f"{column} path {cell!r} resolves (through a symlink) outside the manifest's folder",
                "copy the file into the dataset or point to it directly", row=row,
            )


def write_manifest(manifest: Manifest | pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a manifest as TSV atomically, columns in canonical order, rows as given.

    Path cells must already be relative to ``path``'s folder (use :func:`relative_path`).
    """
    table = manifest.table if isinstance(manifest, Manifest) else manifest
    table = table.astype(str).replace({"nan": "", "None": ""})
    known = [c for c in MANIFEST_COLUMNS if c in table.columns]
    bronze = sorted(c for c in table.columns if c.startswith("bronze_"))
    others = [c for c in table.columns if c not in known and c not in bronze]
    buffer = io.StringIO()
    table[known + bronze + others].to_csv(buffer, sep="\t", index=False, lineterminator="\n")
    return write_text_atomic(path, buffer.getvalue())


def relative_path(target: str | os.PathLike[str], manifest_dir: str | os.PathLike[str]) -> str:
    """``target`` relative to ``manifest_dir`` with forward slashes (the manifest's convention)."""
    return Path(os.path.relpath(Path(target).resolve(), Path(manifest_dir).resolve())).as_posix()
