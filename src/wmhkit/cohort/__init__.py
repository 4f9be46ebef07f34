"""Cohort-scale runs: per-scan tasks in-process or on Dask, completion records, failures, output locks.

Modules
-------
stage
    One stage run (:func:`~wmhkit.cohort.stage.run_stage`): lock, up-to-date scans skipped,
    tasks run, crash files, ``failures.tsv``; a stage supplies only its per-scan work.
runner
    Run one task per scan in-process (one worker) or on Dask distributed (a local
    cluster of ``workers`` processes, or a running scheduler); gather the outcomes
    in a fixed order.
records
    Per-scan completion records: a scan is skipped on a rerun only when its record
    matches the inputs' hashes, the parameters, the model and the versions, and its
    outputs are intact.
failures
    The failure record of a scan, its crash file and ``failures.tsv``.
lock
    An exclusive lock on an output folder, so two runs never write into it at once.
cache
    A one-object cache per process (a model loaded once per worker, not per scan).
"""
