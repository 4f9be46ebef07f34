"""``wmhkit predict`` end to end on crafted scans: geometry, dtypes, names, sidecars, CSV, failures, reruns."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from wmhkit.cli import main
from wmhkit.errors import InputError, OutputError
from wmhkit.infer.predict import CSV_COLUMNS, PredictSettings, predict_scans, scan_inputs
from wmhkit.io.nifti import load_image
from wmhkit.stats.tables import read_table

WriteScan = Callable[..., tuple[Path, Path]]


def _manifest(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "manifest.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def _scan_rows(folder: Path, write_scan: WriteScan, storages: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for subject, storage in storages.items():
        flair, brain = write_scan(folder / subject, subject, storage)
        rows.append({"subject": subject, "flair": str(flair.relative_to(folder)),
                     "brain_mask": str(brain.relative_to(folder))})
    return rows


def test_outputs_land_on_the_exact_input_grid(tiny_model: Path, write_scan: WriteScan, tmp_path: Path) -> None:
    data = tmp_path / "data"
    storages = {"sub-ras": "RAS", "sub-lps": "LPS", "sub-obl": "oblique"}
    manifest = _manifest(data, _scan_rows(data, write_scan, storages))
    out = tmp_path / "out"
    result = predict_scans(tiny_model, [manifest], out)
    assert result.failures == []
    for subject in storages:
        native = load_image(data / subject / f"{subject}.nii.gz")
        wmh = nib.load(out / f"{subject}_wmh.nii.gz")
        prob = nib.load(out / f"{subject}_wmhprob.nii.gz")
        for output, dtype in ((wmh, np.uint8), (prob, np.float32)):
            assert output.shape == native.shape
            assert output.get_data_dtype() == dtype
            np.testing.assert_array_equal(output.affine, native.affine)
        assert set(np.unique(np.asarray(wmh.dataobj))) <= {0, 1}
        brain = np.asarray(nib.load(data / subject / f"{subject}_brainmask.nii.gz").dataobj).astype(bool)
        assert not np.asarray(prob.dataobj)[~brain].any()  # nothing outside the brain
        np.testing.assert_array_equal(np.asarray(wmh.dataobj), np.asarray(prob.dataobj) >= 0.5)
    # The same anatomy stored RAS and LPS is the same prepared scan: same world-space mask and volumes.
    ras = np.asarray(nib.load(out / "sub-ras_wmh.nii.gz").dataobj)
    lps = np.asarray(nib.load(out / "sub-lps_wmh.nii.gz").dataobj)
    np.testing.assert_array_equal(ras, lps[::-1, ::-1])
    volumes = read_table(result.volumes, text_columns=("subject",))
    assert tuple(volumes.columns) == CSV_COLUMNS
    assert volumes["subject"].tolist() == sorted(storages)
    by_subject = volumes.set_index("subject")
    for column in ("wmh_ml", "icv_ml", "lesion_count", "ventricle_ml"):
        assert by_subject.loc["sub-ras", column] == by_subject.loc["sub-lps", column]
    voxel_ml = 5.0**3 / 1000
    assert by_subject.loc["sub-ras", "wmh_ml"] == pytest.approx(ras.sum() * voxel_ml)
    assert by_subject.loc["sub-ras", "icv_ml"] == pytest.approx(brain.sum() * voxel_ml)
    assert by_subject.loc["sub-ras", "ventricle_ml"] == pytest.approx(6 * 8 * 4 * voxel_ml)
    row = by_subject.loc["sub-ras"]
    assert row["periventricular_ml"] + row["deep_ml"] == pytest.approx(row["wmh_ml"])


def test_sidecar_records_inputs_model_parameters_versions_device(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    manifest = _manifest(data, _scan_rows(data, write_scan, {"sub-01": "RAS"}))
    predict_scans(tiny_model, [manifest], tmp_path / "out", settings=PredictSettings(threshold=0.3, fusion="max"))
    record = json.loads((tmp_path / "out" / "sub-01_wmh.json").read_text())
    assert record["step"] == "predict" and record["output"] == "sub-01_wmh.nii.gz"
    assert set(record["inputs"]) == {"flair", "brain_mask", "model"}
    assert len(record["inputs"]["flair"]["sha256"]) == 64
    assert record["parameters"]["threshold"] == 0.3 and record["parameters"]["fusion"] == "max"
    assert record["parameters"]["planes"] == ["axial", "sagittal", "coronal"]
    assert record["model"]["kind"] == "segmentation-2.5d" and len(record["model"]["hash"]) == 64
    assert "torch" in record["versions"] and record["device"]["type"] == "cpu"
    assert record["volumes"]["subject"] == "sub-01"


def test_bfloat16_precision_is_recorded_and_close_to_float32(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    manifest = _manifest(data, _scan_rows(data, write_scan, {"sub-01": "RAS"}))
    predict_scans(tiny_model, [manifest], tmp_path / "f32")
    predict_scans(tiny_model, [manifest], tmp_path / "bf16", settings=PredictSettings(precision="bfloat16"))
    record = json.loads((tmp_path / "bf16" / "sub-01_wmh.json").read_text())
    assert record["parameters"]["precision"] == "bfloat16"
    f32 = nib.load(tmp_path / "f32" / "sub-01_wmhprob.nii.gz").get_fdata()
    bf16 = nib.load(tmp_path / "bf16" / "sub-01_wmhprob.nii.gz").get_fdata()
    assert 0 < np.abs(f32 - bf16).max() < 2e-2  # another arithmetic, close to float32
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        predict_scans(tiny_model, [manifest], tmp_path / "bad", settings=PredictSettings(precision="float16"))


def test_reruns_are_byte_identical_and_skip_completed_scans(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    manifest = _manifest(data, _scan_rows(data, write_scan, {"b": "RAS", "a": "LPS"}))
    first = predict_scans(tiny_model, [manifest], tmp_path / "one")
    second = predict_scans(tiny_model, [manifest], tmp_path / "two")
    for name in ("a_wmh.nii.gz", "a_wmhprob.nii.gz", "b_wmh.nii.gz", "volumes.csv", "a_wmh.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    mask = first.outputs["a"]["wmh"]
    os.utime(mask, (1, 1))
    predict_scans(tiny_model, [manifest], tmp_path / "one")
    assert mask.stat().st_mtime == 1  # up to date: not rewritten
    predict_scans(tiny_model, [manifest], tmp_path / "one", settings=PredictSettings(threshold=0.4))
    assert mask.stat().st_mtime != 1  # another threshold: recomputed
    assert second.volumes.read_text().splitlines()[1].startswith("a,")


def test_a_finished_cohort_rerun_with_workers_starts_no_cluster(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flairs = [write_scan(tmp_path / "data", name)[0] for name in ("a", "b")]
    out = tmp_path / "out"
    first = predict_scans(tiny_model, flairs, out)
    caplog.clear()
    with caplog.at_level("INFO"):
        again = predict_scans(tiny_model, flairs, out, workers=2)
    assert "predict: 2 of 2 scan(s) up to date, not recomputed" in caplog.text
    assert "0 scan(s) to compute, so running in this process" in caplog.text
    assert "Dask" not in caplog.text and "scans/hour" not in caplog.text
    assert again.outputs == first.outputs and again.volumes.read_bytes() == first.volumes.read_bytes()


def test_one_bad_scan_does_not_stop_the_others(tiny_model: Path, write_scan: WriteScan, tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = _scan_rows(data, write_scan, {"good": "RAS"})
    (data / "bad.nii.gz").write_bytes(b"not a nifti at all")
    rows.append({"subject": "bad", "flair": "bad.nii.gz", "brain_mask": ""})
    manifest = _manifest(data, rows)
    out = tmp_path / "out"
    code = main(["predict", "--model", str(tiny_model), str(manifest), "--out", str(out)])
    assert code == 1
    failures = pd.read_csv(out / "failures.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert failures["subject"].tolist() == ["bad"]
    assert (out / "crashes" / "bad.txt").is_file()
    assert (out / "good_wmh.nii.gz").is_file() and not (out / "bad_wmh.nii.gz").exists()
    assert read_table(out / "volumes.csv", text_columns=("subject",))["subject"].tolist() == ["good"]


def test_nifti_inputs_are_named_by_stem_and_a_brain_mask_is_computed(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path
) -> None:
    flair, _ = write_scan(tmp_path / "data", "sub-07_FLAIR")
    out = tmp_path / "out"
    assert main(["predict", "--model", str(tiny_model), str(flair), "--out", str(out), "--threshold", "1.0"]) == 0
    volumes = read_table(out / "volumes.csv", text_columns=("subject",))
    assert volumes["subject"].tolist() == ["sub-07_FLAIR"] and volumes["session"].isna().all()
    assert volumes["wmh_ml"].tolist() == [0.0]  # a sigmoid never reaches 1: empty mask, volume 0 not NaN
    assert volumes["wmh_pct_icv"].tolist() == [0.0] and volumes["lesion_count"].tolist() == [0]
    assert not np.asarray(nib.load(out / "sub-07_FLAIR_wmh.nii.gz").dataobj).any()


def test_files_sharing_a_name_are_named_after_their_folders(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    flairs = [write_scan(data / subject / session / "anat", "FLAIR")[0]
              for subject, session in (("sub-01", "ses-1"), ("sub-01", "ses-2"), ("sub-02", "ses-1"))]
    other = write_scan(data / "sub-03" / "ses-1" / "anat", "sub-03_FLAIR")[0]
    with caplog.at_level("INFO", logger="wmhkit.infer.predict"):
        names = [scan.name for scan in scan_inputs([*flairs, other])]
    assert names == ["sub-01_ses-1_FLAIR", "sub-01_ses-2_FLAIR", "sub-02_ses-1_FLAIR", "sub-03_FLAIR"]
    assert f"{flairs[1]} -> sub-01_ses-2_FLAIR" in caplog.text
    out = tmp_path / "out"
    assert main(["predict", "--model", str(tiny_model), *map(str, flairs[1:]), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*_wmh.nii.gz")) == [
        "sub-01_ses-2_FLAIR_wmh.nii.gz", "sub-02_ses-1_FLAIR_wmh.nii.gz"]
    sites = [write_scan(data / site / "scan", "FLAIR")[0] for site in ("site-a", "site-b")]
    assert [scan.name for scan in scan_inputs(sites)] == ["site-a_FLAIR", "site-b_FLAIR"]


def test_one_slice_image(tiny_model: Path, write_scan: WriteScan, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flair, brain = write_scan(data / "thin", "thin", "RAS", shape=(28, 32, 1))
    mask = nib.load(brain)
    brain_array = np.zeros((28, 32, 1), np.uint8)
    brain_array[4:24, 4:28] = 1
    nib.save(nib.Nifti1Image(brain_array, mask.affine), brain)
    manifest = _manifest(data, [{"subject": "thin", "flair": "thin/thin.nii.gz", "brain_mask": "thin/thin_brainmask.nii.gz"}])
    result = predict_scans(tiny_model, [manifest], tmp_path / "out")
    assert result.failures == []
    assert nib.load(result.outputs["thin"]["wmh"]).shape == (28, 32, 1)


def test_manifest_sessions_name_outputs(tiny_model: Path, write_scan: WriteScan, tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = _scan_rows(data, write_scan, {"s1": "RAS"})
    rows[0]["session"] = "m12"
    result = predict_scans(tiny_model, [_manifest(data, rows)], tmp_path / "out")
    assert set(result.outputs) == {"s1_m12"} and (tmp_path / "out" / "s1_m12_wmh.nii.gz").is_file()
    volumes = read_table(result.volumes, text_columns=("subject", "session"))
    assert volumes[["subject", "session"]].values.tolist() == [["s1", "m12"]]


def test_invalid_runs_are_refused_before_any_work(tiny_model: Path, write_scan: WriteScan, tmp_path: Path) -> None:
    flair, _ = write_scan(tmp_path / "data", "scan")
    with pytest.raises(OutputError, match="holds input files"):
        predict_scans(tiny_model, [flair], tmp_path / "data")
    with pytest.raises(InputError, match="clashes"):
        scan_inputs([flair, flair])
    with pytest.raises(InputError, match="not a NIfTI"):
        scan_inputs([tmp_path / "scan.mgz"])
    with pytest.raises(InputError, match="threshold"):
        predict_scans(tiny_model, [flair], tmp_path / "out", settings=PredictSettings(threshold=1.5))
    assert main(["predict", "--model", str(tmp_path / "missing"), str(flair), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "out").exists()


def test_volume_models_write_the_same_outputs_plus_attention(write_scan: WriteScan, tmp_path: Path) -> None:
    import torch

    from wmhkit.models.folder import write_model_folder
    from wmhkit.nn.gp_unet import GPUNet

    kind = "volume"
    torch.manual_seed(0)
    network = GPUNet(base_channels=4, levels=2)
    record = {"kind": kind, "network": network.network_spec(), "threshold": 0.5,
              "prepare": {"n4": False, "qc_png": False}, "box": {"shape": [16, 16, 16], "spacing_mm": None},
              "target": {"labels": "volume"}}
    model = tmp_path / "gp"
    write_model_folder(model, record, {"model": network.state_dict()}, {"seed": 0})
    data = tmp_path / "data"
    result = predict_scans(model, [_manifest(data, _scan_rows(data, write_scan, {"s": "LPS"}))], tmp_path / "out")
    assert result.failures == []
    assert set(result.outputs["s"]) == {"wmh", "wmh_prob", "attention"}
    native = load_image(data / "s" / "s.nii.gz")
    for path in result.outputs["s"].values():
        np.testing.assert_array_equal(nib.load(path).affine, native.affine)
        assert nib.load(path).shape == native.shape
    volumes = read_table(result.volumes, text_columns=("subject",))
    assert volumes.loc[0, "model_volume_ml"] >= 0
    wmh = np.asarray(nib.load(result.outputs["s"]["wmh"]).dataobj)
    assert volumes.loc[0, "wmh_ml"] == pytest.approx(wmh.sum() * 0.125)


def test_brain_extractor_option_overrides_the_model_and_reaches_the_sidecar(
    tiny_model: Path, write_scan: WriteScan, tmp_path: Path
) -> None:
    flair, _ = write_scan(tmp_path / "data", "sub-09")
    out = tmp_path / "out"
    assert main(["predict", "--model", str(tiny_model), str(flair), "--out", str(out),
                 "--brain-extractor", "template"]) == 0
    record = json.loads((out / "sub-09_wmh.json").read_text())
    assert record["parameters"]["prepare"]["brain_extractor"] == "template"  # the model says hdbet (default)
    assert record["brain_mask_source"] == "nonzero"  # crafted scans have a constant background: already stripped
    assert main(["predict", "--model", str(tiny_model), str(flair), "--out", str(tmp_path / "x"),
                 "--brain-extractor", "bet2"]) != 0
