"""prepare_scan / prepare_manifest / ``wmhkit prepare`` on tiny crafted scans."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from wmhkit.cli import main
from wmhkit.errors import GeometryError, MaskError, OutputError
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.io.provenance import sha256_file
from wmhkit.preprocess.geometry import load_native_geometry, to_native
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest, prepare_scan

FAST = PrepareOptions(n4=False, qc_png=False, crop_margin_mm=2.0)
SHAPE = (18, 20, 9)


def _world_image(image: Image) -> dict[tuple[float, ...], float]:
    """Voxel values keyed by rounded world coordinates (storage order does not matter)."""
    index = np.indices(image.shape).reshape(3, -1)
    world = (image.affine @ np.vstack([index, np.ones(index.shape[1])]))[:3].T.round(3)
    return {tuple(w): float(v) for w, v in zip(world, image.array.reshape(-1))}


@pytest.mark.parametrize("orientation", ["RAS", "LAS", "LPS", "oblique20"])
def test_prepared_scan_maps_back_to_the_native_grid(tmp_path, write_scan, affines, orientation):
    files = write_scan(tmp_path / "in", affines[orientation], SHAPE)
    result = prepare_scan(
        files["flair"], tmp_path / "out", brain_mask=files["brain_mask"], labels={"gold": files["gold"]},
        options=PrepareOptions(qc_png=False, crop_margin_mm=2.0),
    )
    geometry = load_native_geometry(result.outputs["flair"])
    native_gold = load_mask(files["gold"], allowed_labels=(0, 1, 2))
    prepared_gold = load_mask(result.outputs["gold"], allowed_labels=(0, 1, 2))
    assert sorted(np.unique(prepared_gold.array).tolist()) == [0, 1, 2]  # label 2 kept
    back = to_native(prepared_gold, geometry)
    assert back.array.dtype == np.uint8
    assert np.array_equal(back.array, native_gold.array)
    assert np.array_equal(back.affine, native_gold.affine)
    flair = load_image(result.outputs["flair"])
    brain = load_mask(result.outputs["brain_mask"]).array > 0
    assert flair.shape == prepared_gold.shape and 0.0 <= flair.array.min()
    assert np.percentile(flair.array[brain], 98) == pytest.approx(1.0, abs=1e-5)  # 98th percentile -> 1, unclipped
    assert result.brain_mask_source == "given"


def test_same_anatomy_stored_two_ways_gives_the_same_world_image(tmp_path, write_scan, affines):
    ras = write_scan(tmp_path / "ras", affines["RAS"], SHAPE)
    # the same voxels and world positions, stored left-right and front-back flipped (LPS order)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [SHAPE[0] - 1, SHAPE[1] - 1, 0]
    lps_affine = affines["RAS"] @ flip
    lps_folder = tmp_path / "lps"
    lps_folder.mkdir()
    for role in ("flair", "brain_mask", "gold"):
        image = load_image(ras[role]) if role == "flair" else load_mask(ras[role], allowed_labels=(0, 1, 2))
        flipped = Image(image.array[::-1, ::-1, :].copy(), lps_affine)
        (save_image if role == "flair" else save_mask)(flipped, lps_folder / ras[role].name)
    outputs = {}
    for name, folder in (("ras", tmp_path / "ras"), ("lps", lps_folder)):
        outputs[name] = prepare_scan(
            folder / "flair.nii.gz", tmp_path / f"out_{name}", brain_mask=folder / "brain.nii.gz",
            labels={"gold": folder / "gold.nii.gz"}, options=FAST,
        ).outputs
    for role in ("flair", "gold"):
        a, b = (load_image(outputs[name][role]) for name in ("ras", "lps"))
        assert a.shape == b.shape
        assert np.allclose(a.affine, b.affine, atol=1e-6)
        assert _world_image(a) == _world_image(b)


def test_one_slice_image_is_accepted(tmp_path, write_scan, affines):
    files = write_scan(tmp_path / "in", affines["LPS"], (16, 14, 1), gold=False)
    result = prepare_scan(files["flair"], tmp_path / "out", brain_mask=files["brain_mask"],
                          options=PrepareOptions(qc_png=False))
    prepared = load_image(result.outputs["flair"])
    assert prepared.shape[2] == 1
    back = to_native(load_mask(result.outputs["brain_mask"]), result.geometry)
    assert np.array_equal(back.array, load_mask(files["brain_mask"]).array)


def test_gold_on_another_grid_raises_naming_the_file(tmp_path, write_scan, affines):
    files = write_scan(tmp_path / "in", affines["RAS"], SHAPE)
    shifted = tmp_path / "in" / "gold_shifted.nii.gz"
    save_mask(Image(np.zeros((18, 20, 10), np.uint8), affines["RAS"]), shifted)
    with pytest.raises(GeometryError, match=r"gold_shifted.nii.gz: grid shape \(18, 20, 10\) differs from the reference image.s \(18, 20, 9\)"):
        prepare_scan(files["flair"], tmp_path / "out", brain_mask=files["brain_mask"],
                     labels={"gold": shifted}, options=FAST)
    assert not (tmp_path / "out").exists()  # nothing written for a failed scan


def test_empty_given_brain_mask_raises(tmp_path, write_scan, affines):
    files = write_scan(tmp_path / "in", affines["RAS"], SHAPE)
    empty = save_mask(Image(np.zeros(SHAPE, np.uint8), affines["RAS"]), tmp_path / "in" / "empty.nii.gz")
    with pytest.raises(MaskError, match="empty.nii.gz: the brain mask is empty"):
        prepare_scan(files["flair"], tmp_path / "out", brain_mask=empty, options=FAST)


def test_thick_slices_are_flagged_anisotropic(tmp_path, write_scan):
    files = write_scan(tmp_path / "in", np.diag([0.9, 0.9, 5.0, 1.0]), SHAPE, gold=False)
    result = prepare_scan(files["flair"], tmp_path / "out", brain_mask=files["brain_mask"], options=FAST)
    sidecar = json.loads((tmp_path / "out" / "flair.json").read_text())
    assert result.anisotropic and sidecar["anisotropic"] is True
    assert sidecar["spacing_mm"] == pytest.approx([0.9, 0.9, 5.0])
    iso = write_scan(tmp_path / "iso", np.diag([1.0, 1.0, 1.2, 1.0]), SHAPE, gold=False)
    assert not prepare_scan(iso["flair"], tmp_path / "out_iso", brain_mask=iso["brain_mask"], options=FAST).anisotropic


def _cohort(tmp_path, write_scan, write_manifest_tsv, affines):
    data = tmp_path / "data"
    rows = []
    for index, orientation in enumerate(("RAS", "LPS", "oblique20"), start=1):
        write_scan(data / f"sub-{index}", affines[orientation], SHAPE, seed=index)
        rows.append({
            "subject": f"sub-{index}", "dataset": "siteB" if index == 3 else "siteA",
            "flair": f"sub-{index}/flair.nii.gz", "brain_mask": f"sub-{index}/brain.nii.gz",
            "gold": f"sub-{index}/gold.nii.gz", "age": str(60 + index),
            "fat_suppressed": "1" if index == 2 else "0",
        })
    return write_manifest_tsv(data / "manifest.tsv", rows)


def test_manifest_run_writes_a_manifest_of_prepared_files(tmp_path, write_scan, write_manifest_tsv, affines):
    manifest = _cohort(tmp_path, write_scan, write_manifest_tsv, affines)
    hashes = {p: sha256_file(p) for p in manifest.parent.rglob("*.nii.gz")}
    options = PrepareOptions(n4=False, qc_png=False, dataset_normalisation={"siteB": "minmax"})
    result = prepare_manifest(manifest, tmp_path / "prepared", options=options)
    assert result.failures == []
    assert {p: sha256_file(p) for p in manifest.parent.rglob("*.nii.gz")} == hashes  # inputs untouched
    prepared = read_manifest(result.manifest)
    table = prepared.table
    assert table["subject"].tolist() == ["sub-1", "sub-2", "sub-3"]
    assert table["age"].tolist() == ["61", "62", "63"]
    assert table["flair"].tolist() == [f"sub-{i}/flair.nii.gz" for i in (1, 2, 3)]
    assert table["native_flair"].tolist() == [f"../data/sub-{i}/flair.nii.gz" for i in (1, 2, 3)]
    row = next(prepared.rows())
    assert load_image(prepared.path(row, "native_flair")).shape == SHAPE
    sidecars = [json.loads((tmp_path / "prepared" / f"sub-{i}" / "flair.json").read_text()) for i in (1, 2, 3)]
    # sub-2 by its fat_suppressed cell, sub-3 by the siteB option
    assert [s["normalisation"]["method"] for s in sidecars] == ["percentile", "minmax", "minmax"]
    assert sidecars[0]["inputs"]["flair"]["sha256"] == hashes[manifest.parent / "sub-1" / "flair.nii.gz"]
    assert (tmp_path / "prepared" / "failures.tsv").read_text() == "subject\tsession\terror\n"


def test_one_corrupt_scan_does_not_stop_the_others(tmp_path, write_scan, write_manifest_tsv, affines):
    manifest = _cohort(tmp_path, write_scan, write_manifest_tsv, affines)
    corrupt = manifest.parent / "sub-2" / "flair.nii.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated gzip
    out = tmp_path / "prepared"
    code = main(["prepare", str(manifest), "--out", str(out), "--no-n4", "--no-qc-png"])
    assert code == 1
    failures = pd.read_csv(out / "failures.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert failures["subject"].tolist() == ["sub-2"]
    assert "flair.nii.gz" in failures["error"][0]
    assert "Traceback" in (out / "crashes" / "sub-2.txt").read_text()
    assert read_manifest(out / "manifest.tsv").table["subject"].tolist() == ["sub-1", "sub-3"]
    assert (out / "sub-3" / "flair.nii.gz").is_file()


def test_output_folder_must_differ_from_the_input_folder(tmp_path, write_scan, write_manifest_tsv, affines):
    manifest = _cohort(tmp_path, write_scan, write_manifest_tsv, affines)
    with pytest.raises(OutputError, match="input manifest's folder"):
        prepare_manifest(manifest, manifest.parent, options=FAST)
    assert main(["prepare", str(manifest), "--out", str(manifest.parent)]) == 2


def test_unknown_normalisation_cell_fails_that_scan_only(tmp_path, write_scan, write_manifest_tsv, affines):
    manifest = _cohort(tmp_path, write_scan, write_manifest_tsv, affines)
    table = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    table["normalisation"] = ["", "zscore", "minmax"]
    table.to_csv(manifest, sep="\t", index=False)
    result = prepare_manifest(manifest, tmp_path / "prepared", options=FAST)
    assert [(f.subject, "row 2" in f.error and "zscore" in f.error) for f in result.failures] == [("sub-2", True)]
    sidecar = json.loads((tmp_path / "prepared" / "sub-3" / "flair.json").read_text())
    assert sidecar["normalisation"]["method"] == "minmax"
