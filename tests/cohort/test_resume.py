"""Resumable runs: finished scans are skipped, stale and half-written ones recomputed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from wmhkit.bronze.stage import BronzeOptions, bronze_manifest
from wmhkit.infer.predict import PredictSettings, predict_scans
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest

FAST = PrepareOptions(n4=False, qc_png=False)


def _age(paths: list[Path]) -> None:
    for path in paths:
        os.utime(path, (1, 1))


def _untouched(paths: list[Path]) -> list[bool]:
    return [path.stat().st_mtime == 1 for path in paths]


def test_prepare_rerun_skips_finished_scans_and_recomputes_stale_or_partial_ones(tmp_path, write_cohort):
    manifest = write_cohort(tmp_path / "data", 3)
    out = tmp_path / "prepared"
    first = prepare_manifest(manifest, out, options=FAST)
    flairs = [first.scans[s].outputs["flair"] for s in ("sub-01", "sub-02", "sub-03")]
    manifest_bytes = first.manifest.read_bytes()
    original = flairs[2].read_bytes()
    _age(flairs)
    (out / "records" / "prepare" / "sub-02.json").unlink()  # killed after writing outputs, before the record
    flairs[2].write_bytes(original[:50])  # an output truncated behind wmhkit's back
    second = prepare_manifest(manifest, out, options=FAST)
    assert _untouched(flairs) == [True, False, False]
    assert flairs[2].read_bytes() == original  # recomputed, same bytes
    assert second.manifest.read_bytes() == manifest_bytes  # skipped scans keep their manifest row
    reused, made = second.scans["sub-01"], first.scans["sub-01"]  # rebuilt from the record
    assert reused.outputs == made.outputs and reused.geometry.to_dict() == made.geometry.to_dict()
    _age(flairs)
    prepare_manifest(manifest, out, options=dataclasses.replace(FAST, crop_margin_mm=6.0))
    assert _untouched(flairs) == [False, False, False]  # another parameter: everything recomputed


def test_predict_rerun_recomputes_a_scan_without_record_and_a_new_model(tmp_path, write_cohort, tiny_model):
    manifest = write_cohort(tmp_path / "data", 2)
    out = tmp_path / "out"
    first = predict_scans(tiny_model, [manifest], out)
    masks = [first.outputs[s]["wmh"] for s in ("sub-01", "sub-02")]
    volumes = first.volumes.read_bytes()
    _age(masks)
    (out / "records" / "predict" / "sub-02.json").unlink()
    second = predict_scans(tiny_model, [manifest], out)
    assert _untouched(masks) == [True, False]
    assert second.volumes.read_bytes() == volumes
    _age(masks)
    predict_scans(tiny_model, [manifest], out, settings=PredictSettings(pv_distance_mm=5.0))
    assert _untouched(masks) == [False, False]


def test_bronze_rerun_skips_finished_scans(copy_prepared):
    work = copy_prepared.parent
    options = BronzeOptions(methods=("tophat",))
    first = bronze_manifest(copy_prepared, work, options=options)
    masks = [first.scans[s].outputs["tophat"] for s in ("toy1", "toy2")]
    manifest_bytes = first.manifest.read_bytes()
    _age(masks)
    second = bronze_manifest(copy_prepared, work, options=options)
    assert _untouched(masks) == [True, True]
    assert second.manifest.read_bytes() == manifest_bytes and second.failures == []
    bronze_manifest(copy_prepared, work, options=dataclasses.replace(options, seed=1))
    assert _untouched(masks) == [False, False]


def test_predict_rerun_removes_the_scratch_folder_of_a_killed_run(tmp_path, write_cohort, tiny_model):
    manifest = write_cohort(tmp_path / "data", 1)
    out = tmp_path / "wmh"
    scratch = out / ".prepare-abc123"
    scratch.mkdir(parents=True)
    (scratch / "flair.nii.gz").write_bytes(b"prepared image of a killed run")
    predict_scans(tiny_model, [manifest], out)
    assert not scratch.exists()
    assert (out / "volumes.csv").exists()
