"""A model folder written by training is what predict reads: same writer, same loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image
from wmhkit.models.folder import KIND_2_5D, model_hash, read_model_spec
from wmhkit.models.predictors import SegmentationPredictor, load_predictor
from wmhkit.train.config import parse_config
from wmhkit.train.segmentation import train_run


def test_a_model_folder_written_by_training_is_read_by_predict(tiny_cohort: Path, make_config, tmp_path: Path) -> None:
    config = parse_config(make_config(planes=["axial", "coronal"]))
    train_run(config, tmp_path / "run", manifest=tiny_cohort)
    model_dir = tmp_path / "run" / "model"

    spec = read_model_spec(model_dir)
    assert spec.kind == KIND_2_5D and spec.planes == ("axial", "coronal") and spec.threshold == config.threshold
    assert list(yaml.safe_load((model_dir / "model.yaml").read_text()))[-2:] == ["wmhkit_version", "trained_on"]
    provenance = json.loads((model_dir / "provenance.json").read_text())
    assert provenance["model_hash"] == model_hash(model_dir) and "torch" in provenance["versions"]

    predictor = load_predictor(model_dir)
    assert isinstance(predictor, SegmentationPredictor)
    manifest = read_manifest(tiny_cohort)
    flair = load_image(manifest.path(next(iter(manifest.rows())), "flair"))
    brain = flair.with_array(np.ones(flair.shape, np.uint8))
    prediction = predictor.predict({"flair": flair, "brain_mask": brain})
    assert prediction.wmh is not None and prediction.wmh_prob is not None
    assert prediction.wmh.shape == flair.shape and prediction.threshold == config.threshold
    assert np.array_equal(prediction.wmh.array, (prediction.wmh_prob.array >= config.threshold).astype(np.uint8))
    assert 0.0 < float(prediction.wmh_prob.array.mean()) < 1.0
    # the cross-validation predictor of trained networks gives the same maps
    same = SegmentationPredictor.from_networks(predictor.model.networks, fusion=config.fusion,
                                               threshold=config.threshold, batch_size=4, device=predictor.model.device)
    assert np.array_equal(same.predict({"flair": flair, "brain_mask": brain}).wmh_prob.array, prediction.wmh_prob.array)
