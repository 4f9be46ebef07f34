"""Patch and slice helpers."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.preprocess.patches import (
    crop_to_shape,
    extract_patches,
    keep_lesion_patches,
    pad_to_shape,
    slices_along,
)


def test_patches_cover_the_volume():
    volume = np.arange(70 * 40 * 5, dtype=np.float32).reshape(70, 40, 5) + 1
    patches, origins = extract_patches(volume, patch_size=32, stride=32)
    assert patches.shape == (len(origins), 32, 32, 32)
    covered = np.zeros(volume.shape, bool)
    for patch, (x, y, z) in zip(patches, origins):
        part = volume[x : x + 32, y : y + 32, z : z + 32]
        assert np.array_equal(patch[: part.shape[0], : part.shape[1], : part.shape[2]], part)
        covered[x : x + 32, y : y + 32, z : z + 32] = True
    assert covered.all()
    assert sorted({int(o) for o in origins[:, 0]}) == [0, 32, 38]  # last patch flush with the end
    assert np.all(origins[:, 2] == 0)  # 5 slices < 32: one zero-padded patch along z


def test_keep_lesion_patches_keeps_only_lesion_patches():
    volume = np.ones((64, 64, 64), np.float32)
    labels = np.zeros(volume.shape, np.uint8)
    labels[40, 5, 5] = 1  # one lesion voxel in the patch at (32, 0, 0)
    labels[5, 40, 5] = 2  # other pathology is not lesion
    patches, origins = extract_patches(volume, patch_size=32, stride=32)
    label_patches, _ = extract_patches(labels, patch_size=32, stride=32)
    kept, kept_labels, kept_origins = keep_lesion_patches(patches, label_patches, origins)
    assert kept_origins.tolist() == [[32, 0, 0]]
    assert kept.shape == (1, 32, 32, 32) and kept_labels.sum() == 1
    none = keep_lesion_patches(patches, label_patches, origins, min_lesion_voxels=2)[2]
    assert none.shape == (0, 3)


def test_pad_to_shape_and_back():
    volume = np.random.default_rng(1).random((5, 8, 1))
    padded = pad_to_shape(volume, (8, 8, 4))
    assert padded.shape == (8, 8, 4)
    assert np.array_equal(crop_to_shape(padded, volume.shape), volume)
    assert padded[0].sum() == 0 and padded[:, :, 0].sum() == 0  # padding on both sides
    with pytest.raises(ValueError, match="exceeds the target"):
        pad_to_shape(volume, (4, 8, 4))


def test_slices_along_planes():
    volume = np.zeros((2, 3, 4))
    volume[1, 2, 3] = 1.0
    assert slices_along(volume, "axial").shape == (4, 2, 3)
    assert slices_along(volume, "axial")[3, 1, 2] == 1.0
    assert slices_along(volume, "coronal").shape == (3, 2, 4)
    assert slices_along(volume, "coronal")[2, 1, 3] == 1.0
    assert slices_along(volume, "sagittal")[1, 2, 3] == 1.0
    with pytest.raises(ValueError, match="plane"):
        slices_along(volume, "oblique")
