"""The ``wmhkit`` command line: thin subcommands over the public Python functions.

Each subcommand lives in its own module under ``wmhkit.cli`` and registers itself
on :data:`app` when imported; :func:`main` is testable in-process
(``main(["synth", "--out", str(tmp_path)])``). The subcommand modules (and the
libraries they import) are loaded the first time ``app`` is used, so that
``wmhkit --version`` answers without them.
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

_app = typer.Typer(
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


def _plain_help_types() -> None:
    """Write ``--help`` as click always has: ``--quiet`` without a type, ``--out PATH``,
    ``INPUTS...``. Typer 0.2x writes Python annotations instead (``--quiet <bool>``,
    ``<list[Path]>``, ``{inputs}...``); its help hooks are wrapped here when present."""
    from typer import core

    def plain(label: str | None) -> str | None:
        """``<list[Path]>`` → ``PATH...``, ``<float range>`` → ``FLOAT RANGE``, ``<str>`` → ``TEXT``."""
        if not label or not (label.startswith("<") and ">" in label):
            return label
        inner, rest = label[1:].split(">", 1)
        repeated = inner.startswith("list[") and inner.endswith("]")
        inner = inner[5:-1] if repeated else inner
        inner = {"str": "text", "int": "integer"}.get(inner.lower(), inner)
        return inner.upper() + ("..." if repeated else "") + rest

    option_type = getattr(core.TyperOption, "display_type_rich", None)
    argument_type = getattr(core.TyperArgument, "display_type_rich", None)
    if option_type is None or argument_type is None or not hasattr(core.TyperArgument, "_usage_display_name"):
        return

    def option_display_type(self: core.TyperOption, ctx: object) -> str | None:
        return None if self.is_flag or self.count else plain(option_type(self, ctx))

    def argument_display_type(self: core.TyperArgument, ctx: object) -> str | None:
        return plain(argument_type(self, ctx))

    def usage_name(self: core.TyperArgument) -> str:
        name = self.display_name_raw.upper() + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    core.TyperOption.display_type_rich = option_display_type
    core.TyperArgument.display_type_rich = argument_display_type
    core.TyperArgument._usage_display_name = usage_name


_plain_help_types()


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wmhkit {__version__}")
        raise typer.Exit()


@_app.callback()
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
    """Send wmhkit's log records to stderr at ``level``: through rich on a terminal, as
    plain full-width lines (``2026-01-31 12:00:00 INFO message``) otherwise (log files,
    CI, batch schedulers), where rich would wrap and pad them at 80 columns."""
    root = logging.getLogger("wmhkit")
    root.handlers.clear()
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to the ``sys.stderr`` of the moment (callers and tests may swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        """The stream is always the current ``sys.stderr``; assignments are ignored."""


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


_registered = False


def _register_commands() -> None:
    """Import every subcommand module (each registers itself on :data:`app`), once."""
    global _registered
    if not _registered:
        _registered = True
        for name in _command_modules():
            importlib.import_module(f"wmhkit.cli.{name}")


def __getattr__(name: str) -> typer.Typer:
    """``app``: the Typer application with every subcommand registered (PEP 562 lazy attribute)."""
    if name == "app":
        _register_commands()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _asks_only_version(args: Sequence[str]) -> bool:
    """True for ``wmhkit [-v|-q...] --version``: answered without loading the subcommands."""
    return "--version" in args and all(arg.startswith("-") for arg in args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    wmhkit's own errors (bad input and the like) are printed as one clear line
    with exit code 2, never as a traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _exit_cleanly_on_sigterm()
    try:
        # Standalone mode: click prints usage errors itself and ends every run with SystemExit.
        if not _asks_only_version(args):
            _register_commands()
        _app(args=args, prog_name="wmhkit", standalone_mode=True)
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
