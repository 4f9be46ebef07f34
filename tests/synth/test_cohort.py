"""Phantom cohorts on disk: manifest, grids, volumes, orientation and dtype per profile, determinism."""

import json

import nibabel as nib
import numpy as np
import pytest

from wmhkit.cli import main
from wmhkit.errors import InputError
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.io.provenance import sidecar_path
from wmhkit.synth import synthesize_cohort, synthesize_subject

COARSE_MM = 3.0  # coarse phantoms keep the suite fast; geometry and bookkeeping are the same
EXPECTED = {  # scanner: (axis codes, stored dtype, oblique)
    "A": (("R", "A", "S"), np.float32, False),
    "B": (("L", "P", "S"), np.uint16, False),
    "C": (("R", "A", "S"), np.int16, True),
    "D": (("L", "P", "S"), np.uint8, False),
    "E": (("L", "P", "S"), np.float32, True),
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    manifest_path = synthesize_cohort(out, 5, seed=3, resolution_mm=COARSE_MM)
    return read_manifest(manifest_path)


def test_manifest_has_the_columns_and_valid_relative_paths(cohort):
    table = cohort.table
    required = {"subject", "dataset", "scanner", "stage", "age", "sex", "flair", "t1", "brain_mask", "gold",
                "volume_ml", "fazekas", "true_brain_mask", "fat_suppressed"}
    assert required <= set(table.columns)
    assert table.subject.tolist() == ["sub-001", "sub-002", "sub-003", "sub-004", "sub-005"]
    assert table.scanner.tolist() == ["A", "B", "C", "D", "E"]
    assert set(table.dataset) == {"phantom"} and set(table.stage) <= {"CN", "MCI", "AD"}
    assert (table.brain_mask == "").all()  # prepare must compute its own brain mask
    assert table.fat_suppressed.tolist() == ["0", "0", "0", "1", "0"]
    for row in cohort.rows():
        for column in ("flair", "t1", "gold", "true_brain_mask"):
            assert not row[column].startswith("/") and (cohort.root / row[column]).is_file()
        assert 50 <= float(row["age"]) <= 95 and row["sex"] in {"F", "M"}
        assert 0 <= int(row["fazekas"]) <= 3


def test_gold_t1_and_brain_mask_share_the_flair_grid(cohort):
    for row in cohort.rows():
        flair = load_image(cohort.path(row, "flair"))
        for column in ("t1", "gold", "true_brain_mask"):
            other = load_image(cohort.path(row, column))
            assert flair.same_grid(other), (row["subject"], column)
        assert nib.load(cohort.path(row, "gold")).get_data_dtype() == np.uint8


def test_volume_ml_is_gold_voxels_times_voxel_volume(cohort):
    nonzero = 0
    for row in cohort.rows():
        gold = load_mask(cohort.path(row, "gold"))
        expected = float(gold.array.sum()) * gold.voxel_volume_ml
        assert float(row["volume_ml"]) == pytest.approx(expected, abs=1e-4)
        nonzero += expected > 0
    assert nonzero >= 2


@pytest.mark.parametrize("scanner", sorted(EXPECTED))
def test_orientation_and_dtype_per_profile(cohort, scanner):
    row = next(r for r in cohort.rows() if r["scanner"] == scanner)
    codes, dtype, oblique = EXPECTED[scanner]
    for column in ("flair", "t1"):
        nifti = nib.load(cohort.path(row, column))
        assert nib.aff2axcodes(nifti.affine) == codes
        assert nifti.get_data_dtype() == dtype
        rotation = nifti.affine[:3, :3]
        assert (np.abs(rotation - np.diag(np.diag(rotation))).max() > 0.1) == oblique


def test_head_is_drawn_except_for_the_skull_stripped_profile(cohort):
    for row in cohort.rows():
        flair = load_image(cohort.path(row, "flair")).array
        brain = load_mask(cohort.path(row, "true_brain_mask")).array > 0
        outside_signal = flair[~brain] > 0.3 * np.median(flair[brain])
        if row["scanner"] == "A":
            assert row["skull_stripped"] == "1" and not np.any(flair[~brain])
        else:
            assert row["skull_stripped"] == "0" and outside_signal.sum() > 500  # scalp and marrow


def test_flair_lesions_are_bright_and_t1_lesions_dark(cohort):
    row = max(cohort.rows(), key=lambda r: float(r["volume_ml"]))
    flair = load_image(cohort.path(row, "flair")).array
    t1 = load_image(cohort.path(row, "t1")).array
    gold = load_mask(cohort.path(row, "gold")).array > 0
    brain = load_mask(cohort.path(row, "true_brain_mask")).array > 0
    normal = brain & ~gold
    assert np.median(flair[gold]) > np.percentile(flair[normal], 75)
    assert np.median(t1[gold]) < np.percentile(t1[normal], 90)  # below normal WM, the brightest brain tissue


def test_sidecar_records_seed_and_subject_parameters(cohort):
    row = next(cohort.rows())
    record = json.loads(sidecar_path(cohort.path(row, "flair")).read_text())
    assert record["step"] == "synth" and record["seed"] == 3
    assert record["parameters"]["subject"]["stage"] == row["stage"]
    assert {"anatomy", "lesions", "scanner"} <= set(record["parameters"])


def test_same_seed_gives_identical_files_whatever_the_cohort_size(cohort, tmp_path):
    manifest = read_manifest(synthesize_cohort(tmp_path, 2, seed=3, resolution_mm=COARSE_MM))
    for row, original in zip(manifest.rows(), cohort.rows()):
        for column in ("flair", "t1", "gold", "true_brain_mask"):
            assert manifest.path(row, column).read_bytes() == cohort.path(original, column).read_bytes()
        assert row["volume_ml"] == original["volume_ml"]


def test_different_seed_gives_a_different_subject(cohort, tmp_path):
    row = synthesize_subject(tmp_path, 1, seed=4, scanner="A", resolution_mm=COARSE_MM)
    original = next(cohort.rows())
    assert (tmp_path / row["flair"]).read_bytes() != cohort.path(original, "flair").read_bytes()


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown scanner"):
        synthesize_cohort(tmp_path, 1, scanners=("A", "Q"), resolution_mm=COARSE_MM)
    with pytest.raises(InputError, match="at least 1"):
        synthesize_cohort(tmp_path, 0, resolution_mm=COARSE_MM)
    with pytest.raises(InputError, match="does not exist"):
        synthesize_cohort(tmp_path, 1, lesion_library=tmp_path / "missing", resolution_mm=COARSE_MM)


def test_cli_synth_writes_a_readable_cohort(tmp_path):
    out = tmp_path / "cli"
    code = main(["synth", "--out", str(out), "--subjects", "1", "--seed", "5", "--scanners", "c",
                 "--no-head", "--with-brain-mask", "--resolution-mm", str(COARSE_MM)])
    assert code == 0
    row = next(read_manifest(out / "manifest.tsv").rows())
    assert row["scanner"] == "C" and row["skull_stripped"] == "1"
    assert row["brain_mask"] == row["true_brain_mask"] != ""


def test_cli_synth_reports_a_bad_scanner_as_an_error(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--subjects", "1", "--scanners", "A,Z",
                 "--resolution-mm", str(COARSE_MM)]) == 2
    assert "unknown scanner" in capsys.readouterr().err
