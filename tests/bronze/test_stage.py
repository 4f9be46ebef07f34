"""The bronze stage over a prepared manifest: native-space masks, manifest columns, failure isolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wmhkit.bronze.lpa import LpaParameters
from wmhkit.bronze.methods import DEFAULT_METHODS
from wmhkit.bronze.stage import BronzeOptions, bronze_manifest
from wmhkit.cli import main
from wmhkit.errors import OutputError
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask


def test_bronze_writes_native_masks_with_the_input_affine(copy_prepared):
    work = copy_prepared.parent.parent
    result = bronze_manifest(copy_prepared, work, options=BronzeOptions(methods=("outlier", "t1hypo")))
    assert result.failures == []
    manifest = read_manifest(result.manifest)
    assert {"bronze_outlier", "bronze_t1hypo"} <= set(manifest.table.columns)
    for row in manifest.rows():
        native = load_image(manifest.root / row["native_flair"])
        for column in ("bronze_outlier", "bronze_t1hypo"):
            mask = load_mask(manifest.path(row, column))
            assert mask.shape == native.shape
            assert np.array_equal(mask.affine, native.affine)
            assert (manifest.path(row, column).parent / f"{column}.json").is_file()
    # the toy lesions are found in native space (LPS storage)
    gold = load_mask(work.parent / "raw" / "toy1" / "gold.nii.gz").array.astype(bool)
    found = load_mask(work / "toy1" / "bronze_outlier.nii.gz").array.astype(bool)
    assert (found & gold).sum() > 0.3 * gold.sum()


def test_missing_t1_for_a_t1_method_fails_that_scan_only(copy_prepared):
    table = pd.read_csv(copy_prepared, sep="\t", dtype=str, keep_default_na=False)
    table.loc[0, "t1"] = ""
    table.to_csv(copy_prepared, sep="\t", index=False)
    work = copy_prepared.parent.parent
    code = main(["bronze", str(copy_prepared), "--out", str(work), "--methods", "tophat,t1hypo"])
    assert code == 1
    failures = pd.read_csv(work / "failures.tsv", sep="\t", dtype=str)
    assert failures[["subject", "method"]].values.tolist() == [["toy1", "t1hypo"]]
    assert "needs a T1" in failures.loc[0, "error"]
    manifest = read_manifest(work / "manifest.tsv").table.set_index("subject")
    assert manifest.loc["toy1", "bronze_t1hypo"] == "" and manifest.loc["toy1", "bronze_tophat"] != ""
    assert manifest.loc["toy2", "bronze_t1hypo"] != ""
    assert (work / "crashes" / "toy1.txt").is_file()


def test_default_methods_are_the_four_that_help_the_consensus(copy_prepared):
    result = bronze_manifest(copy_prepared, copy_prepared.parent)
    assert not result.failures
    manifest = read_manifest(result.manifest)
    assert not {"bronze_t1hypo"} & set(manifest.table.columns)
    for scan in ("toy1", "toy2"):  # toy2 has a T1, toy1 has none: the same three methods run
        assert set(result.scans[scan].outputs) == set(DEFAULT_METHODS) == {"outlier", "growth", "tophat", "lpa"}


def test_output_folder_elsewhere_gets_a_manifest_that_reaches_the_prepared_data(copy_prepared, tmp_path):
    result = bronze_manifest(copy_prepared, tmp_path / "elsewhere", options=BronzeOptions(methods=("outlier",)))
    manifest = read_manifest(result.manifest)  # checks that every path cell names an existing file
    assert manifest.table["flair"].str.startswith("../").all()
    assert manifest.path(0, "flair").resolve() == read_manifest(copy_prepared).path(0, "flair").resolve()


def test_empty_brain_mask_fails_that_scan_with_a_clear_error(copy_prepared):
    from wmhkit.io.nifti import save_mask

    brain_path = copy_prepared.parent / "toy2" / "brain_mask.nii.gz"
    brain = load_mask(brain_path)
    save_mask(brain.with_array(np.zeros(brain.shape, np.uint8)), brain_path)
    result = bronze_manifest(copy_prepared, copy_prepared.parent, options=BronzeOptions(methods=("outlier",)))
    assert [(f.subject, f.method) for f in result.failures] == [("toy2", "all")]
    assert "brain mask is empty" in result.failures[0].error
    assert "outlier" in result.scans["toy1"].outputs


def test_external_mask_column_is_imported(copy_prepared):
    from wmhkit.io.nifti import save_mask

    raw = copy_prepared.parent.parent.parent / "raw"
    gold = load_mask(raw / "toy1" / "gold.nii.gz")
    save_mask(gold.with_array(gold.array * 255), raw / "toy1" / "ubo_wmh.nii.gz")
    table = pd.read_csv(copy_prepared, sep="\t", dtype=str, keep_default_na=False)
    table["external_ubo"] = ["../../raw/toy1/ubo_wmh.nii.gz", ""]
    table.to_csv(copy_prepared, sep="\t", index=False)
    result = bronze_manifest(copy_prepared, copy_prepared.parent, options=BronzeOptions(methods=("tophat",)))
    assert result.failures == []
    imported = load_mask(result.scans["toy1"].outputs["ubo"])
    assert np.array_equal(imported.array, gold.array) and np.array_equal(imported.affine, gold.affine)


def test_a_raw_manifest_is_prepared_first(tmp_path, toy_module):
    raw = toy_module.write_toy_cohort(tmp_path / "raw", n_scans=1)
    result = bronze_manifest(raw, tmp_path / "out", options=BronzeOptions(methods=("tophat",)))
    assert result.failures == []
    assert (tmp_path / "out" / "prepared" / "manifest.tsv").is_file()
    mask = load_mask(result.scans["toy1"].outputs["tophat"])
    assert np.array_equal(mask.affine, load_image(tmp_path / "raw" / "toy1" / "flair.nii.gz").affine)


def test_raw_manifest_folder_is_not_an_output_folder(tmp_path, toy_module):
    raw = toy_module.write_toy_cohort(tmp_path / "raw", n_scans=1)
    with pytest.raises(OutputError, match="raw manifest's folder"):
        bronze_manifest(raw, raw.parent)


def test_lpa_writes_its_probability_map_beside_its_mask_and_not_as_a_rater(copy_prepared):
    work = copy_prepared.parent.parent
    result = bronze_manifest(copy_prepared, work, options=BronzeOptions(methods=("lpa",)))
    assert result.failures == []
    manifest = read_manifest(result.manifest)
    assert [c for c in manifest.table.columns if c.startswith("bronze_")] == ["bronze_lpa"]
    row = next(manifest.rows())
    mask = load_mask(manifest.path(row, "bronze_lpa"))
    probability = load_image(manifest.path(row, "bronze_lpa").parent / "bronze_lpa_prob.nii.gz")
    assert probability.shape == mask.shape and np.array_equal(probability.affine, mask.affine)
    assert 0.0 <= probability.array.min() and probability.array.max() <= 1.0
    # the mask is the probability above the threshold, trimmed by the edge and size filters
    assert not (mask.array.astype(bool) & (probability.array <= LpaParameters().threshold)).any()
    sidecar = pd.read_json(manifest.path(row, "bronze_lpa").parent / "bronze_lpa.json", typ="series")
    assert sidecar["probability"] == "bronze_lpa_prob.nii.gz"
