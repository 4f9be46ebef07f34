"""GP-Unet prediction: volume-matched segmentation, the attention-map identity, the twin, severity, native outputs,
``wmhkit predict`` with a Fazekas-grade model, and per-scan rows of GP-Unet and 2.5D models on a prepared manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from wmhkit.cohort.records import record_path
from wmhkit.errors import InputError
from wmhkit.infer.predict import CSV_COLUMNS, predict_manifest
from wmhkit.infer.volume import SCAN_COLUMNS, predict_scans, score_segmentation_scans, segmentation_scorer
from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.io.provenance import sidecar_path, validate_sidecar
from wmhkit.metrics.volume_eval import TISSUE_COLUMNS
from wmhkit.models.box import BoxSpec, box_scan
from wmhkit.models.folder import load_model
from wmhkit.models.predictors import segment_2_5d
from wmhkit.models.predict_gp_unet import (
    class_probabilities,
    load_volume_model,
    predict_gp_unet,
    predict_severity,
    predict_volume,
    predicted_class,
    run_box,
    volume_matched_segmentation,
)
from wmhkit.preprocess.pipeline import PrepareOptions
from wmhkit.stats.tables import read_table
from wmhkit.train.volume import Targets, VolumeLoss, build_model, evaluate_loss, export_volume_model
from wmhkit.train.volume_config import parse_volume_config

SHAPE = (20, 18, 10)
AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


def _scan(seed: int = 0, affine: np.ndarray = AFFINE) -> tuple[Image, Image]:
    """A prepared-like FLAIR (brain ellipsoid, bright blob) and its brain mask."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0).astype(float)
    brain = (((grid - (9.5, 8.5, 4.5)) / (8.0, 7.0, 4.0)) ** 2).sum(-1) <= 1
    lesion = np.linalg.norm(grid - (11.0, 9.0, 5.0), axis=-1) <= 2.0
    flair = np.where(brain, 0.5 + 0.05 * rng.standard_normal(SHAPE) + 0.4 * lesion, 0.0).astype(np.float32)
    return Image(flair, affine), Image(brain.astype(np.uint8), affine)


def _model_folder(folder: Path, labels: str = "volume", task: str | None = None, bias: float | None = None,
                  transform: str = "log1p", constant: bool = False) -> Path:
    """Export a random-weight GP-Unet model folder; ``constant`` zeroes the dense weights (output = bias)."""
    raw = {"labels": labels, "n_bins": 3, "box": {"shape": [8, 8, 4], "spacing_mm": None},
           "network": {"base_channels": 3}, "target_transform": transform}
    if task is not None:
        raw["task"] = task
    config = parse_volume_config(raw)
    model = build_model(config, seed=7)
    with torch.no_grad():
        if bias is not None:
            model.dense.bias.fill_(bias)
        if constant:
            model.dense.weight.zero_()
    targets = Targets({}, (1.0, 4.0), (0.5, 2.0, 9.0)) if labels == "volume_bins" else Targets({})
    prepare = PrepareOptions(n4=False, qc_png=False).to_dict()
    return export_volume_model(folder, model, config, targets, prepare=prepare, trained_on="test", provenance={})


def test_volume_matched_segmentation_has_the_volume_inside_the_brain() -> None:
    rng = np.random.default_rng(0)
    attention = Image(rng.standard_normal(SHAPE).astype(np.float32), AFFINE)  # 12 mm³ voxels
    _, brain = _scan()
    voxel_ml = attention.voxel_volume_ml
    for volume_ml in (0.0, -1.0, 0.05, 0.3331, 1.0):
        mask = volume_matched_segmentation(attention, brain, volume_ml)
        assert mask.array.dtype == np.uint8 and mask.same_grid(attention)
        assert abs(mask.array.sum() * voxel_ml - max(volume_ml, 0.0)) <= voxel_ml / 2 + 1e-12
        assert not (mask.array & (brain.array == 0)).any()
        chosen = attention.array[mask.array > 0]
        others = attention.array[(mask.array == 0) & (brain.array > 0)]
        if chosen.size and others.size:
            assert chosen.min() >= others.max()
    whole = volume_matched_segmentation(attention, brain, 1e6)
    assert np.array_equal(whole.array, brain.array)


