"""One cohort stage run: the per-scan skeleton shared by ``prepare``, ``bronze``, ``silver`` and ``predict``.

A stage supplies its per-scan work as a :class:`ScanStage` and its own cohort outputs
(a manifest, ``volumes.csv``) as a function of the outcomes; :func:`run_stage` does the
rest. It holds the output folder's lock (:mod:`~wmhkit.cohort.lock`) for the whole run,
answers the scans whose completion record is up to date before any worker starts, runs
the others in this process or on Dask workers (:func:`~wmhkit.cohort.runner.run_tasks`),
gives each failed scan (or failed part of one, such as a bronze method) its tracebacks in
``OUT/crashes/<key>.txt`` and its rows in ``OUT/failures.tsv`` (a scan that succeeded
loses an earlier run's crash file), then writes ``failures.tsv`` and the stage's outputs.
Inside each task a complete record is reused; otherwise the record is discarded, the scan
computed and a new record committed after its outputs (:mod:`~wmhkit.cohort.records`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar

from wmhkit.cohort.failures import ErrorReport, ScanFailure, write_crash_file, write_failures
from wmhkit.cohort.lock import output_lock
from wmhkit.cohort.records import commit_record, completed_result, discard_record, record_path
from wmhkit.cohort.runner import ComputeOptions, TaskOutcome, run_tasks
from wmhkit.errors import WmhkitError
from wmhkit.io.atomic import resolve_output

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")
T = TypeVar("T")


class ComputeArguments(TypedDict, total=False):
    """Keyword arguments of every stage function (``prepare_manifest``, ...): where and on how many
    threads its scans run (:class:`~wmhkit.cohort.runner.ComputeOptions`, same names and defaults)."""

    workers: int
    scheduler: str | None
    memory_limit: str
    threads_per_worker: int | None


@dataclass(frozen=True)
class StageScan(Generic[J]):
    """One scan of a run: its ``key`` (name of its record, crash file and progress lines), its
    identifiers for ``failures.tsv``, and its ``job`` (small, picklable), or the ``error`` that
    prevented making the job (the scan fails, the others run)."""

    key: str
    subject: str
    session: str
    job: J | None = None
    error: ErrorReport | None = None

    @classmethod
    def build(cls, key: str, subject: str, session: str, make_job: Callable[[], J]) -> StageScan[J]:
        """The scan with the job ``make_job()`` returns, or with the error it raises."""
        try:
            return cls(key, subject, session, job=make_job())
        except Exception as exc:  # e.g. an unknown normalisation cell: that scan fails, the others run
            return cls(key, subject, session, error=ErrorReport.from_exception(exc))


@dataclass(frozen=True)
class StageResult(Generic[R]):
    """Outcome of a manifest stage (``prepare``, ``bronze``, ``silver``): the manifest it wrote, scan → result,
    and the failures (also in ``OUT/failures.tsv``; bronze sets their ``method``, ``all`` for a whole scan)."""

    manifest: Path
    scans: dict[str, R]
    failures: list[ScanFailure]


class ScanStage(Generic[J, R]):
    """The per-scan work of a stage; an instance is the task shipped to workers (keep it picklable).

    Subclasses set :attr:`step` and implement :meth:`expected`, :meth:`compute` and :meth:`restore`.
    """

    #: Stage name: of the output lock, the records' folder (``OUT/records/<step>``) and progress lines.
    step: str = ""
    #: The scan's outputs as named in the "up to date, not recomputed" message.
    outputs: str = "outputs"
    #: ``failures.tsv`` has a ``method`` column (the failed part of a scan, or :attr:`label`).
    with_method: bool = False

    @property
    def label(self) -> str:
        """Crash-file section (and ``failures.tsv`` method) of a whole-scan failure."""
        return self.step

    def record(self, job: J) -> Path:
        """The completion record of a job that has ``out_dir`` and ``scan_id``."""
        return record_path(job.out_dir, self.step, job.scan_id)  # type: ignore[attr-defined]

    def expected(self, job: J, record: Path) -> Mapping[str, Any]:
        """What the job's record must hold (:func:`~wmhkit.cohort.records.expected_record`; hashes the inputs)."""
        raise NotImplementedError

    def compute(self, job: J) -> tuple[R, Sequence[Path] | None, Mapping[str, Any]]:
        """Compute one scan: its result, every file written (None: commit no record), the record's summary."""
        raise NotImplementedError

    def restore(self, job: J, stored: Mapping[str, Any]) -> R:
        """The scan's result rebuilt from the summary in its complete record."""
        raise NotImplementedError

    def errors(self, result: R) -> Mapping[str, ErrorReport]:
        """Failed parts (label → error) of a scan that ran; none by default."""
        return {}

    def clean(self, out_dir: Path) -> None:
        """Remove what a killed run left in ``out_dir`` (the lock is held); nothing by default."""

    def stored(self, job: J) -> R | None:
        """The job's result when its record is up to date, else None; checked before any worker
        starts. An input that cannot be read gives None, so that the task runs and reports it."""
        record = self.record(job)
        if not record.is_file():
            return None
        try:
            stored = completed_result(record, self.expected(job, record))
        except (OSError, WmhkitError):
            return None
        return None if stored is None else self.restore(job, stored)

    def __call__(self, job: J) -> R:
        """The task: the scan's result, reused from a complete record or computed (and recorded)."""
        record = self.record(job)
        expected = self.expected(job, record)
        stored = completed_result(record, expected)
        if stored is not None:
            log.info("%s: %s are up to date, not recomputed", record.stem, self.outputs)
            return self.restore(job, stored)
        discard_record(record)
        result, written, summary = self.compute(job)
        if written is not None:
            commit_record(record, expected, written, summary)
        return result


