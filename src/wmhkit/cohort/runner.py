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
* ``workers=N>1``: a :func:`start_local_cluster` of N worker processes, each
  running one task at a time and limited to ``memory_limit`` (the nanny restarts
  a worker that exceeds it; that scan fails with a "KilledWorker" error after one
  retry);
* ``scheduler=ADDRESS``: a running Dask scheduler (e.g. one started by
  dask-jobqueue's ``SLURMCluster``); its workers' memory limits are the ones
  they were started with.

How many threads a task may use (``threads_per_worker``): the threads of the
worker's ITK pool (SimpleITK's N4, resampling, STAPLE inputs) and, for local
workers, its OpenMP/BLAS pools. Left automatic (``None``), an in-process run
keeps the libraries' defaults (all cores), local workers get the cores divided
among them (:func:`automatic_threads`) and a scheduler's workers keep their own
settings. An explicit value applies on every path: the guard sets ITK's thread
count around each task (:func:`itk_threads`), and local workers also start with
it in their OpenMP/BLAS variables (:func:`worker_environment`). Torch inference
is not affected: ``predict`` runs one torch thread per scan wherever it runs, so
its outputs are byte-identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wmhkit.cohort.failures import ErrorReport
from wmhkit.itk_threads import itk_threads

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Default memory limit of each local worker process (dask byte string, or "auto" = RAM / workers).
DEFAULT_MEMORY_LIMIT = "4GiB"
#: Variables sizing a process's thread pools (ITK's, then OpenMP/BLAS ones), read when it starts.
#: Without them every local worker would start a thread per core. Set them for workers you
#: start yourself too (see the README's SLURM recipe).
THREAD_VARIABLES = ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS")
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
    threads_per_worker
        Threads each worker's ITK (and, for local workers, OpenMP/BLAS) pools may
        use; ``None`` is automatic (see :attr:`task_threads`). Torch inference
        stays on one thread per scan whatever it is.
    """

    workers: int = 1
    scheduler: str | None = None
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    threads_per_worker: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if self.threads_per_worker is not None:
            _check_threads(self.threads_per_worker)
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

    @property
    def task_threads(self) -> int | None:
        """ITK threads each task runs with; ``None`` leaves the running process's setting alone.

        The explicit :attr:`threads_per_worker`; when automatic, the cores divided
        among local workers (:func:`automatic_threads`), and ``None`` in-process
        (the libraries' defaults: all cores) or on a scheduler (its workers' settings).
        """
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        if self.scheduler is None and self.workers > 1:
            return automatic_threads(self.workers)
        return None


def automatic_threads(workers: int) -> int:
    """Threads per local worker when not given: this machine's cores divided among ``workers`` (at least 1)."""
    return max(1, (os.cpu_count() or 1) // workers)


def worker_environment(threads: int) -> dict[str, str]:
    """The :data:`THREAD_VARIABLES` of a worker process whose pools may use ``threads`` threads each."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def _check_threads(threads: object) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads per worker must be a whole number >= 1 (or left automatic), got {threads!r}")


@dataclass(frozen=True)
class TaskOutcome(Generic[R]):
    """The outcome of one job: its key, and either the task's value or the error it raised."""

    key: str
    value: R | None = None
    failure: ErrorReport | None = None


def run_guarded(task: Callable[[T], R], key: str, job: T, threads: int | None = None) -> TaskOutcome[R]:
    """``task(job)`` as an outcome, run with ``threads`` ITK threads (:func:`itk_threads`); any
    exception becomes its :class:`ErrorReport` (the worker-side guard)."""
    try:
        with itk_threads(threads):
            return TaskOutcome(key, value=task(job))
    except Exception as exc:  # one bad scan must not stop the cohort; reported in the outcome
        return TaskOutcome(key, failure=ErrorReport.from_exception(exc))


def run_tasks(
    task: Callable[[T], R], jobs: Sequence[tuple[str, T]], compute: ComputeOptions = ComputeOptions(), *, step: str,
    stored: Callable[[T], R | None] | None = None,
) -> list[TaskOutcome[R]]:
    """Run ``task`` on every job and return the outcomes in the order of ``jobs``.

    Jobs whose outputs are up to date (``stored``) are answered here, before any
    worker starts, and are not counted in the progress rate; local workers are
    only started for the jobs left, and never more workers than jobs (one job
    left, or none: in this process).

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
    stored
        A cheap check of one job's completion record, returning the job's value
        when its outputs are up to date and None otherwise; it must not raise.

    Returns
    -------
    list of TaskOutcome
        One per job, in the order of ``jobs``.
    """
    keys = [key for key, _ in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{step}: job keys must be unique, got duplicates among {keys}")
    by_key: dict[str, TaskOutcome[R]] = {}
    if stored is not None:
        for key, job in jobs:
            value = stored(job)
            if value is not None:
                by_key[key] = TaskOutcome(key, value)
        if by_key:
            log.info("%s: %d of %d scan(s) up to date, not recomputed", step, len(by_key), len(jobs))
    pending = [(key, job) for key, job in jobs if key not in by_key]
    compute = _fitted(compute, len(pending), step)
    progress = _Progress(step, len(pending))
    if not compute.uses_dask:
        for key, job in pending:
            by_key[key] = run_guarded(task, key, job, compute.task_threads)
            progress.done(by_key[key])
    else:
        with dask_client(compute) as client:
            by_key |= _run_on_dask(client, task, pending, compute.task_threads, progress)
    return [by_key[key] for key in keys]


def _fitted(compute: ComputeOptions, jobs: int, step: str) -> ComputeOptions:
    """``compute`` with no more local workers than ``jobs`` (in this process for one job or none)."""
    if compute.scheduler is not None or compute.workers <= max(jobs, 1):
        return compute
    workers = max(jobs, 1)
    log.info("%s: %d scan(s) to compute, so %s instead of starting %d workers", step, jobs,
             "running in this process" if workers == 1 else f"starting {workers} workers", compute.workers)
    return dataclasses.replace(compute, workers=workers)


@contextlib.contextmanager
def dask_client(compute: ComputeOptions) -> Iterator[Any]:
    """A ``distributed.Client`` on ``compute.scheduler``, or on a fresh local cluster (closed on exit)."""
    from distributed import Client

    if compute.scheduler is not None:
        log.info("connecting to the Dask scheduler at %s", compute.scheduler)
        with Client(compute.scheduler) as client:
            yield client
        return
    with start_local_cluster(compute.workers, compute.memory_limit, compute.task_threads) as cluster, \
            Client(cluster) as client:
        yield client


@contextlib.contextmanager
def start_local_cluster(workers: int, memory_limit: str = DEFAULT_MEMORY_LIMIT,
                        threads_per_worker: int | None = None) -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of ``workers`` processes limited to ``memory_limit`` each
    (a context manager: the cluster is closed on exit).

    Each process runs one task at a time (one Dask thread): the tasks are
    numpy/SimpleITK/torch code that holds the GIL often and uses its own thread
    pools, so processes, not Dask threads, give the speed-up. Those pools are
    sized by :func:`worker_environment` before each worker starts (restarted
    ones included), to ``threads_per_worker`` threads (default
    :func:`automatic_threads`: the cores divided among the workers), whatever
    this process's own variables are, so N workers do not start N × cores
    threads. No dashboard is started. Dask's scratch files (spill, locks) go to a
    temporary folder of this cluster, removed on exit, not to a
    ``dask-scratch-space`` folder left in the system's temporary folder.
    """
    import dask
    from distributed import LocalCluster

    if threads_per_worker is not None:
        _check_threads(threads_per_worker)
    threads = automatic_threads(workers) if threads_per_worker is None else threads_per_worker
    log.info("starting a local Dask cluster: %d worker process(es), %s memory and %d thread(s) each",
             workers, memory_limit, threads)
    settings = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                **{f"distributed.nanny.pre-spawn-environ.{name}": value
                   for name, value in worker_environment(threads).items()}}
    with tempfile.TemporaryDirectory(prefix="wmhkit-dask-") as scratch:
        with dask.config.set({**settings, "temporary-directory": scratch}), _environment(worker_environment(threads)):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                                   dashboard_address=None, local_directory=scratch)
        with cluster:
            yield cluster


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """This process's environment with ``variables`` set inside the block, restored after.

    Dask's nannies take each pre-spawn variable from this process's environment
    when it is set there, not from the configuration (so an exported
    ``OMP_NUM_THREADS=1`` would win over the thread count asked for); they read
    them once, when the cluster is created, and set them in this process too.
    """
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_on_dask(client: Any, task: Callable[[T], R], jobs: Sequence[tuple[str, T]], threads: int | None,
                 progress: "_Progress") -> dict[str, TaskOutcome[R]]:
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]  # keys unique on a shared scheduler, so no other run's results are reused
    futures = {client.submit(run_guarded, task, key, job, threads, key=f"{progress.step}-{key}-{run_id}",
                             pure=False): key
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
