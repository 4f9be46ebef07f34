"""``data.background_fraction``: lesion-free brain blocks mixed into the training slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from wmhkit.io.image import Image
from wmhkit.io.nifti import save_image, save_mask
from wmhkit.train.config import ConfigError, DataConfig, load_config
from wmhkit.train.data import LabelSource, background_blocks, epoch_order, load_slice_set
from wmhkit.train.reproducibility import epoch_generator

PATCH = 16
#: 8 × 8 × 1 blocks of 16³: the brain fills columns 0–5 (48 blocks), columns 6–7 are air.
SHAPE = (8 * PATCH, 8 * PATCH, PATCH)


def _scan(root: Path) -> LabelSource:
    """A FLAIR whose brain (x < 96) holds 8 lesion blocks, each lesion spanning every slice of its block."""
    flair = np.zeros(SHAPE, np.float32)
    flair[: 6 * PATCH] = 0.4
    gold = np.zeros(SHAPE, np.uint8)
    for j in range(8):  # blocks (0, j): a lesion rod through the whole block along every axis
        block = (slice(0, PATCH), slice(j * PATCH, (j + 1) * PATCH), slice(0, PATCH))
        rod = np.zeros((PATCH,) * 3, np.uint8)
        rod[4:8, 4:8, :] = rod[4:8, :, 4:8] = rod[:, 4:8, 4:8] = 1
        gold[block] = rod
    flair[gold == 1] = 0.9
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    save_image(Image(flair, affine), root / "flair.nii.gz")
    save_mask(Image(gold, affine), root / "gold.nii.gz")
    return LabelSource("s1", root / "flair.nii.gz", (root / "gold.nii.gz",), "single")


def _has_lesion(labels: np.ndarray) -> np.ndarray:
    return (labels == 1).any(axis=(1, 2))


@pytest.mark.parametrize("plane", ["axial", "sagittal", "coronal"])
def test_half_of_each_epoch_is_lesion_free_brain_with_fraction_one_half(tmp_path: Path, plane: str) -> None:
    source = _scan(tmp_path)
    data = DataConfig(pad_shape=SHAPE, patch_size=PATCH, background_fraction=0.5)
    slices = load_slice_set([source], data, plane)
    assert len(slices) == 16 * PATCH  # 8 lesion blocks + 8 background blocks
    background = ~_has_lesion(slices.labels)
    assert background.sum() == 8 * PATCH
    # every background slice is lesion-free brain: at least half of it inside the (non-zero) brain
    assert np.all((slices.images[background] != 0).mean(axis=(1, 2)) >= 0.5)
    order = epoch_order(len(slices), epoch_generator(4, 0, 0, 0, 0), slices_per_epoch=96)
    assert 0.35 < (~_has_lesion(slices.labels[order])).mean() < 0.65


def test_fraction_zero_keeps_only_lesion_blocks(tmp_path: Path) -> None:
    slices = load_slice_set([_scan(tmp_path)], DataConfig(pad_shape=SHAPE, patch_size=PATCH), "axial")
    assert len(slices) == 8 * PATCH
    assert _has_lesion(slices.labels).all()


def test_background_blocks_are_spread_over_the_brain_and_capped_by_what_exists() -> None:
    images = np.zeros((10, 2, 2, 2), np.float32)
    images[:8] = 1.0  # blocks 8 and 9 are air
    images[7, 0] = 0.0  # half inside the brain: still a candidate
    labels = np.zeros((10, 2, 2, 2), np.uint8)
    labels[[0, 3], 0, 0, 0] = 1  # lesion blocks
    labels[5, 0, 0, 0] = 2  # ignored label only: lesion-free
    assert background_blocks(images, labels, 2, 0.0).size == 0
    np.testing.assert_array_equal(background_blocks(images, labels, 2, 0.5), [1, 7])
    np.testing.assert_array_equal(background_blocks(images, labels, 2, 0.6), [1, 4, 7])
    np.testing.assert_array_equal(background_blocks(images, labels, 2, 0.9), [1, 2, 4, 5, 6, 7])


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, "half"])
def test_background_fraction_outside_zero_one_is_rejected(tmp_path: Path, value: object) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"background_fraction": value},
                                    "stages": [{"labels": "gold"}]}))
    with pytest.raises(ConfigError, match="background_fraction"):
        load_config(path)


def test_default_fraction_leaves_the_config_hash_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"stages": [{"labels": "gold"}]}))
    assert "background_fraction" not in load_config(path).identity()["data"]
    path.write_text(yaml.safe_dump({"data": {"background_fraction": 0.3}, "stages": [{"labels": "gold"}]}))
    assert load_config(path).identity()["data"]["background_fraction"] == 0.3
