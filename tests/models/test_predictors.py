"""The predictor registry: one predictor per model kind, each behind the same protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wmhkit.io.image import Image
from wmhkit.models.folder import KINDS, write_model_folder
from wmhkit.models.predictors import PREDICTORS, GpUnetPredictor, ScanPrediction, load_predictor
from wmhkit.nn.gp_unet import GPUNet


def test_every_model_kind_has_a_predictor() -> None:
    assert set(PREDICTORS) == set(KINDS)


def test_a_gp_unet_twin_folder_loads_as_its_predictor_and_predicts_maps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = GPUNet(base_channels=2, levels=2, head="voxel")
    record = {"kind": "segmentation-3d", "network": network.network_spec(), "threshold": 0.5,
              "box": {"shape": [8, 8, 4], "spacing_mm": None}, "target": {"labels": "gold"}}
    write_model_folder(tmp_path / "twin", record, {"model": network.state_dict()}, {})
    predictor = load_predictor(tmp_path / "twin")
    assert isinstance(predictor, GpUnetPredictor)
    brain = np.zeros((12, 12, 6), np.uint8)
    brain[2:10, 2:10, 1:5] = 1
    flair = Image(np.where(brain > 0, 0.5, 0.0).astype(np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
    prediction = predictor.predict({"flair": flair, "brain_mask": flair.with_array(brain)})
    assert isinstance(prediction, ScanPrediction) and prediction.wmh is not None and prediction.attention is None
    assert np.array_equal(prediction.wmh.array, ((prediction.wmh_prob.array >= 0.5) & (brain > 0)).astype(np.uint8))
