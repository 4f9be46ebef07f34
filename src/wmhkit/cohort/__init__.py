"""Cohort-scale runs: the per-scan stage skeleton (:mod:`~wmhkit.cohort.stage`), tasks in-process or on Dask,
completion records, failures and crash files, output locks, a per-process model cache."""
