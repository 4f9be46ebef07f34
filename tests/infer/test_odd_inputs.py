"""Odd input through the command line (a subprocess, as a user runs it): one clear line naming the file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from wmhkit.cli import main
from wmhkit.stats.tables import read_table


def _predict(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wmhkit", "predict", *map(str, args)], capture_output=True,
                          text=True, timeout=300, check=False)


def _save(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.float32), affine), path)
    return path


@pytest.mark.parametrize(
    ("shape", "affine", "message"),
    [((256, 256), np.diag([1.0, 1.0, 5.0, 1.0]), "image is a single slice or 2D (256×256×1 voxels): a brain mask "
                                                  "cannot be computed on it"),
     ((8, 8, 8), np.eye(4), "image too small to hold a brain: 8×8×8 voxels of 1×1×1 mm")],
    ids=["2d", "8x8x8"],
)
def test_unusable_images_fail_with_one_line_naming_the_file(tmp_path, shape, affine, message):
    flair = _save(tmp_path / "odd" / "scan.nii.gz", np.random.default_rng(0).random(shape) * 100, affine)
    result = _predict(flair, "--out", tmp_path / "out")  # the bundled model: N4 on, brain mask computed
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"scan: {flair}: {message}" in result.stderr and "Zero-valued spacing" not in result.stderr


def test_volumes_and_sidecars_carry_flags_and_a_qc_mosaic_is_written(tiny_model, write_scan, tmp_path):
    flair, _ = write_scan(tmp_path / "data", "coarse")  # crafted scans have 5 mm voxels
    out = tmp_path / "out"
    assert main(["predict", "--model", str(tiny_model), str(flair), "--out", str(out), "--threshold", "0.3"]) == 0
    assert read_table(out / "volumes.csv", text_columns=("flags",))["flags"].tolist() == ["coarse_voxels"]
    assert '"flags": "coarse_voxels"' in (out / "coarse_wmh.json").read_text()
    png = (out / "qc" / "coarse_wmh.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == 6 * 200 and height < 400  # one axial row of six tiles


def test_a_t1_given_as_flair_is_flagged_in_volumes_csv_and_a_flair_is_not(tiny_model, tmp_path):
    from wmhkit.synth.cohort import synthesize_subject

    row = synthesize_subject(tmp_path / "data", 2, seed=3, scanner="B", resolution_mm=2.0, with_brain_mask=True)
    manifest = tmp_path / "data" / "manifest.tsv"
    manifest.write_text("subject\tflair\tbrain_mask\n"
                        f"as-t1\t{row['t1']}\t{row['brain_mask']}\nas-flair\t{row['flair']}\t{row['brain_mask']}\n")
    result = _predict(manifest, "--model", tiny_model, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    flags = read_table(tmp_path / "out" / "volumes.csv", text_columns=("subject", "flags"))
    assert dict(zip(flags["subject"], flags["flags"].fillna(""))) == {"as-t1": "t1_like_contrast", "as-flair": ""}
    assert "is it a T1 rather than a FLAIR?" in result.stderr and "sub-002_T1.nii.gz" in result.stderr


def test_a_disk_filling_while_writing_names_the_file_and_leaves_no_orphan_mask(tiny_model, write_scan, tmp_path,
                                                                               monkeypatch):
    from wmhkit.io import atomic

    flair, _ = write_scan(tmp_path / "data", "full")
    fsync = atomic._fsync_file

    def full_on_sidecars(path):
        if Path(path).name.startswith(".full_wmh.json."):  # the mask's sidecar, after the maps are written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(path)

    monkeypatch.setattr(atomic, "_fsync_file", full_on_sidecars)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(tiny_model), str(flair), "--out", str(out)]) == 1
    failures = (out / "failures.tsv").read_text()
    assert f"cannot write {out / 'full_wmh.json'}: No space left on device" in failures
    assert not list(out.glob("full_*")) and not list(out.rglob("*.tmp*"))
