"""A hand-built toy brain with known anatomy and lesions, and a tiny cohort made from it.

Shared by the bronze and fusion tests (loaded by file path from their conftest files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import save_image, save_mask
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest

SPACING_MM = 1.5
SHAPE = (84, 92, 70)


@dataclass(frozen=True)
class ToyBrain:
    """FLAIR/T1 images and the true anatomy, all on one grid (1.5 mm, RAS)."""

    flair: Image
    t1: Image
    brain: np.ndarray
    lesions: np.ndarray
    cortex: np.ndarray
    deep_gm: np.ndarray
    rim: np.ndarray


def _ellipsoid(centre_mm, radii_mm) -> np.ndarray:
    grid = np.indices(SHAPE).astype(np.float64) * SPACING_MM
    return sum(((grid[i] - centre_mm[i]) / radii_mm[i]) ** 2 for i in range(3)) <= 1.0


def make_toy_brain(seed: int = 0) -> ToyBrain:
    """Brain ellipsoid with 2 mm of outer CSF, a 4 mm cortex, two deep-GM nuclei, ventricles with a bright rim, four lesions."""
    rng = np.random.default_rng(seed)
    centre = np.array(SHAPE) * SPACING_MM / 2
    brain = _ellipsoid(centre, (58, 64, 48))
    depth = ndimage.distance_transform_edt(np.pad(brain, 1), sampling=SPACING_MM)[1:-1, 1:-1, 1:-1]
    outer_csf = brain & (depth <= 2.0)
    cortex = brain & (depth > 2.0) & (depth <= 6.0)
    ventricles = _ellipsoid(centre, (7, 20, 9))
    deep_gm = (_ellipsoid(centre + (-16, 0, 0), (6, 9, 7)) | _ellipsoid(centre + (16, 0, 0), (6, 9, 7))) & brain
    vent_distance = ndimage.distance_transform_edt(~ventricles, sampling=SPACING_MM)
    rim = brain & ~ventricles & (vent_distance <= 1.5) & ~deep_gm
    lesions = np.zeros(SHAPE, bool)
    for offset, radius in (((-30, 25, 10), 4.5), ((30, -25, 12), 4.5), ((25, 30, -10), 4.0), ((0, 22, 9), 5.0)):
        lesions |= _ellipsoid(centre + offset, (radius,) * 3)
    lesions &= brain & ~outer_csf & ~cortex & ~ventricles & ~deep_gm
    flair = np.where(brain, 1.0, 0.0)
    flair[cortex | deep_gm] = 1.3
    flair[ventricles | outer_csf] = 0.1
    flair[rim] += 0.35
    flair[lesions] = 1.9
    t1 = np.where(brain, 1.0, 0.0)
    t1[cortex | deep_gm] = 0.62
    t1[ventricles | outer_csf] = 0.2
    t1[lesions] = 0.55
    affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    images = []
    for values in (flair, t1):
        blurred = ndimage.gaussian_filter(values, 0.5) + rng.normal(0.0, 0.025, SHAPE)
        images.append(Image((np.clip(blurred, 0, None) * brain / 1.5).astype(np.float32), affine))
    return ToyBrain(images[0], images[1], brain, lesions, cortex, deep_gm, rim & ~lesions)


def write_toy_cohort(folder: Path, n_scans: int = 2, *, with_t1: bool = True) -> Path:
    """Save toy scans as NIfTI (LPS storage, so native and canonical orders differ) and a manifest.

    Returns the manifest path; columns subject, flair, t1, brain_mask, gold.
    """
    folder.mkdir(parents=True, exist_ok=True)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    rows = []
    for index in range(n_scans):
        toy = make_toy_brain(seed=index)
        subject = f"toy{index + 1}"
        lps = flip.copy()
        lps[:3, 3] = [SHAPE[0] * SPACING_MM, SHAPE[1] * SPACING_MM, -20.0]
        affine = lps @ toy.flair.affine
        (folder / subject).mkdir(exist_ok=True)
        save_image(Image(toy.flair.array[::-1, ::-1] * 1500.0, affine), folder / subject / "flair.nii.gz")
        if with_t1:
            save_image(Image(toy.t1.array[::-1, ::-1] * 900.0, affine), folder / subject / "t1.nii.gz")
        save_mask(Image(toy.brain[::-1, ::-1].astype(np.uint8), affine), folder / subject / "brain.nii.gz")
        save_mask(Image(toy.lesions[::-1, ::-1].astype(np.uint8), affine), folder / subject / "gold.nii.gz")
        rows.append({"subject": subject, "scanner": "toy", "flair": f"{subject}/flair.nii.gz",
                     "t1": f"{subject}/t1.nii.gz" if with_t1 else "", "brain_mask": f"{subject}/brain.nii.gz",
                     "gold": f"{subject}/gold.nii.gz"})
    return write_manifest(pd.DataFrame(rows), folder / "manifest.tsv")


def prepare_toy_cohort(folder: Path, n_scans: int = 2) -> Path:
    """Toy cohort under ``folder/raw``, prepared (no N4, no PNG) into ``folder/work/prepared``; its manifest."""
    manifest = write_toy_cohort(folder / "raw", n_scans)
    return prepare_manifest(manifest, folder / "work" / "prepared", options=PrepareOptions(n4=False, qc_png=False)).manifest
