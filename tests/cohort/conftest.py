"""Tiny crafted cohorts for the cohort-runner tests: good scans, poison scans, a random-weight model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

SHAPE = (24, 28, 18)
SPACING_MM = 5.0
#: Poison scans of RELIABILITY.md and what makes each one bad.
POISONS = ("truncated", "nan", "four_d", "empty_mask")


def scan_arrays(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(FLAIR, brain mask): a noisy ellipsoid brain with a dark ventricle block and two bright lesions."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE).astype(float)
    centre = (np.array(SHAPE) - 1) / 2
    radii = np.array(SHAPE) / 2 - 2
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(axis=0) <= 1
    flair = np.where(brain, 600.0, 20.0) + rng.normal(0.0, 10.0, SHAPE)
    c = centre.astype(int)
    flair[c[0] - 3 : c[0] + 3, c[1] - 4 : c[1] + 4, c[2] - 2 : c[2] + 2] = 80.0
    flair[c[0] + 5, c[1], c[2]] = flair[c[0] - 6, c[1] + 2, c[2] + seed % 3] = 1500.0
    return np.clip(flair, 0, None).astype(np.float32), brain.astype(np.uint8)


@pytest.fixture
def write_cohort(craft_nifti) -> Callable[..., Path]:
    """``write_cohort(folder, n_good, poisons=())`` → manifest of ``sub-01..`` good scans then one scan per poison."""

    def write(folder: Path, n_good: int, poisons: tuple[str, ...] = ()) -> Path:
        affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
        affine[:3, 3] = -SPACING_MM * (np.array(SHAPE) - 1) / 2
        rows = []
        names = [f"sub-{i:02d}" for i in range(1, n_good + 1)] + [f"poison-{p.replace('_', '')}" for p in poisons]
        kinds = ["good"] * n_good + list(poisons)
        for index, (name, kind) in enumerate(zip(names, kinds)):
            (folder / name).mkdir(parents=True, exist_ok=True)
            flair, brain = scan_arrays(index)
            if kind == "nan":
                flair = np.full(SHAPE, np.nan, np.float32)
            if kind == "four_d":
                flair = np.stack([flair, flair], axis=-1)
            if kind == "empty_mask":
                brain = np.zeros_like(brain)
            flair_path = craft_nifti(folder / name / "flair.nii.gz", flair, affine)
            craft_nifti(folder / name / "brain.nii.gz", brain, affine)
            if kind == "truncated":
                flair_path.write_bytes(flair_path.read_bytes()[:300])
            rows.append(f"{name}\t{name}/flair.nii.gz\t{name}/brain.nii.gz")
        manifest = folder / "manifest.tsv"
        manifest.write_text("subject\tflair\tbrain_mask\n" + "\n".join(rows) + "\n")
        return manifest

    return write


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2.5D model folder with three 1/16-width VGG16 U-Nets, randomly initialised (seed 0), fast preparation."""
    import torch

    from wmhkit.models.folder import write_model_folder
    from wmhkit.nn.vgg_unet import VGG16UNet

    planes = ("axial", "sagittal", "coronal")
    torch.manual_seed(0)
    weights = {plane: VGG16UNet(width=1 / 16).state_dict() for plane in planes}
    record = {"kind": "segmentation-2.5d", "network": VGG16UNet(width=1 / 16).network_spec(), "planes": list(planes),
              "fusion": "mean", "threshold": 0.5, "prepare": {"n4": False, "qc_png": False, "crop_margin_mm": 4.0},
              "wmhkit_version": "0.1.0", "trained_on": "nothing (random initialisation, seed 0)"}
    folder = tmp_path_factory.mktemp("cohort_model") / "tiny"
    write_model_folder(folder, record, weights, {"seed": 0, "config_hash": "test"})
    return folder


@pytest.fixture(scope="module")
def dask_scheduler():
    """Address of a two-worker local Dask cluster shared by a test module (started once: seconds)."""
    from wmhkit.cohort.runner import start_local_cluster

    with start_local_cluster(2, "2GiB") as cluster:
        yield cluster.scheduler_address
