"""The cohort commands' shared compute options: --threads-per-worker reaches the stage functions."""

from __future__ import annotations

import pytest
import typer

from wmhkit.cli import main
from wmhkit.cli._compute import compute_arguments


def test_compute_arguments_carry_the_threads_per_worker():
    assert compute_arguments(2, None, "2GiB", 3) == {"workers": 2, "scheduler": None, "memory_limit": "2GiB",
                                                     "threads_per_worker": 3}
    assert compute_arguments(1, None, "2GiB")["threads_per_worker"] is None
    with pytest.raises(typer.BadParameter, match="threads per worker"):
        compute_arguments(1, None, "2GiB", 0)


def test_prepare_takes_threads_per_worker(tmp_path, write_cohort, capsys):
    manifest = write_cohort(tmp_path / "data", 1)
    base = ["prepare", str(manifest), "--no-n4", "--no-qc-png"]
    assert main(base + ["--out", str(tmp_path / "bad"), "--threads-per-worker", "0"]) == 2
    assert "--threads-per-worker" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "one"), "--threads-per-worker", "1"]) == 0
    assert (tmp_path / "one" / "sub-01" / "flair.nii.gz").is_file()