def test_ties_are_broken_deterministically() -> None:
    attention = Image(np.zeros(SHAPE, np.float32), AFFINE)
    _, brain = _scan()
    first = volume_matched_segmentation(attention, brain, 0.12)
    assert int(first.array.sum()) == 10
    assert np.array_equal(first.array, volume_matched_segmentation(attention, brain, 0.12).array)


@pytest.mark.parametrize("transform", ["log1p", "none"])
def test_weak_prediction_matches_volume_and_the_attention_identity(tmp_path: Path, transform: str) -> None:
    model = load_volume_model(_model_folder(tmp_path / "m", bias=0.4, transform=transform))
    assert model.target_transform == transform
    flair, brain = _scan()
    volume_ml, attention, segmentation = predict_volume(model, flair, brain)
    assert attention.same_grid(flair) and segmentation.same_grid(flair) and attention.array.dtype == np.float32
    assert abs(segmentation.array.sum() * flair.voxel_volume_ml - volume_ml) <= flair.voxel_volume_ml / 2
    assert not (segmentation.array & (brain.array == 0)).any()
    box = box_scan(flair, brain, model.box)
    output, box_attention = run_box(model, box)
    # the network regresses log1p(mL) (or mL); the volume is decoded back to mL
    expected_ml = np.expm1(float(output[0])) if transform == "log1p" else float(output[0])
    assert volume_ml == pytest.approx(max(expected_ml, 0.0), rel=1e-6)
    # GAP then dense == mean of the attention map + bias, and the map is the dense weights times the last features
    bias = float(model.network.dense.bias.detach()[0])
    assert float(output[0]) == pytest.approx(float(box_attention[0].mean()) + bias, abs=1e-5)
    with torch.no_grad():
        features = model.network.features(torch.from_numpy(box.flair[None, None]))[0].numpy()
    weights = model.network.dense.weight.detach().numpy()[0]
    np.testing.assert_allclose(box_attention[0], np.tensordot(weights, features, axes=1), rtol=1e-5, atol=1e-6)


def test_volume_bins_model_predicts_the_expected_bin_volume(tmp_path: Path) -> None:
    model = load_volume_model(_model_folder(tmp_path / "m", labels="volume_bins", task="classification"))
    flair, brain = _scan(1)
    volume_ml, _, segmentation = predict_volume(model, flair, brain)
    output, _ = run_box(model, box_scan(flair, brain, model.box))
    probabilities = class_probabilities(output, "classification")
    assert volume_ml == pytest.approx(float(probabilities @ np.array([0.5, 2.0, 9.0])))
    assert abs(segmentation.array.sum() * flair.voxel_volume_ml - volume_ml) <= flair.voxel_volume_ml / 2


def test_box_normalises_1_99_with_clipping_or_keeps_the_prepared_scale() -> None:
    flair, brain = _scan(5)
    flair = flair.with_array(np.where(brain.array > 0, flair.array * 1.5, 0.0).astype(np.float32))  # bright tail > 1
    fitted = BoxSpec((8, 8, 4), (5.0, 5.0, 7.5), (1.0, 99.0))
    clipped = box_scan(flair, brain, fitted)
    inside = clipped.flair[clipped.brain]
    assert inside.min() == 0.0 and inside.max() == 1.0  # the paper's 1-99 % box normalisation, clipped
    assert np.mean(inside == 1.0) >= 0.01 and np.all(clipped.flair[~clipped.brain] == 0.0)
    kept = box_scan(flair, brain, BoxSpec((8, 8, 4), (5.0, 5.0, 7.5), None))
    assert kept.flair.max() > 1.0 and np.all(kept.flair[~kept.brain] == 0.0)
    # same resampling, no re-normalisation: the kept box is an affine image of the clipped one below its ceiling
    below = clipped.brain & (clipped.flair > 0.0) & (clipped.flair < 1.0)
    slope, intercept = np.polyfit(clipped.flair[below], kept.flair[below], 1)
    assert np.allclose(kept.flair[below], slope * clipped.flair[below] + intercept, atol=1e-4)
    record = BoxSpec((8, 8, 4), None, None).to_dict()
    assert record["percentiles"] is None and BoxSpec.from_dict(record).percentiles is None


