"""Options shared by the cohort commands (prepare, bronze, silver, predict): where the per-scan work runs
and on how many threads, and how a brain mask is made when none is given."""

from __future__ import annotations

from typing import Any

import typer

from wmhkit.cohort.runner import DEFAULT_MEMORY_LIMIT


def workers_option() -> Any:
    """``--workers N``: 1 runs in-process; N > 1 starts a local Dask cluster of N worker processes."""
    return typer.Option(1, "--workers", min=1,
                        help="Worker processes: 1 runs in this process; N > 1 starts a local Dask cluster.")


def scheduler_option() -> Any:
    """``--scheduler ADDRESS``: run on an existing Dask scheduler (e.g. a dask-jobqueue SLURM cluster)."""
    return typer.Option(None, "--scheduler",
                        help="Address of a running Dask scheduler (tcp://host:8786); overrides --workers.")


def memory_limit_option() -> Any:
    """``--memory-limit``: memory limit of each local worker process."""
    return typer.Option(DEFAULT_MEMORY_LIMIT, "--memory-limit",
                        help="Memory limit per local worker, e.g. 4GiB, 6GB or auto (RAM / workers); a worker "
                             "exceeding it is restarted and its scan fails.")


def threads_per_worker_option() -> Any:
    """``--threads-per-worker N``: threads of each worker's ITK and OpenMP/BLAS pools."""
    return typer.Option(None, "--threads-per-worker", min=1,
                        help="Threads each worker's ITK (and OpenMP/BLAS) pools may use. Default: automatic, "
                             "cores / workers (with --scheduler: the workers' own setting). Torch inference stays "
                             "single-threaded per scan, for byte-identical outputs.")


def brain_extractor_option(default: str | None) -> Any:
    """``--brain-extractor NAME``: brain extraction when a scan has no brain mask (validated on use)."""
    default_text = "default" if default else "default: the model's prepare setting, normally hdbet"
    return typer.Option(
        default, "--brain-extractor", callback=_check_brain_extractor,
        help=f"Brain extraction when a scan has no brain mask: hdbet ({default_text}; HD-BET, about 30-40 s per "
             "scan on 2 CPU cores) or template (MNI template registration, about 5-15 s). A scan already skull "
             "stripped (constant background) is masked by its non-background region; when a method's mask is "
             "implausible the other method is tried.",
    )


def _check_brain_extractor(name: str | None) -> str | None:
    from wmhkit.preprocess.brain_extraction import check_brain_extractor

    if name is not None:
        try:
            check_brain_extractor(name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    return name


def compute_arguments(workers: int, scheduler: str | None, memory_limit: str,
                      threads_per_worker: int | None = None) -> dict[str, Any]:
    """The stage functions' keyword arguments, with invalid values reported as bad CLI parameters."""
    from wmhkit.cohort.runner import ComputeOptions

    try:
        ComputeOptions(workers=workers, scheduler=scheduler, memory_limit=memory_limit,
                       threads_per_worker=threads_per_worker)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return {"workers": workers, "scheduler": scheduler, "memory_limit": memory_limit,
            "threads_per_worker": threads_per_worker}