def run_stage(
    stage: ScanStage[J, R],
    scans: Sequence[StageScan[J]],
    out_dir: str | os.PathLike[str],
    compute: ComputeOptions,
    write_outputs: Callable[[list[TaskOutcome[R]]], T],
    *,
    failures: Iterable[ScanFailure] = (),
) -> tuple[T, list[ScanFailure]]:
    """Run ``stage`` on ``scans`` into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    stage
        The per-scan work.
    scans
        The scans, in the order of ``failures.tsv`` and of the outcomes.
    out_dir
        Output folder (created, and locked for the run).
    compute
        Where the tasks run.
    write_outputs
        Writes the stage's own outputs from the outcomes (one per scan, in order), under the lock.
    failures
        Earlier failures, listed first in ``failures.tsv`` (bronze: those of the prepare it ran).

    Returns
    -------
    tuple
        What ``write_outputs`` returned, and every failure (as in ``OUT/failures.tsv``).

    Raises
    ------
    OutputError
        When another run holds the lock of ``out_dir``, or it cannot be created.
    """
    out_dir = Path(out_dir)
    failures = list(failures)
    with output_lock(out_dir, step=stage.step):
        stage.clean(out_dir)
        jobs = [(scan.key, scan.job) for scan in scans if scan.error is None]
        done = {o.key: o for o in run_tasks(stage, jobs, compute, step=stage.step, stored=stage.stored)}
        outcomes = [done.get(scan.key) or TaskOutcome(scan.key, failure=scan.error) for scan in scans]
        for scan, outcome in zip(scans, outcomes):
            failures += _scan_failures(stage, scan, outcome, out_dir)
        write_failures(failures, out_dir / "failures.tsv", with_method=stage.with_method)
        written = write_outputs(outcomes)
    return written, failures


def _scan_failures(stage: ScanStage[Any, R], scan: StageScan[Any], outcome: TaskOutcome[R],
                   out_dir: Path) -> list[ScanFailure]:
    """The scan's failures, its crash file written (or an earlier run's removed)."""
    crash_file = resolve_output(out_dir, f"crashes/{scan.key}.txt")
    if outcome.failure is not None:
        log.error("%s: %s", scan.key, outcome.failure.error)
        reports = {stage.label: outcome.failure}
    else:
        reports = dict(stage.errors(outcome.value))  # type: ignore[arg-type]
    if not reports:
        crash_file.unlink(missing_ok=True)
        return []
    write_crash_file(crash_file, reports)
    return [ScanFailure(scan.subject, scan.session, report.error, crash_file,
                        method=label if stage.with_method else "") for label, report in reports.items()]
