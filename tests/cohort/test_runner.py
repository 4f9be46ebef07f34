"""The task runner: same outcomes in-process and on Dask, in job order, failures captured not raised."""

from __future__ import annotations

import math
import os

import pytest

from wmhkit.cohort.runner import ComputeOptions, run_tasks

JOBS = [("d", 16.0), ("bad", -1.0), ("a", 4.0), ("c", 9.0)]


def test_in_process_outcomes_keep_job_order_and_capture_errors():
    outcomes = run_tasks(math.sqrt, JOBS, step="test")
    assert [o.key for o in outcomes] == ["d", "bad", "a", "c"]
    assert [o.value for o in outcomes] == [4.0, None, 2.0, 3.0]
    failure = outcomes[1].failure
    assert failure.error == "math domain error" and failure.traceback.startswith("Traceback") and "ValueError: math domain error" in failure.traceback


def test_compute_options_are_validated():
    assert not ComputeOptions().uses_dask
    assert ComputeOptions(workers=2).uses_dask and ComputeOptions(scheduler="tcp://node:8786").uses_dask
    with pytest.raises(ValueError, match="workers"):
        ComputeOptions(workers=0)
    with pytest.raises(ValueError, match="not a size"):
        ComputeOptions(memory_limit="lots")
    with pytest.raises(ValueError, match="keys must be unique"):
        run_tasks(math.sqrt, [("a", 1.0), ("a", 2.0)], step="test")


def test_dask_outcomes_equal_the_in_process_ones(dask_scheduler):
    on_dask = run_tasks(math.sqrt, JOBS, ComputeOptions(scheduler=dask_scheduler), step="test")
    in_process = run_tasks(math.sqrt, JOBS, step="test")
    assert [(o.key, o.value, o.failure.error if o.failure else None) for o in on_dask] == [
        (o.key, o.value, o.failure.error if o.failure else None) for o in in_process]


def test_a_dying_worker_fails_only_its_own_task(dask_scheduler):
    """A worker killed mid-task (as by its memory limit) is one failure; the other tasks finish."""
    outcomes = run_tasks(os._exit, [("ok", 0)], ComputeOptions(scheduler=dask_scheduler), step="test")
    assert outcomes[0].failure is not None and "KilledWorker" in outcomes[0].failure.error
    after = run_tasks(math.sqrt, [("x", 1.0)], ComputeOptions(scheduler=dask_scheduler), step="test")
    assert after[0].value == 1.0



def test_local_workers_run_itk_on_one_thread_each(dask_scheduler):
    """N workers on N cores: without the limit each worker's ITK would start a thread per core."""

    def itk_threads(_: object) -> int:  # nested: shipped to the workers by value
        import SimpleITK as sitk

        return sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()

    outcomes = run_tasks(itk_threads, [("a", 0), ("b", 1)], ComputeOptions(scheduler=dask_scheduler), step="test")
    assert [o.value for o in outcomes] == [1, 1]
