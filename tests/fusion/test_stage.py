"""The silver stage: consensus in native space, rater tables, failure isolation."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from wmhkit.bronze.stage import BronzeOptions, bronze_manifest
from wmhkit.cli import main
from wmhkit.fusion.quality import error_agreement, label_quality
from wmhkit.fusion.stage import SilverOptions, silver_manifest
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image


@pytest.fixture(scope="module")
def bronzed_once(prepared_toy, tmp_path_factory):
    """The toy cohort with three bronze methods (made once per module; tests use a copy)."""
    cohort = tmp_path_factory.mktemp("bronzed") / "cohort"
    shutil.copytree(prepared_toy.parent.parent.parent, cohort)
    work = cohort / "work"
    bronze_manifest(work / "prepared" / "manifest.tsv", work,
                    options=BronzeOptions(methods=("outlier", "growth", "tophat")))
    return cohort


@pytest.fixture
def bronzed(bronzed_once, tmp_path):
    """A private copy of the bronzed toy cohort; returns its bronze manifest."""
    shutil.copytree(bronzed_once, tmp_path / "cohort")
    return tmp_path / "cohort" / "work" / "manifest.tsv"


@pytest.mark.parametrize("method", ["staple", "majority"])
def test_silver_in_native_space_with_rater_performance(bronzed, method):
    work = bronzed.parent
    code = main(["silver", str(bronzed), "--out", str(work), "--method", method])
    assert code == 0
    manifest = read_manifest(work / "manifest.tsv")
    for row in manifest.rows():
        native = load_image(manifest.root / row["native_flair"])
        silver = load_mask(manifest.path(row, "silver"))
        probability = load_image(manifest.root / row["silver_prob"])
        assert silver.shape == native.shape and np.array_equal(silver.affine, native.affine)
        assert np.array_equal(silver.array.astype(bool), probability.array > 0.5)
    raters = pd.read_csv(work / "raters.tsv", sep="\t")
    assert sorted(raters["method"].unique()) == ["growth", "outlier", "tophat"] and len(raters) == 6
    summary = pd.read_csv(work / "raters_summary.tsv", sep="\t")
    assert summary["n_scans"].tolist() == [2, 2, 2]
    assert summary["specificity_mean"].between(0.9, 1.0).all()
    quality = label_quality(work / "manifest.tsv")
    assert set(quality["label"]) == {"outlier", "growth", "tophat", "silver"}
    assert quality.loc[quality["label"] == "silver", "dice"].gt(0.3).all()
    assert len(error_agreement(work / "manifest.tsv")) == 3
    # Each bronze row carries the estimates of its scan's consensus (the sidecar's; raters.tsv has the same).
    merged = quality.merge(raters, left_on=["subject", "label"], right_on=["subject", "method"])
    assert len(merged) == 6
    assert np.allclose(merged["staple_sensitivity"], merged["sensitivity"], equal_nan=True)
    assert np.allclose(merged["staple_specificity"], merged["specificity"], equal_nan=True)
    assert quality.loc[quality["label"] == "silver", "staple_sensitivity"].isna().all()


def test_silver_out_elsewhere_writes_a_manifest_that_reaches_every_input(bronzed, tmp_path):
    out = tmp_path / "far" / "away" / "runs" / "silver"  # more than two folders from the bronze data: absolute
    assert main(["silver", str(bronzed), "--out", str(out), "--method", "majority"]) == 0
    manifest = read_manifest(out / "manifest.tsv")  # checks that every path cell names an existing file
    row = next(manifest.rows())
    assert row["flair"].startswith(str(tmp_path)) and row["bronze_outlier"].startswith(str(tmp_path))
    assert not row["silver"].startswith("/") and manifest.path(row, "silver").is_relative_to(out)


def test_a_rater_mask_of_255s_fails_that_scan_only(bronzed):
    work = bronzed.parent
    manifest = read_manifest(bronzed)
    row = next(manifest.rows())
    bad = load_mask(manifest.path(row, "bronze_growth"))
    save_image(bad.with_array(np.full(bad.shape, 255.0, np.float32)), manifest.path(row, "bronze_growth"))
    result = silver_manifest(bronzed, work)
    assert [(f.subject, f.method) for f in result.failures] == [("toy1", "staple")]
    assert "255" in result.failures[0].error
    assert set(result.scans) == {"toy2"}
    assert read_manifest(work / "manifest.tsv").table.set_index("subject").loc["toy1", "silver"] == ""


def test_a_mask_on_another_grid_is_a_clear_error(bronzed):
    manifest = read_manifest(bronzed)
    row = next(manifest.rows())
    mask = load_mask(manifest.path(row, "bronze_tophat"))
    from wmhkit.io.image import Image
    from wmhkit.io.nifti import save_mask

    save_mask(Image(mask.array[:-3], mask.affine), manifest.path(row, "bronze_tophat"))
    result = silver_manifest(bronzed, bronzed.parent, options=SilverOptions(method="majority"))
    assert "neither the scan's native FLAIR grid" in result.failures[0].error


def test_silver_needs_bronze_columns(copy_prepared):
    assert main(["silver", str(copy_prepared), "--out", str(copy_prepared.parent)]) == 2


def test_an_empty_brain_mask_fails_that_scan_only(bronzed):
    manifest = read_manifest(bronzed)
    row = next(manifest.rows())
    brain = load_mask(manifest.path(row, "brain_mask"))
    from wmhkit.io.nifti import save_mask

    save_mask(brain.with_array(np.zeros(brain.shape, np.uint8)), manifest.path(row, "brain_mask"))
    result = silver_manifest(bronzed, bronzed.parent)
    assert [f.subject for f in result.failures] == ["toy1"]
    assert "brain mask is empty" in result.failures[0].error
    assert set(result.scans) == {"toy2"}
