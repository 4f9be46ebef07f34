"""Scoring files, folders and manifests: gold dtypes, label 2, grids, CSV output, CLI."""

import json
import logging
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from wmhkit.cli import main
from wmhkit.errors import GeometryError, InputError, MaskError
from wmhkit.io.image import Image
from wmhkit.metrics.evaluate import evaluate, evaluate_cohort, resample_nearest
from wmhkit.metrics.segmentation import METRIC_COLUMNS
from wmhkit.stats.tables import write_csv

AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])


def _save(path, array, affine=AFFINE):
    image = nib.Nifti1Image(np.asarray(array), affine, dtype=np.asarray(array).dtype)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, path)
    return path


def _gold_labels():
    gold = np.zeros((12, 12, 4), np.uint8)
    gold[2:6, 2:6, 1:3] = 1  # 32 WMH voxels
    gold[8:10, 8:10, 1] = 1  # 4 WMH voxels, second lesion
    gold[2:6, 8:11, 2] = 2  # 12 voxels of other pathology
    return gold


def _prediction():
    pred = np.zeros((12, 12, 4), np.float32)
    pred[3:7, 2:6, 1:3] = 0.8  # 24 of the 32 first-lesion voxels + 8 false positives
    pred[2:6, 8:11, 2] = 1.0  # covers the label-2 region: must not count
    return pred