def test_strong_twin_thresholds_its_probability_map(tmp_path: Path) -> None:
    model = load_volume_model(_model_folder(tmp_path / "m", labels="gold", bias=0.0))
    assert model.spec.kind == "segmentation-3d"
    flair, brain = _scan(2)
    volume_ml, probability, segmentation = predict_volume(model, flair, brain)
    assert 0.0 <= probability.array.min() and probability.array.max() <= 1.0
    expected = (probability.array >= 0.5) & (brain.array > 0)
    assert np.array_equal(segmentation.array.astype(bool), expected)
    assert volume_ml == pytest.approx(expected.sum() * flair.voxel_volume_ml)


def test_fazekas_model_predicts_grades_not_volumes(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m", labels="fazekas")
    flair, brain = _scan(3)
    with pytest.raises(InputError, match="Fazekas grades"):
        predict_volume(folder, flair, brain)
    severity = predict_severity(folder, flair, brain)
    assert len(severity.probabilities) == 4 and sum(severity.probabilities) == pytest.approx(1.0)
    output, _ = run_box(load_volume_model(folder), box_scan(flair, brain, load_volume_model(folder).box))
    assert severity.grade == int((output > 0).sum()) and severity.attention.same_grid(flair)


def test_one_entry_point_predicts_grades_for_fazekas_and_volumes_otherwise(tmp_path: Path) -> None:
    flair, brain = _scan(3)
    fazekas = predict_gp_unet(_model_folder(tmp_path / "f", labels="fazekas"), flair, brain)
    severity = predict_severity(tmp_path / "f", flair, brain)
    assert fazekas.weak and fazekas.volume_ml is None and fazekas.segmentation is None
    assert fazekas.grade == severity.grade and fazekas.probabilities == severity.probabilities
    np.testing.assert_array_equal(fazekas.voxel_map.array, severity.attention.array)
    volume = predict_gp_unet(_model_folder(tmp_path / "v", bias=0.4), flair, brain)
    volume_ml, attention, segmentation = predict_volume(tmp_path / "v", flair, brain)
    assert volume.grade is None and volume.volume_ml == volume_ml and volume.weak
    np.testing.assert_array_equal(volume.segmentation.array, segmentation.array)
    np.testing.assert_array_equal(volume.voxel_map.array, attention.array)
    bins = predict_gp_unet(_model_folder(tmp_path / "b", labels="volume_bins", task="classification"), flair, brain)
    assert bins.grade == int(np.argmax(bins.probabilities)) and bins.volume_ml is not None
    twin = predict_gp_unet(_model_folder(tmp_path / "g", labels="gold", bias=0.0), flair, brain)
    assert not twin.weak and twin.grade is None and twin.voxel_map.array.max() <= 1.0


@pytest.mark.parametrize("output, task", [(np.array([2.0, 0.5, -1.0]), "ordinal"), (np.array([3.0, -2.0, 0.5]),
                                                                                      "ordinal"),
                                          (np.array([0.1, 0.2, 0.3, 0.4]), "classification")])
def test_class_probabilities_are_a_distribution(output: np.ndarray, task: str) -> None:
    probabilities = class_probabilities(output, task)
    assert probabilities.min() >= 0 and probabilities.sum() == pytest.approx(1.0)
    assert probabilities.size == (output.size + 1 if task == "ordinal" else output.size)


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m")
    (folder / "weights" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot load the weights"):
        load_volume_model(folder)


def test_predict_writes_native_attention_and_volume_matched_mask(tmp_path: Path) -> None:
    lps = AFFINE @ np.diag([-1.0, -1.0, 1.0, 1.0])
    lps[:3, 3] = [40.0, 36.0, -10.0]
    flair, brain = _scan(4, lps)
    data = tmp_path / "data"
    save_image(flair.with_array(flair.array * 300.0), data / "s1_flair.nii.gz")
    save_mask(brain, data / "s1_brain.nii.gz")
    manifest = write_manifest(pd.DataFrame([{"subject": "s1", "flair": "s1_flair.nii.gz",
                                             "brain_mask": "s1_brain.nii.gz"}]), data / "manifest.tsv")
    result = predict_manifest(_model_folder(tmp_path / "m", bias=0.5), manifest, tmp_path / "out")
    attention = load_image(tmp_path / "out" / "s1_attention.nii.gz")
    mask = load_mask(tmp_path / "out" / "s1_wmh.nii.gz")
    assert np.allclose(attention.affine, lps) and attention.shape == SHAPE and np.allclose(mask.affine, lps)
    row = pd.read_csv(result.volumes).iloc[0]
    assert abs(mask.array.sum() * mask.voxel_volume_ml - row["model_volume_ml"]) <= mask.voxel_volume_ml / 2
    assert row["wmh_ml"] == pytest.approx(mask.array.sum() * mask.voxel_volume_ml)


def test_ordinal_grade_is_the_count_of_positive_cumulative_logits() -> None:
    logits = np.array([[1.6, 0.6, -0.4], [2.0, -0.5, 0.3], [-1.0, -2.0, -3.0]])
    # P(grade > j) = sigmoid(logit_j); the class probabilities of the first row peak at grade 3, not at 2
    assert int(np.argmax(class_probabilities(logits[0], "ordinal"))) == 3
    assert predicted_class(logits, "ordinal").tolist() == [2, 2, 0]
    assert predicted_class(torch.from_numpy(logits), "ordinal").tolist() == [2, 2, 0]
    assert predicted_class(np.array([[0.1, 0.7, 0.2]]), "classification").tolist() == [1]


def test_training_and_prediction_grade_a_scan_alike(tmp_path: Path) -> None:
    # zero dense weights: the cumulative logits are bias − cut points = 1.6 − (0, 1, 2) = (1.6, 0.6, −0.4) for any scan
    folder = _model_folder(tmp_path / "m", labels="fazekas", bias=1.6, constant=True)
    model = load_volume_model(folder)
    flair, brain = _scan(6)
    severity = predict_severity(model, flair, brain)
    assert severity.grade == 2 and int(np.argmax(severity.probabilities)) == 3
    config = parse_volume_config({"labels": "fazekas", "box": {"shape": [8, 8, 4], "spacing_mm": None},
                                  "network": {"base_channels": 3}})
    boxes = {"a": box_scan(flair, brain, model.box)}
    for grade, accuracy in ((2, 1.0), (3, 0.0)):
        metrics = evaluate_loss(model.network, VolumeLoss(config), boxes, Targets({"a": float(grade)}), ["a"], config,
                                torch.device("cpu"))
        assert metrics["val_accuracy"] == accuracy


def test_predict_with_a_fazekas_model_writes_grade_and_native_attention(tmp_path: Path) -> None:
    lps = AFFINE @ np.diag([-1.0, -1.0, 1.0, 1.0])
    lps[:3, 3] = [40.0, 36.0, -10.0]
    data = tmp_path / "data"
    rows = []
    for subject, seed in (("s1", 7), ("s2", 8)):
        flair, brain = _scan(seed, lps)
        save_image(flair.with_array(flair.array * 300.0), data / f"{subject}_flair.nii.gz")
        save_mask(brain, data / f"{subject}_brain.nii.gz")
        rows.append({"subject": subject, "flair": f"{subject}_flair.nii.gz", "brain_mask": f"{subject}_brain.nii.gz"})
    manifest = write_manifest(pd.DataFrame(rows), data / "manifest.tsv")
    out = tmp_path / "out"
    result = predict_manifest(_model_folder(tmp_path / "m", labels="fazekas", bias=1.6, constant=True), manifest, out)
    assert result.failures == []
    table = read_table(result.volumes)
    assert tuple(table.columns) == CSV_COLUMNS
    assert table["predicted_grade"].tolist() == [2, 2]  # (1.6, 0.6, −0.4): two positive cumulative logits
    assert result.volumes.read_text().endswith(",2,\n")  # an integer cell, not 2.0 (then the empty flags)
    assert table[["wmh_ml", "icv_ml", "lesion_count", "model_volume_ml"]].isna().all().all()
    for subject in ("s1", "s2"):
        assert set(result.outputs[subject]) == {"attention"}
        assert not (out / f"{subject}_wmh.nii.gz").exists() and not (out / f"{subject}_wmhprob.nii.gz").exists()
        attention = load_image(out / f"{subject}_attention.nii.gz")
        assert attention.shape == SHAPE and np.allclose(attention.affine, lps)
        sidecar = validate_sidecar(sidecar_path(out / f"{subject}_attention.nii.gz"))
        assert sidecar["volumes"]["predicted_grade"] == 2 and sidecar["volumes"]["wmh_ml"] is None
        assert record_path(out, "predict", subject).is_file()
    validate_sidecar(sidecar_path(result.volumes))
    # a rerun reuses the completed records and writes the same table
    before = result.volumes.read_bytes()
    again = predict_manifest(tmp_path / "m", manifest, out)
    assert again.volumes.read_bytes() == before and set(again.outputs["s1"]) == {"attention"}


def test_volume_bins_model_fills_predicted_grade_beside_its_mask(tmp_path: Path) -> None:
    flair, brain = _scan(4)
    data = tmp_path / "data"
    save_image(flair.with_array(flair.array * 300.0), data / "s1_flair.nii.gz")
    save_mask(brain, data / "s1_brain.nii.gz")
    manifest = write_manifest(pd.DataFrame([{"subject": "s1", "flair": "s1_flair.nii.gz",
                                             "brain_mask": "s1_brain.nii.gz"}]), data / "manifest.tsv")
    folder = _model_folder(tmp_path / "m", labels="volume_bins", task="classification")
    result = predict_manifest(folder, manifest, tmp_path / "out")
    row = read_table(result.volumes).iloc[0]
    assert set(result.outputs["s1"]) == {"wmh", "wmh_prob", "attention"}
    assert 0 <= row["predicted_grade"] <= 2 and row["model_volume_ml"] > 0


def _prepared_manifest(folder: Path) -> Path:
    """Two prepared-like scans (12 µL voxels) with gold (a lesion ball, label 2 beside it), volume_ml and fazekas."""
    rows = []
    for subject, seed in (("s1", 1), ("s2", 2)):
        flair, brain = _scan(seed)
        gold = np.zeros(SHAPE, np.uint8)
        gold[10:13, 8:11, 4:7] = 1
        gold[6:9, 4:7, 3:5] = 2
        save_image(flair, folder / f"{subject}_flair.nii.gz")
        save_mask(brain, folder / f"{subject}_brain.nii.gz")
        save_mask(brain.with_array(gold), folder / f"{subject}_gold.nii.gz")
        rows.append({"subject": subject, "scanner": "A", "flair": f"{subject}_flair.nii.gz",
                     "brain_mask": f"{subject}_brain.nii.gz", "gold": f"{subject}_gold.nii.gz",
                     "volume_ml": f"{0.3 * seed:.1f}", "fazekas": str(seed)})
    return write_manifest(pd.DataFrame(rows), folder / "manifest.tsv")


def test_segmentation_model_rows_hold_its_mask_volume_and_dice(tmp_path: Path, tiny_model: Path) -> None:
    manifest = _prepared_manifest(tmp_path / "data")
    frame = score_segmentation_scans(tiny_model, manifest, scan_ids=["s2"], splits={"s2": "test"})
    assert list(frame.columns) == list(SCAN_COLUMNS) and frame["scan_id"].tolist() == ["s2"]
    row = frame.iloc[0]
    flair, brain = load_image(tmp_path / "data" / "s2_flair.nii.gz"), load_mask(tmp_path / "data" / "s2_brain.nii.gz")
    mask = segment_2_5d(load_model(tiny_model), {"flair": flair, "brain_mask": brain}, fusion="mean", threshold=0.5,
                        batch_size=4).wmh.array > 0
    assert 0 < mask.sum() < brain.array.sum()  # the random network marks part of the brain: a real test of the count
    assert row["predicted_volume_ml"] == pytest.approx(mask.sum() * 0.012)  # 2 × 2 × 3 mm voxels
    assert row["segmentation_ml"] == row["predicted_volume_ml"]
    gold = load_mask(tmp_path / "data" / "s2_gold.nii.gz", allowed_labels=(0, 1, 2)).array
    scored = mask & (gold != 2)
    assert row["dice"] == pytest.approx(2 * (scored & (gold == 1)).sum() / (scored.sum() + (gold == 1).sum()))
    assert (row["volume_ml"], row["fazekas"], row["split"], row["scanner"]) == (0.6, 2.0, "test", "A")
    assert np.isnan(row["predicted_grade"])
    volume_row = predict_scans(_model_folder(tmp_path / "gp"), manifest, scan_ids=["s2"]).iloc[0]
    assert volume_row[list(TISSUE_COLUMNS)].tolist() == row[list(TISSUE_COLUMNS)].tolist()
    assert np.isfinite(row[list(TISSUE_COLUMNS)].astype(float)).all()


def test_only_2_5d_models_are_scored_as_segmenters(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="kind 'volume' is not 'segmentation-2.5d'"):
        segmentation_scorer(_model_folder(tmp_path / "gp"))
