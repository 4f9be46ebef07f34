"""Atomic writes and safe output paths.

Every output is written to a temporary file in the destination folder, flushed
and fsynced, then renamed over the final name, so that a kill at any moment
leaves either no file or the previous complete one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from wmhkit.errors import OutputError

#: Characters of the final name kept in a temporary name (file names are limited to 255 bytes).
_MAX_TEMP_STEM = 100
_TOKEN_BYTES = 6
#: Names of the temporary files :func:`atomic_path` creates (``.NAME.<12 hex>.tmp.EXT``).
TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9]+){0,2}")


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is named like an :func:`atomic_path` temporary file.

    Such a file is never a finished output: it is renamed away on success and
    removed on error, and is left behind only when the writer was killed.

    Examples
    --------
    >>> is_temporary("out/.wmh.nii.gz.0123456789ab.tmp.nii.gz"), is_temporary("out/wmh.nii.gz")
    (True, False)
    """
    return TEMPORARY_NAME.fullmatch(Path(path).name) is not None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffixes (``.nii.gz`` etc.) so that
    writers choosing a format by extension behave. On any exception the
    temporary file is removed and ``path`` is left untouched. A symlink planted
    at ``path`` is replaced, never followed. A folder that cannot be made, or a
    full disk (or quota) while writing, is an :class:`~wmhkit.errors.OutputError`
    naming ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text()
    'done'
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp_beside(final)
    except OSError as exc:
        raise _write_error(final, exc) from exc
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            raise _write_error(final, exc) from exc
        raise


#: Errors of a write that found no room (full disk, quota, file size limit, read-only file system).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _write_error(final: Path, exc: OSError) -> OutputError:
    """A one-line error naming the output being written (not its temporary name)."""
    return OutputError(f"cannot write {final}: {exc.strerror or exc}; free space there or choose another --out")


def _create_temp_beside(final: Path) -> Path:
    """Create an empty, uniquely named temporary file in ``final``'s folder.

    Unlike ``tempfile.mkstemp`` (mode 0600), the file is created with mode 0666
    minus the umask, so outputs get the same permissions as ordinary files. The
    name keeps the final extension (``.nii.gz``, ``.json``) and stays short.
    """
    suffixes = final.suffixes[-2:] if final.suffix == ".gz" else final.suffixes[-1:]
    extension = "".join(suffixes)
    stem = final.name[: _MAX_TEMP_STEM]
    while True:
        candidate = final.parent / f".{stem}.{secrets.token_hex(_TOKEN_BYTES)}.tmp{extension}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def resolve_output(out_dir: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """Resolve ``relative`` under ``out_dir``, refusing anything that escapes it.

    Parameters
    ----------
    out_dir
        The output folder (need not exist yet).
    relative
        Relative file path below it, e.g. ``"sub-01/wmh.nii.gz"``.

    Returns
    -------
    Path
        The absolute path with parent folders resolved (symlinks followed); the
        last component is kept as given, so a symlink planted there is replaced
        by :func:`atomic_path`, never followed.

    Raises
    ------
    OutputError
        When ``relative`` is empty, absolute, contains ``..``, NUL or newlines, or
        when its resolved parent folder (symlinks followed) lies outside ``out_dir``.

    Examples
    --------
    >>> resolve_output("/data/out", "sub-01/wmh.nii.gz").as_posix()
    '/data/out/sub-01/wmh.nii.gz'
    >>> resolve_output("/data/out", "../escape.nii.gz")
    Traceback (most recent call last):
    ...
    wmhkit.errors.OutputError: output name '../escape.nii.gz' is absolute, empty, or contains '..' or control characters
    """
    rel = os.fspath(relative)
    parts = Path(rel).parts
    if (
        not parts
        or os.path.isabs(rel)
        or ".." in parts
        or any(c in rel for c in ("\x00", "\n", "\r"))
        or rel.strip() in ("", ".")
    ):
        raise OutputError(f"output name {rel!r} is absolute, empty, or contains '..' or control characters")
    root = Path(out_dir).resolve()
    candidate = root / rel
    resolved_parent = candidate.parent.resolve()
    if resolved_parent != root and root not in resolved_parent.parents:
        raise OutputError(f"output {rel!r} resolves outside the output folder {root} (through a symlink?)")
    return resolved_parent / candidate.name


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem supports directory fsync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
