"""Tiny analytic scans for the prepare-stage tests, served as fixtures.

Tests run with ``--import-mode=importlib``, so helpers reach them as fixtures
returning the helper (``ellipsoid``, ``head_phantom``, ``write_scan``,
``write_manifest_tsv``) or the data (``affines``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wmhkit.io.image import Image
from wmhkit.io.nifti import save_image, save_mask


def _ellipsoid(shape: tuple[int, int, int], fraction: float = 0.7) -> np.ndarray:
    """uint8 ellipsoid filling ``fraction`` of each half-axis, centred in ``shape``."""
    grid = np.meshgrid(*[np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in shape], indexing="ij")
    return (sum(g**2 for g in grid) <= fraction**2).astype(np.uint8)


def _rotation_z(degrees: float) -> np.ndarray:
    """4×4 rotation about the z axis."""
    angle = np.deg2rad(degrees)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return rotation


#: Storage orientations of RELIABILITY.md: RAS, LAS, LPS and a 20° oblique, with odd spacings.
_AFFINES: dict[str, np.ndarray] = {
    "RAS": np.diag([1.0, 1.2, 2.5, 1.0]),
    "LAS": np.diag([-1.0, 1.2, 2.5, 1.0]),
    "LPS": np.diag([-0.9, -0.9, 3.0, 1.0]),
    "oblique20": _rotation_z(20.0) @ np.diag([1.0, 1.1, 2.0, 1.0]),
}
for _name, _affine in _AFFINES.items():
    _affine[:3, 3] = [-12.5, 7.25, -30.0]


def _head_phantom(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(flair, brain_mask)``: a noisy bright ellipsoid (brain) in a dim shell on dark air.

    The brain holds intensities 100 ± 5 with a few brighter 'lesion' voxels.
    """
    rng = np.random.default_rng(seed)
    head = _ellipsoid(shape, 0.9)
    brain = _ellipsoid(shape, 0.6)
    flair = 5.0 + 40.0 * head + 60.0 * brain + rng.normal(0.0, 5.0, shape) * head
    flair[tuple(s // 2 for s in shape)] += 80.0
    return np.clip(flair, 0.0, None).astype(np.float32), brain


def _write_scan(folder: Path, affine: np.ndarray, shape: tuple[int, int, int], seed: int = 0,
               gold: bool = True) -> dict[str, Path]:
    """Write a :func:`_head_phantom` scan into ``folder``: role → file (flair, brain_mask, gold).

    The gold mask has one lesion voxel (1) at the centre and one 'other pathology'
    voxel (2) beside it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    flair, brain = _head_phantom(shape, seed)
    files = {
        "flair": save_image(Image(flair, affine), folder / "flair.nii.gz"),
        "brain_mask": save_mask(Image(brain, affine), folder / "brain.nii.gz"),
    }
    if gold:
        labels = np.zeros(shape, np.uint8)
        centre = tuple(s // 2 for s in shape)
        labels[centre] = 1
        labels[(centre[0] + 1, *centre[1:])] = 2
        files["gold"] = save_mask(Image(labels, affine), folder / "gold.nii.gz")
    return files


def _write_manifest_tsv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write a manifest with the union of the rows' columns (in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["\t".join(columns)] + ["\t".join(row.get(c, "") for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def ellipsoid():
    return _ellipsoid


@pytest.fixture
def head_phantom():
    return _head_phantom


@pytest.fixture
def write_scan():
    return _write_scan


@pytest.fixture
def write_manifest_tsv():
    return _write_manifest_tsv


@pytest.fixture
def affines() -> dict[str, np.ndarray]:
    """Copies of the storage orientations (RAS, LAS, LPS, oblique20)."""
    return {name: affine.copy() for name, affine in _AFFINES.items()}
