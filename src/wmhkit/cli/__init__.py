"""The ``wmhkit`` command line: thin subcommands over the public Python functions.

Each subcommand lives in its own module under ``wmhkit.cli`` and registers itself
on :data:`app` when imported; :func:`main` is testable in-process
(``main(["synth", "--out", str(tmp_path)])``).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import typer

from wmhkit import __version__
from wmhkit.errors import WmhkitError

app = typer.Typer(
    name="wmhkit",
    help="White matter hyperintensity segmentation and volumetry on FLAIR MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Pipeline order of the subcommands in ``--help``; any other module under
#: ``wmhkit.cli`` is registered after these, alphabetically.
COMMAND_ORDER: tuple[str, ...] = (
    "demo", "synth", "manifest", "prepare", "bronze", "silver", "train", "train_volume",
    "predict", "evaluate", "stats", "report",
)

log = logging.getLogger("wmhkit")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wmhkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-v info, -vv debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """White matter hyperintensity segmentation and volumetry on FLAIR MRI."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    configure_logging(level)


def configure_logging(level: int) -> None:
    """Send wmhkit's log records to stderr through rich at ``level``."""
    from rich.console import Console
    from rich.logging import RichHandler

    root = logging.getLogger("wmhkit")
    root.handlers.clear()
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def exit_on_failures(failures: Sequence[object], failures_file: Path) -> None:
    """Name each failed scan on stderr and end the command with exit code 1 (no-op when none failed).

    ``failures`` are records with ``subject``, ``session`` and ``error`` (and ``method`` for
    bronze); the full list is in ``failures_file``.
    """
    if not failures:
        return
    typer.echo(f"{len(failures)} failure(s) (see {failures_file}):", err=True)
    for failure in failures:
        session = getattr(failure, "session", "")
        method = getattr(failure, "method", "")
        who = failure.subject + (f" session {session}" if session else "") + (f" [{method}]" if method else "")
        typer.echo(f"  {who}: {failure.error}", err=True)
    raise typer.Exit(code=1)


def _command_modules() -> list[str]:
    """Names of the subcommand modules in ``wmhkit.cli``, in pipeline order."""
    found = {info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}
    ordered = [name for name in COMMAND_ORDER if name in found]
    return ordered + sorted(found - set(ordered))


for _name in _command_modules():
    importlib.import_module(f"wmhkit.cli.{_name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    wmhkit's own errors (bad input and the like) are printed as one clear line
    with exit code 2, never as a traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _exit_cleanly_on_sigterm()
    try:
        # Standalone mode: click prints usage errors itself and ends every run with SystemExit.
        app(args=args, prog_name="wmhkit", standalone_mode=True)
    except WmhkitError as exc:
        log.error("%s", exc)
        return 2
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        return 1
    return 0


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, a scheduler's time limit) into ``SystemExit``.

    Python's default for SIGTERM ends the process at once; as an exception it
    unwinds instead, so the output lock is released and temporary files are
    removed, exactly as after Ctrl-C. Only the main thread can install handlers.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_system_exit)
