"""The task runner: same outcomes in-process and on Dask, in job order, failures captured not raised."""

from __future__ import annotations

import math
import os

import pytest
import SimpleITK as sitk

from wmhkit.cohort.runner import ComputeOptions, automatic_threads, run_tasks

JOBS = [("d", 16.0), ("bad", -1.0), ("a", 4.0), ("c", 9.0)]


def test_in_process_outcomes_keep_job_order_and_capture_errors():
    outcomes = run_tasks(math.sqrt, JOBS, step="test")
    assert [o.key for o in outcomes] == ["d", "bad", "a", "c"]
    assert [o.value for o in outcomes] == [4.0, None, 2.0, 3.0]
    failure = outcomes[1].failure
    assert failure.error == "math domain error" and failure.traceback.startswith("Traceback") and "ValueError: math domain error" in failure.traceback


def test_fewer_jobs_than_workers_run_in_this_process_and_stored_ones_are_not_rerun(caplog):
    with caplog.at_level("INFO", logger="wmhkit.cohort.runner"):
        outcomes = run_tasks(str.upper, [("a", "x"), ("b", "y"), ("c", "z")], ComputeOptions(workers=4), step="t",
                             stored=lambda job: "stored" if job != "y" else None)
    assert [outcome.value for outcome in outcomes] == ["stored", "Y", "stored"]
    assert "t: 2 of 3 scan(s) up to date" in caplog.text
    assert "1 scan(s) to compute, so running in this process" in caplog.text
    assert "t 1/1 b done" in caplog.text and "Dask" not in caplog.text


def test_a_local_cluster_leaves_no_scratch_folder(tmp_path, monkeypatch):
    import tempfile

    from wmhkit.cohort.runner import start_local_cluster

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with start_local_cluster(1, "1GiB") as cluster:
        assert cluster.scheduler_address and [p.name[:12] for p in tmp_path.iterdir()] == ["wmhkit-dask-"]
    assert list(tmp_path.iterdir()) == []


def test_compute_options_are_validated():
    assert not ComputeOptions().uses_dask
    assert ComputeOptions(workers=2).uses_dask and ComputeOptions(scheduler="tcp://node:8786").uses_dask
    with pytest.raises(ValueError, match="workers"):
        ComputeOptions(workers=0)
    with pytest.raises(ValueError, match="not a size"):
        ComputeOptions(memory_limit="lots")
    with pytest.raises(ValueError, match="keys must be unique"):
        run_tasks(math.sqrt, [("a", 1.0), ("a", 2.0)], step="test")
    for threads in (0, -2, True, 1.5, "2"):
        with pytest.raises(ValueError, match="threads per worker"):
            ComputeOptions(threads_per_worker=threads)


def test_threads_per_task_are_explicit_or_cores_divided_among_local_workers():
    assert ComputeOptions(threads_per_worker=3).task_threads == 3
    assert ComputeOptions(scheduler="tcp://node:8786", threads_per_worker=2).task_threads == 2
    assert ComputeOptions().task_threads is None  # in-process: the libraries' defaults
    assert ComputeOptions(scheduler="tcp://node:8786").task_threads is None  # the workers' own settings
    assert ComputeOptions(workers=2).task_threads == automatic_threads(2) == max(1, os.cpu_count() // 2)
    assert automatic_threads(4 * os.cpu_count()) == 1


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



def itk_threads(_: object) -> int:
    """The task's ITK thread count (as the SimpleITK filters it creates will use)."""
    return sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()


def thread_settings_task():
    """A task returning the ITK threads and the OpenMP variable it sees; nested, so that it
    is shipped to Dask workers by value (they cannot import this test module)."""

    def thread_settings(_: object) -> tuple[int, str]:
        import os

        import SimpleITK

        return SimpleITK.ProcessObject.GetGlobalDefaultNumberOfThreads(), os.environ.get("OMP_NUM_THREADS", "")

    return thread_settings


def test_in_process_tasks_run_on_the_explicit_itk_threads_which_are_restored_after():
    default = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    explicit = default + 1

    def failing(_: object) -> None:
        raise RuntimeError(f"ITK had {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads")

    outcomes = run_tasks(itk_threads, [("a", 0), ("b", 1)], ComputeOptions(threads_per_worker=explicit), step="test")
    assert [o.value for o in outcomes] == [explicit, explicit]
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == default
    failed = run_tasks(failing, [("a", 0)], ComputeOptions(threads_per_worker=explicit), step="test")
    assert failed[0].failure.error.endswith(f"ITK had {explicit} threads")
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == default
    assert run_tasks(itk_threads, [("a", 0)], step="test")[0].value == default  # automatic: left alone


def test_local_workers_start_with_the_cores_divided_among_them(dask_scheduler):
    """N workers on N cores: without the limit each worker's ITK would start a thread per core."""
    outcomes = run_tasks(thread_settings_task(), [("a", 0), ("b", 1)], ComputeOptions(scheduler=dask_scheduler),
                         step="test")
    threads = automatic_threads(2)  # the conftest cluster has two workers
    assert [o.value for o in outcomes] == [(threads, str(threads))] * 2


def test_explicit_threads_apply_on_a_scheduler_and_are_restored_after(dask_scheduler):
    explicit = automatic_threads(2) + 1
    on_dask = run_tasks(thread_settings_task(), [("a", 0), ("b", 1)],
                        ComputeOptions(scheduler=dask_scheduler, threads_per_worker=explicit), step="test")
    assert [o.value[0] for o in on_dask] == [explicit, explicit]
    after = run_tasks(thread_settings_task(), [("a", 0), ("b", 1)], ComputeOptions(scheduler=dask_scheduler),
                      step="test")
    assert [o.value[0] for o in after] == [automatic_threads(2)] * 2


def test_a_local_cluster_starts_its_workers_on_the_explicit_threads(monkeypatch):
    """Even when this process's own OpenMP variable says otherwise (Dask would let it win); it is kept."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    explicit = automatic_threads(2) + 1
    outcomes = run_tasks(thread_settings_task(), [("a", 0), ("b", 1)],  # two jobs: fewer would run in-process
                         ComputeOptions(workers=2, threads_per_worker=explicit, memory_limit="1GiB"), step="test")
    assert [outcome.value for outcome in outcomes] == [(explicit, str(explicit))] * 2
    assert os.environ["OMP_NUM_THREADS"] == "1"
