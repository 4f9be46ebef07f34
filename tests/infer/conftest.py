"""Fixtures of the inference tests: a tiny random-weight 2.5D model folder and crafted FLAIR scans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from wmhkit.models.folder import write_model_folder
from wmhkit.nn.vgg_unet import VGG16UNet

PLANES = ("axial", "sagittal", "coronal")
#: Crafted scans: 5 mm voxels make the ellipsoid brain ~800 mL, so a brain mask can also be computed.
SPACING_MM = 5.0
SHAPE = (28, 32, 22)


def tiny_model_record(**overrides: object) -> dict:
    """``model.yaml`` content of a 2.5D model with a 1/16-width VGG16 U-Net and fast preparation."""
    record = {
        "kind": "segmentation-2.5d",
        "network": VGG16UNet(width=1 / 16).network_spec(),
        "planes": list(PLANES),
        "fusion": "mean",
        "threshold": 0.5,
        "prepare": {"n4": False, "qc_png": False, "crop_margin_mm": 4.0},
        "wmhkit_version": "0.1.0",
        "trained_on": "nothing (random initialisation, seed 0)",
    }
    record.update(overrides)
    return record


def write_tiny_model(folder: Path, seed: int = 0, **overrides: object) -> Path:
    """A model folder whose three plane networks are randomly initialised from ``seed``."""
    torch.manual_seed(seed)
    weights = {plane: VGG16UNet(width=1 / 16).state_dict() for plane in PLANES}
    write_model_folder(folder, tiny_model_record(**overrides), weights, {"seed": seed, "config_hash": "test"})
    return folder


@pytest.fixture(autouse=True)
def one_torch_thread() -> object:
    """Run torch on one thread: on busy shared cores, creating oneDNN kernels for each new
    slice shape with two contending threads costs seconds; one thread takes milliseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def crafted_arrays(shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """(FLAIR, brain mask) in RAS storage: an ellipsoid brain (0.6), a dark ventricle block, bright spots."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radii = np.array(shape) / 2 - 2
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(axis=0) <= 1
    flair = np.where(brain, 600.0, 20.0)
    c = centre.astype(int)
    flair[c[0] - 3 : c[0] + 3, c[1] - 4 : c[1] + 4, max(c[2] - 2, 0) : c[2] + 2] = 80.0  # ventricles
    flair[c[0] + 5, c[1], c[2]] = flair[c[0] - 7, c[1] + 2, c[2]] = 1500.0  # lesions
    return flair.astype(np.float32), brain.astype(np.uint8)


def storage_affine(storage: str, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Affine of RAS, LPS (x and y flipped) or 20°-oblique storage at :data:`SPACING_MM`."""
    affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    affine[:3, 3] = -SPACING_MM * (np.array(shape) - 1) / 2
    if storage == "LPS":
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = np.array(shape[:2]) - 1
        return affine @ flip
    if storage == "oblique":
        angle = np.deg2rad(20.0)
        rotation = np.eye(4)
        rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        return rotation @ affine
    return affine


def stored(array: np.ndarray, storage: str) -> np.ndarray:
    """``array`` (RAS order) in the voxel order of ``storage``."""
    return array[::-1, ::-1].copy() if storage == "LPS" else array


@pytest.fixture
def write_scan() -> Callable[..., tuple[Path, Path]]:
    """``write_scan(folder, name, storage="RAS", shape=SHAPE)`` → (FLAIR path, brain mask path)."""

    def write(folder: Path, name: str, storage: str = "RAS", shape: tuple[int, int, int] = SHAPE) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        flair, brain = crafted_arrays(shape)
        affine = storage_affine(storage, shape)
        paths = []
        for suffix, array in (("", flair), ("_brainmask", brain)):
            image = nib.Nifti1Image(stored(array, storage), affine)
            image.set_qform(affine, code=1)
            image.set_sform(affine, code=1)
            path = folder / f"{name}{suffix}.nii.gz"
            nib.save(image, path)
            paths.append(path)
        return paths[0], paths[1]

    return write


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """``make_model(name="model", seed=0, **model_yaml_overrides)`` → a fresh tiny model folder under tmp_path."""

    def make(name: str = "model", seed: int = 0, **overrides: object) -> Path:
        return write_tiny_model(tmp_path / name, seed, **overrides)

    return make
