"""Tiny prepared cohorts for the trainer tests: 32³ volumes, a few lesion blobs, every label kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import save_image, save_mask

SHAPE = (32, 32, 32)


def write_tiny_prepared_cohort(root: Path, n_gold: int = 6, n_unlabelled: int = 6, seed: int = 0) -> Path:
    """Write ``root/manifest.tsv`` with flair, gold (labels 0/1/2), silver and two bronze masks per scan.

    Scans ``g*`` carry gold, ``u*`` do not; scanners alternate A/B.
    """
    rng = np.random.default_rng(seed)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0)
    rows = []
    for index in range(n_gold + n_unlabelled):
        scan = f"g{index:02d}" if index < n_gold else f"u{index:02d}"
        lesion = np.zeros(SHAPE, bool)
        for _ in range(3):
            centre = rng.uniform(8, 24, 3)
            lesion |= np.linalg.norm(grid - centre, axis=-1) < rng.uniform(2.0, 4.0)
        flair = (0.3 + 0.05 * rng.standard_normal(SHAPE) + 0.5 * lesion).astype(np.float32)
        gold = lesion.astype(np.uint8)
        gold[:4, :4, :4] = 2
        folder = root / scan
        folder.mkdir(parents=True)
        save_image(Image(flair, affine), folder / "flair.nii.gz")
        row = {"subject": scan, "scanner": "AB"[index % 2], "flair": f"{scan}/flair.nii.gz"}
        for name, mask in (("silver", lesion), ("bronze_a", lesion), ("bronze_b", np.roll(lesion, 1, axis=0))):
            save_mask(Image(mask.astype(np.uint8), affine), folder / f"{name}.nii.gz")
            row[name] = f"{scan}/{name}.nii.gz"
        if index < n_gold:
            save_mask(Image(gold, affine), folder / "gold.nii.gz")
            row["gold"] = f"{scan}/gold.nii.gz"
        rows.append(row)
    return write_manifest(pd.DataFrame(rows).fillna(""), root / "manifest.tsv")


def tiny_config(**overrides: object) -> dict:
    """A config dict for the tiny cohort: width 1/16, 32³ pad and patches, one epoch per stage."""
    config = {
        "name": "tiny", "seed": 3, "network": {"width": 0.0625}, "planes": ["axial"], "tensorboard": False,
        "device": "cpu", "data": {"pad_shape": [32, 32, 32], "patch_size": 32},
        "augmentation": {"flip": True, "intensity_scale": 0.1},
        "stages": [
            {"labels": "gold", "folds": 1, "epochs": 2, "batch_size": 16, "learning_rate": 1e-3,
             "scans": "with_gold", "slices_per_epoch": 64},
        ],
    }
    config.update(overrides)
    return config


@pytest.fixture
def tiny_cohort(tmp_path: Path) -> Path:
    return write_tiny_prepared_cohort(tmp_path / "prepared")


@pytest.fixture
def make_config():
    """:func:`tiny_config` (a factory fixture, since test modules cannot import conftest)."""
    return tiny_config


@pytest.fixture
def write_cohort():
    """:func:`write_tiny_prepared_cohort` (a factory fixture, for other sizes than ``tiny_cohort``)."""
    return write_tiny_prepared_cohort
