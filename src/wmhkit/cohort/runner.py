"""Run one task per scan: in-process for one worker, on Dask distributed for more.

Both paths call the same task through the same guard (:func:`run_guarded`), which
turns any exception into an :class:`~wmhkit.cohort.failures.ErrorReport`, so a
failing scan never stops the others. With Dask, outcomes are gathered as they
complete (``as_completed``) and progress is logged; a worker that dies (killed
for exceeding its memory limit, say) fails only the scan it was running. Whatever
the completion order, :func:`run_tasks` returns the outcomes in the order of the
jobs it was given, so every table built from them is the same with 1 or N workers.

Where the work runs (:class:`ComputeOptions`):

* ``workers=1`` and no scheduler: in this process, no Dask at all;
* ``workers=N>1``: a :func:`start_local_cluster` of N single-threaded worker
  processes, each limited to ``memory_limit`` (the nanny restarts a worker that
  exceeds it; that scan fails with a "KilledWorker" error after one retry);
* ``scheduler=ADDRESS``: a running Dask scheduler (e.g. one started by
  dask-jobqueue's ``SLURMCluster``); its workers' memory limits are the ones
  they were started with.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wmhkit.cohort.failures import ErrorReport

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Default memory limit of each local worker process (dask byte string, or "auto" = RAM / workers).
DEFAULT_MEMORY_LIMIT = "4GiB"
#: Environment of local worker processes: ITK (SimpleITK's N4 shrink, resampling, STAPLE
#: inputs) would otherwise start a thread per core in every worker. Workers started by a
#: scheduler of your own should set it too (see the README's SLURM recipe).
WORKER_ENVIRONMENT = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
#: Attempts of a task whose worker died: Dask's default of 3 would let one scan that
#: exhausts memory kill three workers (and the scans they were running) in turn.
ALLOWED_FAILURES = 1


@dataclass(frozen=True)
class ComputeOptions:
    """Where the per-scan tasks run.

    Attributes
    ----------
    workers
        Worker processes of a local Dask cluster; 1 runs in-process without Dask.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    memory_limit
        Memory limit per local worker, e.g. ``"4GiB"``, ``"6GB"`` or ``"auto"``
        (the machine's memory divided among the workers).
    """

    workers: int = 1
    scheduler: str | None = None
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if self.scheduler is not None and not self.scheduler.strip():
            raise ValueError("scheduler address is empty; give one like tcp://host:8786, or leave it out")
        if self.memory_limit != "auto":
            from dask.utils import parse_bytes

            try:
                limit = parse_bytes(self.memory_limit)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"memory limit {self.memory_limit!r} is not a size like 4GiB or 6GB, nor 'auto'") from exc
            if limit <= 0:
                raise ValueError(f"memory limit must be positive, got {self.memory_limit!r}")

    @property
    def uses_dask(self) -> bool:
        """True when the tasks run on Dask workers (several local workers, or a scheduler)."""
        return self.scheduler is not None or self.workers > 1


@dataclass(frozen=True)
class TaskOutcome(Generic[R]):
    """The outcome of one job: its key, and either the task's value or the error it raised."""

    key: str
    value: R | None = None
    failure: ErrorReport | None = None


def run_guarded(task: Callable[[T], R], key: str, job: T) -> TaskOutcome[R]:
    """``task(job)`` as an outcome; any exception becomes its :class:`ErrorReport` (the worker-side guard)."""
    try:
        return TaskOutcome(key, value=task(job))
    except Exception as exc:  # one bad scan must not stop the cohort; reported in the outcome
        return TaskOutcome(key, failure=ErrorReport.from_exception(exc))


def run_tasks(
    task: Callable[[T], R], jobs: Sequence[tuple[str, T]], compute: ComputeOptions = ComputeOptions(), *, step: str
) -> list[TaskOutcome[R]]:
    """Run ``task`` on every job and return the outcomes in the order of ``jobs``.

    Parameters
    ----------
    task
        A picklable callable (module-level function or :func:`functools.partial`
        of one) taking one job; with Dask it runs in a worker process.
    jobs
        ``(key, job)`` pairs; keys (scan names) must be unique.
    compute
        Where to run (see the module docstring).
    step
        Stage name for progress messages.

    Returns
    -------
    list of TaskOutcome
        One per job, in the order of ``jobs``.
    """
    keys = [key for key, _ in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{step}: job keys must be unique, got duplicates among {keys}")
    progress = _Progress(step, len(jobs))
    if not compute.uses_dask:
        outcomes = []
        for key, job in jobs:
            outcomes.append(run_guarded(task, key, job))
            progress.done(outcomes[-1])
        return outcomes
    with dask_client(compute) as client:
        by_key = _run_on_dask(client, task, jobs, progress)
    return [by_key[key] for key in keys]


@contextlib.contextmanager
def dask_client(compute: ComputeOptions) -> Iterator[Any]:
    """A ``distributed.Client`` on ``compute.scheduler``, or on a fresh local cluster (closed on exit)."""
    from distributed import Client

    if compute.scheduler is not None:
        log.info("connecting to the Dask scheduler at %s", compute.scheduler)
        with Client(compute.scheduler) as client:
            yield client
        return
    with start_local_cluster(compute.workers, compute.memory_limit) as cluster, Client(cluster) as client:
        yield client


def start_local_cluster(workers: int, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded processes limited to ``memory_limit`` each.

    One thread per process: the tasks are numpy/SimpleITK/torch code that holds the
    GIL often and uses its own threads, so processes, not threads, give the
    speed-up. The Dask nanny sets ``OMP_NUM_THREADS=1`` (and the MKL/OpenBLAS
    equivalents) in each worker, and :data:`WORKER_ENVIRONMENT` limits ITK's own
    thread pool too, so N workers use N cores instead of N² threads. No dashboard
    is started.
    """
    import dask
    from distributed import LocalCluster

    log.info("starting a local Dask cluster: %d worker process(es), %s memory each", workers, memory_limit)
    settings = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                **{f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in WORKER_ENVIRONMENT.items()}}
    with dask.config.set(settings):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                            dashboard_address=None)


def _run_on_dask(client: Any, task: Callable[[T], R], jobs: Sequence[tuple[str, T]],
                 progress: "_Progress") -> dict[str, TaskOutcome[R]]:
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]  # keys unique on a shared scheduler, so no other run's results are reused
    futures = {client.submit(run_guarded, task, key, job, key=f"{progress.step}-{key}-{run_id}", pure=False): key
               for key, job in jobs}
    outcomes: dict[str, TaskOutcome[R]] = {}
    for future in as_completed(futures):
        key = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # the worker died (memory limit, signal) or the task could not be shipped
            outcome = TaskOutcome(key, failure=ErrorReport.from_exception(exc))
        future.release()
        outcomes[key] = outcome
        progress.done(outcome)
    return outcomes


class _Progress:
    """Logs one line per finished scan: count, name, failure, rate."""

    def __init__(self, step: str, total: int) -> None:
        self.step, self.total, self.count = step, total, 0
        self.start = time.perf_counter()

    def done(self, outcome: TaskOutcome[Any]) -> None:
        self.count += 1
        rate = self.count / max(time.perf_counter() - self.start, 1e-9) * 3600
        status = f"FAILED: {outcome.failure.error}" if outcome.failure else "done"
        log.info("%s %d/%d %s %s (%.0f scans/hour)", self.step, self.count, self.total, outcome.key, status, rate)
