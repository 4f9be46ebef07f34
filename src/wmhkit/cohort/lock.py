"""An exclusive lock on an output folder: one run at a time writes into it.

The lock is a file, ``OUT/.wmhkit.lock``, created with ``O_CREAT | O_EXCL`` (atomic
on local and NFSv3+ file systems) and holding the owner's host, process ID and
start time. A second run finds it and stops with an error naming the folder and
the owner. A run killed with SIGKILL cannot remove its lock: when the owner was
a process on this host that no longer exists, the lock is stale and is broken
(with a warning), so that rerunning a killed command just works. A lock from
another host, or whose PID is alive (possibly reused), is never broken: the
error says how to tell and what to delete. The owner also holds a ``flock`` on
the file while it runs, so a lock that cannot be read (left empty by a crash
between creating and writing it) is stale when no process holds that flock.
A folder that cannot be created or written (read-only, a file in the way, a full
disk) is a one-line :class:`~wmhkit.errors.OutputError` naming the path, and a
lock that cannot be written completely is removed, never left empty. Whoever takes the lock first deletes
the atomic-write temporaries (:func:`wmhkit.io.atomic.is_temporary`) that a killed
run left in the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from wmhkit.errors import OutputError
from wmhkit.io.atomic import is_temporary

LOCK_NAME = ".wmhkit.lock"

log = logging.getLogger(__name__)


@contextlib.contextmanager
def output_lock(out_dir: str | os.PathLike[str], *, step: str) -> Iterator[Path]:
    """Hold the lock of ``out_dir`` (created when missing) for the duration of the block.

    Parameters
    ----------
    out_dir
        The output folder.
    step
        The command taking the lock, named in the error a second run gets.

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    OutputError
        When another run holds the lock, or the folder or its lock cannot be created
        or written.
    """
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {folder}: {_reason(exc)}; {_FIX}") from None
    path = folder / LOCK_NAME
    owner = {"step": step, "host": socket.gethostname(), "pid": os.getpid(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        fd = _create(path)
    except FileExistsError:
        if not _break_stale(path):
            raise OutputError(_held_message(folder, path)) from None
        try:
            fd = _create(path)
        except FileExistsError:  # another run broke it first and holds it now
            raise OutputError(_held_message(folder, path)) from None
    try:
        _write_owner(fd, path, owner)
        try:
            _remove_temporaries(folder)
            yield path
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


_FIX = "choose another --out, or make room or permissions there"
#: An unreadable lock (empty or not JSON) younger than this may be one whose owner
#: is writing it now; older, and held by no process (see :func:`_held`), it is stale.
UNREADABLE_LOCK_GRACE_S = 10.0


def _reason(exc: OSError) -> str:
    """``exc`` in words, without the file name (the caller names the path)."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "a file is in the way (a folder is needed there)"
    return exc.strerror or str(exc)


def _create(path: Path) -> int:
    """Create the lock file exclusively; raise FileExistsError when it exists, OutputError when it cannot be made."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write into the output folder {path.parent}: {_reason(exc)}; {_FIX}") from None
    with contextlib.suppress(OSError):  # file systems without flock: liveness by PID only
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _write_owner(fd: int, path: Path, owner: dict) -> None:
    """Write ``owner`` into the lock and flush it to disk; on failure (a full disk) remove the lock."""
    data = json.dumps(owner).encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)  # a full disk may only show on flushing
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise OutputError(f"cannot write the lock file {path}: {_reason(exc)}; {_FIX}") from None


def _remove_temporaries(folder: Path) -> None:
    """Delete the atomic-write temporaries a killed run left under ``folder``.

    Called with the lock held, so no other run is writing them. Symlinked folders
    are not entered.
    """
    for root, dirs, files in os.walk(folder):
        for name in files:
            if is_temporary(name):
                log.info("removing %s, left half-written by an interrupted run", Path(root, name))
                Path(root, name).unlink(missing_ok=True)


def _owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _is_stale(owner: dict, path: Path) -> bool:
    """The owner was a process on this host that no longer runs; for a lock that cannot
    be read (empty after a crash, not JSON), no process holds it and it is older than
    :data:`UNREADABLE_LOCK_GRACE_S`."""
    if not owner:
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return False
        return age > UNREADABLE_LOCK_GRACE_S and not _held(path)
    pid = owner.get("pid")
    return owner.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _held(path: Path) -> bool:
    """True unless this process can take the ``flock`` that every live lock owner holds
    (also True when that cannot be tested: the file cannot be opened, no flock support)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the flock
    return False


def _break_stale(path: Path) -> bool:
    """Remove the lock at ``path`` when it is stale; True when it was removed.

    The lock is first renamed to a name unique to this process, so that of two runs
    finding the same stale lock only one removes it.
    """
    owner = _owner(path)
    if not _is_stale(owner, path):
        return False
    claimed = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
    try:
        os.replace(path, claimed)
    except FileNotFoundError:
        return True  # broken by another run meanwhile: try to take the lock
    if _owner(claimed) != owner:  # a live run took the lock between our read and the rename
        os.replace(claimed, path)
        return False
    claimed.unlink()
    if owner:
        log.warning("removed the stale lock of wmhkit %s (process %s on this host no longer runs)",
                    owner.get("step", "?"), owner.get("pid"))
    else:
        log.warning("removed the unreadable lock %s (no running process holds it)", path)
    return True


def _held_message(folder: Path, path: Path) -> str:
    owner = _owner(path)
    if not owner:
        return (f"output folder {folder} holds a lock file {path} that cannot be read and that a running process "
                f"may hold; if no wmhkit run uses {folder}, delete {path} and run again")
    host, pid = owner.get("host", "an unknown host"), owner.get("pid", "?")
    who = f"wmhkit {owner.get('step', '?')} (process {pid} on {host}, started {owner.get('started', '?')})"
    return (f"output folder {folder} is in use by {who}; wait for it to finish; "
            f"if that run was killed on another host, delete {path} and run again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
