"""Tiny inputs for the reliability campaigns: raw scans, bronze-labelled scans, a random-weight model.

Loaded by file path (from ``conftest.py`` and ``benchmarks/bench_reliability.py``), so
that the tests and the benchmark drive exactly the same cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import save_image, save_mask

#: 5 mm voxels: a 28×32×22 ellipsoid brain is ~800 mL, so every stage treats it as a brain.
SPACING_MM = 5.0
SHAPE = (28, 32, 22)


def _affine() -> np.ndarray:
    affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    affine[:3, 3] = -SPACING_MM * (np.array(SHAPE) - 1) / 2
    return affine


def _scan(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FLAIR, brain, lesions): an ellipsoid brain at 600, dark ventricles, 2-4 bright blobs."""
    grid = np.indices(SHAPE).astype(float)
    centre = (np.array(SHAPE) - 1) / 2
    radii = np.array(SHAPE) / 2 - 2
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(axis=0) <= 1
    lesions = np.zeros(SHAPE, bool)
    for _ in range(rng.integers(2, 5)):
        spot = centre + rng.uniform(-5, 5, 3)
        lesions |= np.linalg.norm(np.moveaxis(grid, 0, -1) - spot, axis=-1) < rng.uniform(1.0, 2.0)
    lesions &= brain
    flair = np.where(brain, 600.0, 20.0) + rng.normal(0, 15, SHAPE)
    c = centre.astype(int)
    flair[c[0] - 3 : c[0] + 3, c[1] - 4 : c[1] + 4, c[2] - 2 : c[2] + 2] = 80.0
    flair[lesions] = 1500.0
    return flair.astype(np.float32), brain, lesions


def write_raw_cohort(root: Path, n_scans: int, seed: int = 0) -> Path:
    """``root/manifest.tsv`` of ``n_scans`` raw scans (FLAIR + brain mask), subjects ``sub-00``, ``sub-01``, ..."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n_scans):
        subject = f"sub-{index:02d}"
        flair, brain, _ = _scan(rng)
        folder = root / subject
        save_image(Image(flair, _affine()), folder / f"{subject}_FLAIR.nii.gz")
        save_mask(Image(brain.astype(np.uint8), _affine()), folder / f"{subject}_brainmask.nii.gz")
        rows.append({"subject": subject, "flair": f"{subject}/{subject}_FLAIR.nii.gz",
                     "brain_mask": f"{subject}/{subject}_brainmask.nii.gz"})
    return write_manifest(pd.DataFrame(rows), root / "manifest.tsv")


def write_bronzed_cohort(root: Path, n_scans: int, seed: int = 0) -> Path:
    """``root/manifest.tsv`` of scans with three bronze masks each (for ``wmhkit silver``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n_scans):
        subject = f"sub-{index:02d}"
        flair, brain, lesions = _scan(rng)
        folder = root / subject
        save_image(Image(flair, _affine()), folder / "flair.nii.gz")
        save_mask(Image(brain.astype(np.uint8), _affine()), folder / "brain_mask.nii.gz")
        row = {"subject": subject, "flair": f"{subject}/flair.nii.gz", "brain_mask": f"{subject}/brain_mask.nii.gz"}
        for method, shift in (("outlier", 0), ("growth", 1), ("tophat", -1)):
            rater = np.roll(lesions, shift, axis=0) & brain
            save_mask(Image(rater.astype(np.uint8), _affine()), folder / f"bronze_{method}.nii.gz")
            row[f"bronze_{method}"] = f"{subject}/bronze_{method}.nii.gz"
        rows.append(row)
    return write_manifest(pd.DataFrame(rows), root / "manifest.tsv")


def write_random_model(folder: Path, seed: int = 0) -> Path:
    """A 2.5D model folder (three 1/16-width VGG16 U-Nets) with seeded random weights."""
    import torch

    from wmhkit.models.folder import write_model_folder
    from wmhkit.nn.vgg_unet import VGG16UNet

    planes = ("axial", "sagittal", "coronal")
    torch.manual_seed(seed)
    weights = {plane: VGG16UNet(width=1 / 16).state_dict() for plane in planes}
    record = {
        "kind": "segmentation-2.5d", "network": VGG16UNet(width=1 / 16).network_spec(), "planes": list(planes),
        "fusion": "mean", "threshold": 0.5, "prepare": {"n4": False, "qc_png": False, "crop_margin_mm": 4.0},
        "wmhkit_version": "0.1.0", "trained_on": f"nothing (random initialisation, seed {seed})",
    }
    write_model_folder(folder, record, weights, {"seed": seed, "config_hash": "reliability"})
    return folder


def write_train_inputs(root: Path, epochs: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """(config.yaml, manifest.tsv) of a one-stage gold training run that takes seconds on one CPU thread.

    Four 32³ scans with gold masks; a 1/16-width network; ``epochs`` epochs of 32 slices.
    """
    rng = np.random.default_rng(seed)
    shape = (32, 32, 32)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    grid = np.moveaxis(np.indices(shape), 0, -1)
    rows = []
    for index in range(4):
        scan = f"g{index:02d}"
        lesion = np.zeros(shape, bool)
        for _ in range(3):
            lesion |= np.linalg.norm(grid - rng.uniform(8, 24, 3), axis=-1) < rng.uniform(2.0, 4.0)
        flair = (0.3 + 0.05 * rng.standard_normal(shape) + 0.5 * lesion).astype(np.float32)
        save_image(Image(flair, affine), root / "data" / scan / "flair.nii.gz")
        save_mask(Image(lesion.astype(np.uint8), affine), root / "data" / scan / "gold.nii.gz")
        rows.append({"subject": scan, "flair": f"{scan}/flair.nii.gz", "gold": f"{scan}/gold.nii.gz"})
    manifest = write_manifest(pd.DataFrame(rows), root / "data" / "manifest.tsv")
    config = {
        "name": "reliability", "seed": 3, "network": {"width": 0.0625}, "planes": ["axial"], "tensorboard": False,
        "device": "cpu", "data": {"pad_shape": [32, 32, 32], "patch_size": 32},
        "augmentation": {"flip": True, "intensity_scale": 0.1},
        "stages": [{"labels": "gold", "folds": 1, "epochs": epochs, "batch_size": 16, "learning_rate": 1e-3,
                    "scans": "with_gold", "slices_per_epoch": 32, "val_slices": 16}],
    }
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path, manifest
