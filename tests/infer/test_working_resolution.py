"""``predict`` at a model's working spacing: outputs on the exact input grid, thresholded there, thick-slice planes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from wmhkit.errors import InputError
from wmhkit.infer.predict import predict_scans
from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, save_image, save_mask
from wmhkit.models.folder import read_model_spec, write_model_folder
from wmhkit.nn.vgg_unet import VGG16UNet

PLANES = ("axial", "sagittal", "coronal")
#: Native grid of the test scan: 5 × 5 mm in plane, 12 mm slices, stored LAS and tilted 15° about x.
SHAPE = (30, 34, 12)


def _oblique_las_affine(spacing: tuple[float, float, float] = (5.0, 5.0, 12.0)) -> np.ndarray:
    angle = np.deg2rad(15.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    affine = rotation @ np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((np.array(SHAPE) - 1) / 2)
    return affine


def _write_scan(folder: Path, affine: np.ndarray) -> Path:
    """A manifest of one scan drawn in world mm (brain ellipsoid, dark ventricles, bright lesions) with its brain mask."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y, z = (affine[:3, :3] @ np.indices(SHAPE).reshape(3, -1) + affine[:3, 3:4]).reshape(3, *SHAPE)
    brain = (x / 62) ** 2 + (y / 72) ** 2 + (z / 58) ** 2 <= 1
    flair = np.where(brain, 600.0, 20.0)
    flair[(np.abs(x) < 12) & (np.abs(y) < 18) & (np.abs(z) < 12)] = 80.0
    flair[((x - 28) ** 2 + y**2 + z**2 <= 10**2) | ((x + 30) ** 2 + (y - 15) ** 2 + z**2 <= 8**2)] = 1500.0
    save_image(Image(flair.astype(np.float32), affine), folder / "flair.nii.gz")
    save_mask(Image(brain.astype(np.uint8), affine), folder / "brain.nii.gz")
    manifest = folder / "manifest.tsv"
    pd.DataFrame([{"subject": "sub-01", "flair": "flair.nii.gz", "brain_mask": "brain.nii.gz"}]).to_csv(
        manifest, sep="\t", index=False)
    return manifest


def _model(folder: Path, prepare: dict, planes: tuple[str, ...] = PLANES, **record: object) -> Path:
    """A random-weight 2.5D model (seed 0: the same weights per plane name in every folder)."""
    torch.manual_seed(0)
    weights = {plane: VGG16UNet(width=1 / 16).state_dict() for plane in PLANES}
    description = {
        "kind": "segmentation-2.5d", "network": VGG16UNet(width=1 / 16).network_spec(), "planes": list(planes),
        "fusion": "mean", "threshold": 0.5,
        "prepare": {"n4": False, "qc_png": False, "crop_margin_mm": 8.0, **prepare}, **record,
    }
    write_model_folder(folder, description, {plane: weights[plane] for plane in planes}, {"seed": 0})
    return folder


def _predict(model: Path, manifest: Path, out: Path) -> dict[str, nib.Nifti1Image]:
    result = predict_scans(model, [manifest], out)
    assert result.failures == []
    return {role: nib.load(path) for role, path in result.outputs["sub-01"].items()}


def test_outputs_of_a_resampled_scan_lie_on_the_exact_input_grid_and_are_thresholded_there(tmp_path: Path) -> None:
    manifest = _write_scan(tmp_path / "data", _oblique_las_affine())
    model = _model(tmp_path / "model", {"working_spacing_mm": [4.0, 4.0, 4.0], "thick_slice_mm": 10.0})
    outputs = _predict(model, manifest, tmp_path / "out")
    native = load_image(tmp_path / "data" / "flair.nii.gz")
    brain = np.asarray(nib.load(tmp_path / "data" / "brain.nii.gz").dataobj) > 0
    wmh, prob = (np.asarray(outputs[role].dataobj) for role in ("wmh", "wmh_prob"))
    for role in ("wmh", "wmh_prob"):
        assert outputs[role].shape == SHAPE
        np.testing.assert_array_equal(outputs[role].affine, native.affine)
    assert 0 < wmh.sum() < brain.sum()
    np.testing.assert_array_equal(wmh, (prob >= 0.5) & brain)  # the native-grid probability, in the brain
    assert not prob[~brain].any()
    volumes = pd.read_csv(tmp_path / "out" / "volumes.csv")
    assert volumes.loc[0, "wmh_ml"] == pytest.approx(wmh.sum() * native.voxel_volume_ml, rel=1e-5)
    assert volumes.loc[0, "icv_ml"] == pytest.approx(brain.sum() * native.voxel_volume_ml, rel=1e-5)


def test_a_working_spacing_equal_to_the_native_one_gives_the_outputs_of_none(tmp_path: Path) -> None:
    affine = _oblique_las_affine((5.0, 5.0, 5.0))
    manifest = _write_scan(tmp_path / "data", affine)
    none = _predict(_model(tmp_path / "none", {}), manifest, tmp_path / "out-none")
    same = _predict(_model(tmp_path / "same", {"working_spacing_mm": [5.0, 5.0, 5.0]}), manifest, tmp_path / "out-same")
    for role in ("wmh", "wmh_prob"):
        assert Path(none[role].get_filename()).read_bytes() == Path(same[role].get_filename()).read_bytes()
    assert pd.read_csv(tmp_path / "out-none" / "volumes.csv").equals(pd.read_csv(tmp_path / "out-same" / "volumes.csv"))


def test_the_acquired_plane_rule_runs_only_the_plane_across_thick_slices(tmp_path: Path) -> None:
    manifest = _write_scan(tmp_path / "data", _oblique_las_affine())
    prepare = {"working_spacing_mm": [5.0, 5.0, 5.0], "thick_slice_mm": 10.0}  # 12 mm slices kept: axial is acquired
    acquired = _predict(_model(tmp_path / "acquired", prepare, thick_slice_planes="acquired"), manifest,
                        tmp_path / "out-acquired")
    axial_only = _predict(_model(tmp_path / "axial", prepare, planes=("axial",)), manifest, tmp_path / "out-axial")
    every = _predict(_model(tmp_path / "all", prepare), manifest, tmp_path / "out-all")
    as_array = lambda outputs: np.asarray(outputs["wmh_prob"].dataobj)
    np.testing.assert_array_equal(as_array(acquired), as_array(axial_only))
    assert not np.array_equal(as_array(acquired), as_array(every))


def test_an_unknown_thick_slice_rule_is_refused(tmp_path: Path) -> None:
    model = _model(tmp_path / "model", {})
    with (model / "model.yaml").open("a", encoding="utf-8") as handle:
        handle.write("thick_slice_planes: axial-only\n")
    with pytest.raises(InputError, match="thick_slice_planes 'axial-only' is not one of"):
        read_model_spec(model)