def test_label_2_is_removed_from_the_prediction_and_ignored_in_the_gold():
    metrics = evaluate(Image(_prediction(), AFFINE), Image(_gold_labels(), AFFINE))
    tp, fp, fn = 24, 8, 8 + 4
    assert metrics["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    assert metrics["vol_pred_ml"] == pytest.approx(32 * 3 / 1000, abs=1e-12)
    assert metrics["vol_gold_ml"] == pytest.approx(36 * 3 / 1000, abs=1e-12)
    assert metrics["lesion_recall"] == 0.5 and metrics["lesion_precision"] == 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_every_gold_dtype_gives_the_same_metrics(tmp_path, dtype):
    pred = _save(tmp_path / "pred.nii.gz", _prediction())
    reference = evaluate(pred, _save(tmp_path / "gold_u8.nii.gz", _gold_labels()))
    metrics = evaluate(pred, _save(tmp_path / "gold.nii.gz", _gold_labels().astype(dtype)))
    assert metrics == pytest.approx(reference, nan_ok=True)
    # The challenge script's BinaryThreshold(0.5, 1.5) would call all 576 voxels WMH on integer golds.
    assert metrics["vol_gold_ml"] == pytest.approx(36 * 3 / 1000)


def test_integer_prediction_values_above_1000_are_negative(tmp_path):
    pred = np.zeros((12, 12, 4), np.int16)
    pred[2:6, 2:6, 1:3] = 1001
    metrics = evaluate(_save(tmp_path / "pred.nii.gz", pred), _save(tmp_path / "gold.nii.gz", _gold_labels()))
    assert metrics["vol_pred_ml"] == 0.0 and metrics["dice"] == 0.0
    pred[2:6, 2:6, 1:3] = 1000
    metrics = evaluate(_save(tmp_path / "pred.nii.gz", pred), _save(tmp_path / "gold.nii.gz", _gold_labels()))
    assert metrics["vol_pred_ml"] == pytest.approx(0.096)


def test_gold_with_unexpected_labels_is_refused(tmp_path):
    gold = _gold_labels()
    gold[0, 0, 0] = 3
    with pytest.raises(MaskError, match="3"):
        evaluate(_save(tmp_path / "pred.nii.gz", _prediction()), _save(tmp_path / "gold.nii.gz", gold))


def test_prediction_off_the_gold_grid_needs_resample():
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, 11.0
    pred = Image(_prediction()[::-1].copy(), AFFINE @ flip)  # same world content, stored mirrored
    gold = Image(_gold_labels(), AFFINE)
    with pytest.raises(GeometryError, match="resample"):
        evaluate(pred, gold)
    on_grid = evaluate(Image(_prediction(), AFFINE), gold)
    assert evaluate(pred, gold, resample=True) == pytest.approx(on_grid, nan_ok=True)


def test_resample_nearest_maps_through_world_coordinates():
    source = np.zeros((4, 4, 2), np.uint8)
    source[1, 2, 1] = 1
    shifted = AFFINE.copy()
    shifted[:3, 3] = [1.0, 0.0, 0.0]  # the source starts 1 mm further along x
    result = resample_nearest(Image(source, shifted), Image(np.zeros((6, 4, 2), np.uint8), AFFINE))
    assert result.array.dtype == np.uint8
    assert list(zip(*np.nonzero(result.array))) == [(2, 2, 1)]


def test_brain_mask_adds_icv_and_normalised_volume():
    brain = np.zeros((12, 12, 4), np.uint8)
    brain[:10, :10, :] = 1  # 400 voxels × 3 mm³ = 1.2 mL
    metrics = evaluate(Image(_prediction(), AFFINE), Image(_gold_labels(), AFFINE), brain_mask=Image(brain, AFFINE))
    assert metrics["icv_ml"] == pytest.approx(1.2)
    assert metrics["wmh_pct_icv"] == pytest.approx(0.096 / 1.2 * 100)
    with pytest.raises(MaskError, match="empty"):
        evaluate(Image(_prediction(), AFFINE), Image(_gold_labels(), AFFINE),
                 brain_mask=Image(np.zeros_like(brain), AFFINE))


def _cohort(tmp_path, names=("s02", "s01", "s03")):
    pred_dir, gold_dir = tmp_path / "pred", tmp_path / "gold"
    pred_dir.mkdir()
    gold_dir.mkdir()
    for shift, name in enumerate(names):
        _save(gold_dir / f"{name}.nii.gz", _gold_labels())
        _save(pred_dir / f"{name}.nii.gz", np.roll(_prediction(), shift, axis=0))
    return pred_dir, gold_dir


def test_folders_are_matched_by_file_name_and_sorted(tmp_path):
    pred_dir, gold_dir = _cohort(tmp_path)
    table = evaluate_cohort(pred_dir, gold_dir)
    assert table["subject"].tolist() == ["s01", "s02", "s03"]
    assert list(table.columns) == ["subject", "session", *METRIC_COLUMNS]
    expected = evaluate(pred_dir / "s01.nii.gz", gold_dir / "s01.nii.gz")
    assert table.iloc[0][list(METRIC_COLUMNS)].to_dict() == pytest.approx(expected, nan_ok=True)
    assert table["dice"].nunique() == 3


def test_unmatched_names_are_listed(tmp_path):
    pred_dir, gold_dir = _cohort(tmp_path)
    (pred_dir / "s02.nii.gz").rename(pred_dir / "s2.nii.gz")
    with pytest.raises(InputError, match="gold without prediction: s02.*prediction without gold: s2"):
        evaluate_cohort(pred_dir, gold_dir)


def _manifest(tmp_path, rows):
    lines = ["subject\tsession\tscanner\tstage\tflair\tgold\tpred"]
    lines += ["\t".join(row) for row in rows]
    path = tmp_path / "manifest.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_manifest_columns_pair_scans_and_carry_metadata(tmp_path):
    pred_dir, gold_dir = _cohort(tmp_path)
    _save(tmp_path / "flair.nii.gz", np.zeros((12, 12, 4), np.float32))
    manifest = _manifest(tmp_path, [
        ("s02", "", "=cmd()", "AD", "flair.nii.gz", "gold/s02.nii.gz", "pred/s02.nii.gz"),
        ("s01", "", "siemens", "CN", "flair.nii.gz", "gold/s01.nii.gz", "pred/s01.nii.gz"),
        ("s03", "", "ge", "MCI", "flair.nii.gz", "", "pred/s03.nii.gz"),  # no gold: not evaluated
    ])
    table = evaluate_cohort(manifest=manifest, columns=("pred", "gold"))
    assert table["subject"].tolist() == ["s01", "s02"]
    assert list(table.columns) == ["subject", "session", "scanner", "stage", *METRIC_COLUMNS]
    assert table["stage"].tolist() == ["CN", "AD"]
    # predictions from a folder, gold from the manifest column
    from_folder = evaluate_cohort(pred=pred_dir, manifest=manifest)
    pd.testing.assert_frame_equal(from_folder, table)


def test_manifest_row_with_gold_but_no_prediction_is_an_error(tmp_path):
    _cohort(tmp_path)
    _save(tmp_path / "flair.nii.gz", np.zeros((12, 12, 4), np.float32))
    manifest = _manifest(tmp_path, [("s01", "", "a", "CN", "flair.nii.gz", "gold/s01.nii.gz", "")])
    with pytest.raises(InputError, match="gold without prediction: s01"):
        evaluate_cohort(manifest=manifest)


def test_manifest_paths_may_be_absolute_or_lead_out_of_its_folder(tmp_path):
    """Read-only data elsewhere on disk: gold by absolute path, prediction via '..' (issue 20)."""
    (tmp_path / "data").mkdir()
    pred_dir, gold_dir = _cohort(tmp_path / "data")
    study = tmp_path / "study"
    study.mkdir()
    _save(study / "flair.nii.gz", np.zeros((12, 12, 4), np.float32))
    manifest = _manifest(study, [
        ("s01", "", "a", "CN", "flair.nii.gz", str(gold_dir / "s01.nii.gz"), "../data/pred/s01.nii.gz"),
    ])
    table = evaluate_cohort(manifest=manifest)
    expected = evaluate(pred_dir / "s01.nii.gz", gold_dir / "s01.nii.gz")
    assert table.iloc[0][list(METRIC_COLUMNS)].to_dict() == pytest.approx(expected, nan_ok=True)


def test_manifest_prediction_that_does_not_exist_is_named(tmp_path):
    _cohort(tmp_path)
    _save(tmp_path / "flair.nii.gz", np.zeros((12, 12, 4), np.float32))
    manifest = _manifest(tmp_path, [("s01", "", "a", "CN", "flair.nii.gz", "gold/s01.nii.gz", "../x.nii.gz")])
    with pytest.raises(InputError, match="x.nii.gz"):
        evaluate_cohort(manifest=manifest)


def test_csv_is_formula_safe_with_nan_as_empty(tmp_path, caplog):
    table = pd.DataFrame({"subject": ["s1", "s2"], "scanner": ["=HYPERLINK(\"x\")", "-3"],
                          "dice": [0.5, math.nan], "t": [-1.25, 2.0]})
    with caplog.at_level(logging.DEBUG, logger="wmhkit"):
        write_csv(table, tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text()
    assert text == 'subject,scanner,dice,t\ns1,"\'=HYPERLINK(""x"")",0.5,-1.25\ns2,-3,,2.0\n'
    assert "1 undefined" in caplog.text


def test_cli_evaluate_writes_csv_and_sidecar_byte_identically(tmp_path):
    pred_dir, gold_dir = _cohort(tmp_path)
    empty = np.zeros((12, 12, 4), np.float32)
    _save(pred_dir / "s04.nii.gz", empty)
    _save(gold_dir / "s04.nii.gz", np.zeros((12, 12, 4), np.uint8))
    out = tmp_path / "out" / "metrics.csv"
    assert main(["evaluate", "--pred", str(pred_dir), "--gold", str(gold_dir), "--out", str(out)]) == 0
    first = out.read_bytes()
    table = pd.read_csv(out, keep_default_na=False)
    assert table["subject"].tolist() == ["s01", "s02", "s03", "s04"]
    assert table.loc[3, "dice"] == "" and table.loc[3, "lesion_f1"] == 1.0
    sidecar = json.loads((tmp_path / "out" / "metrics.csv.json").read_text())
    assert sidecar["step"] == "evaluate" and "s01/gold" in sidecar["inputs"]
    assert main(["evaluate", "--pred", str(pred_dir), "--gold", str(gold_dir), "--out", str(out)]) == 0
    assert out.read_bytes() == first


def test_cli_evaluate_reports_grid_mismatch_as_one_line(tmp_path, capsys):
    gold = _save(tmp_path / "gold.nii.gz", _gold_labels())
    pred = _save(tmp_path / "pred.nii.gz", np.zeros((10, 12, 4), np.float32))
    assert main(["evaluate", "--pred", str(pred), "--gold", str(gold), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "--resample" in err and "Traceback" not in err
    assert not (tmp_path / "m.csv").exists()
