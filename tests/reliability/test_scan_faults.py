"""Disk full (ENOSPC) and MemoryError on one scan: no partial file, that scan marked failed, the others done.

The faults are injected in-process with ``monkeypatch`` at the lowest layer every
writer/reader goes through: ``fsync`` of an atomic write (where a full disk shows
up for buffered writes) and ``nibabel.load``.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import nibabel as nib
import pandas as pd
import pytest

import wmhkit.io.atomic
from wmhkit.cli import main
from wmhkit.io.atomic import is_temporary


def _disk_full_for(monkeypatch, victim: str) -> None:
    real_fsync = wmhkit.io.atomic._fsync_file

    def fsync(path: Path) -> None:
        if victim in str(path) and path.parent.name != "crashes":  # the scan's outputs, not its crash report
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_fsync(path)

    monkeypatch.setattr(wmhkit.io.atomic, "_fsync_file", fsync)


def _out_of_memory_for(monkeypatch, victim: str) -> None:
    real_load = nib.load

    def load(path, *args, **kwargs):
        if victim in str(path):
            raise MemoryError(f"cannot allocate the voxels of {path}")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(nib, "load", load)


FAULTS = {"enospc": _disk_full_for, "memory": _out_of_memory_for}


def _failures(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "failures.tsv", sep="\t", dtype=str, keep_default_na=False)


def _failed_subjects(folder: Path) -> list[str]:
    return _failures(folder)["subject"].tolist()


def test_out_of_memory_is_reported_as_memory_not_as_a_corrupt_file(bronzed_cohort, tmp_path, monkeypatch):
    cohort = tmp_path / "cohort"
    shutil.copytree(bronzed_cohort.parent, cohort)
    _out_of_memory_for(monkeypatch, "sub-02")
    assert main(["silver", str(cohort / "manifest.tsv"), "--out", str(cohort)]) == 1
    error = _failures(cohort).set_index("subject").loc["sub-02", "error"]
    assert "MemoryError" in error and "re-export" not in error


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_predict_fault_on_one_scan(fault, raw_cohort, random_model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    FAULTS[fault](monkeypatch, "sub-01")
    assert main(["predict", str(raw_cohort), "--model", str(random_model), "--out", str(out)]) == 1
    assert _failed_subjects(out) == ["sub-01"]
    assert [p.name for p in out.rglob("*") if is_temporary(p)] == []
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "sub-00_wmh.nii.gz", "sub-00_wmhprob.nii.gz", "sub-02_wmh.nii.gz", "sub-02_wmhprob.nii.gz"]
    volumes = pd.read_csv(out / "volumes.csv", dtype={"subject": str})
    assert volumes["subject"].tolist() == ["sub-00", "sub-02"]
    monkeypatch.undo()
    assert main(["predict", str(raw_cohort), "--model", str(random_model), "--out", str(out)]) == 0
    assert (out / "sub-01_wmh.nii.gz").is_file() and _failed_subjects(out) == []


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_silver_fault_on_one_scan(fault, bronzed_cohort, tmp_path, monkeypatch, harness):
    cohort = tmp_path / "cohort"
    shutil.copytree(bronzed_cohort.parent, cohort)
    FAULTS[fault](monkeypatch, "sub-01")
    assert main(["silver", str(cohort / "manifest.tsv"), "--out", str(cohort)]) == 1
    assert _failed_subjects(cohort) == ["sub-01"]
    assert [p.name for p in cohort.rglob("*") if is_temporary(p)] == []
    monkeypatch.undo()
    for path in (cohort / "sub-01").iterdir():  # whatever was written before the fault is complete
        harness.check_complete(path)
    manifest = pd.read_csv(cohort / "manifest.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("subject")
    assert manifest.loc["sub-01", "silver"] == "" and manifest.loc["sub-00", "silver"] != ""
    for subject in ("sub-00", "sub-02", "sub-03"):
        assert (cohort / subject / "silver.nii.gz").is_file() and (cohort / subject / "silver.json").is_file()
