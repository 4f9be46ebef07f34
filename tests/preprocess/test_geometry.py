"""Exact round trips native → canonical → crop → native, in every storage orientation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from wmhkit.errors import GeometryError, MaskError
from wmhkit.io.image import Image
from wmhkit.preprocess.crop import VoxelBox, brain_box, crop, fixed_shape_box, uncrop
from wmhkit.preprocess.geometry import NativeGeometry, native_geometry, on_prepared_grid, to_native, to_prepared
from wmhkit.preprocess.orientation import from_canonical, to_canonical

ORIENTATIONS = ("RAS", "LAS", "LPS", "oblique20")
SHAPES = [(13, 17, 7), (9, 8, 1)]


def _labels(shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 labels 0/1/2, random, so that any wrong flip or permutation is visible."""
    rng = np.random.default_rng(sum(shape))
    labels = (rng.random(shape) * 3).astype(np.uint8)
    labels[0, 0, 0] = 0  # a corner of background so that the brain box is not the whole grid
    return labels


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_is_exact(orientation, shape, affines):
    native = Image(_labels(shape), affines[orientation])
    canonical, ornt = to_canonical(native)
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    box = brain_box(canonical.with_array(canonical.array > 0), margin_mm=1.0)
    geometry = native_geometry(native, ornt, box)
    # the record survives JSON exactly
    geometry = NativeGeometry.from_dict(json.loads(json.dumps(geometry.to_dict())))
    prepared = crop(canonical, box)
    assert np.allclose(prepared.affine, geometry.prepared_affine, atol=1e-9)
    back = to_native(prepared, geometry)
    assert back.array.dtype == np.uint8
    assert back.shape == native.shape
    assert np.array_equal(back.array, native.array)
    assert np.array_equal(back.affine, native.affine)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_reorientation_keeps_world_positions(orientation, affines):
    native = Image(_labels((11, 6, 5)), affines[orientation])
    canonical, ornt = to_canonical(native)
    index = np.argwhere(native.array == 2)[0]
    world = native.affine @ [*index, 1]
    canonical_index = np.linalg.solve(canonical.affine, world)[:3].round().astype(int)
    assert canonical.array[tuple(canonical_index)] == 2
    assert np.array_equal(from_canonical(canonical, ornt).array, native.array)


def test_fixed_shape_box_pads_and_uncrops_exactly(affines):
    image = Image(_labels((13, 17, 7)), affines["LPS"])
    box = fixed_shape_box(brain_box(image, margin_mm=0.0), (20, 18, 10))
    padded = crop(image, box)
    assert padded.shape == (20, 18, 10)
    assert padded.array.sum() == image.array.sum()
    restored = uncrop(padded, box)
    assert np.array_equal(restored.array, image.array)
    assert np.allclose(restored.affine, image.affine, atol=1e-9)


def test_fixed_shape_smaller_than_brain_raises():
    image = Image(np.ones((10, 10, 10), np.uint8), np.eye(4))
    with pytest.raises(GeometryError, match="larger than the fixed shape"):
        fixed_shape_box(brain_box(image), (8, 10, 10))


def test_brain_box_margin_is_in_mm():
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[10:20, 10:20, 10:20] = 1
    box = brain_box(Image(mask, np.diag([1.0, 2.0, 5.0, 1.0])), margin_mm=4.0)
    assert box == VoxelBox((6, 8, 9), (24, 22, 21), (30, 30, 30))


def test_empty_mask_has_no_box():
    with pytest.raises(MaskError, match="empty"):
        brain_box(Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)))


def test_to_native_rejects_an_image_on_another_grid(affines):
    native = Image(_labels((13, 17, 7)), affines["LAS"])
    canonical, ornt = to_canonical(native)
    box = brain_box(canonical, margin_mm=0.0)
    geometry = native_geometry(native, ornt, box)
    wrong = Image(np.zeros(box.shape, np.uint8), np.eye(4))
    with pytest.raises(GeometryError, match="prepared grid"):
        to_native(wrong, geometry)
    with pytest.raises(GeometryError, match="native grid"):
        to_prepared(Image(np.zeros((13, 17, 8), np.uint8), affines["LAS"]), geometry)
    assert np.array_equal(to_prepared(native, geometry).array, crop(canonical, box).array)


@pytest.mark.parametrize("orientation", ["LPS", "oblique20"])
def test_labels_from_either_grid_land_on_the_prepared_grid(orientation, affines):
    native = Image(_labels((13, 17, 7)), affines[orientation])
    canonical, ornt = to_canonical(native)
    brain = np.zeros(canonical.shape, np.uint8)
    brain[3:-3, 3:-3, 1:-1] = 1  # a brain box smaller than the grid, so the two grids differ
    box = brain_box(canonical.with_array(brain), margin_mm=0.0)
    geometry = native_geometry(native, ornt, box)
    prepared = crop(canonical, box)
    assert prepared.shape != native.shape
    from_native = on_prepared_grid(native, prepared, geometry, "bronze.nii.gz")
    assert np.array_equal(from_native.array, prepared.array)
    assert from_native.same_grid(prepared)
    assert on_prepared_grid(prepared, prepared, None, "gold.nii.gz") is prepared
    with pytest.raises(GeometryError, match="bronze.nii.gz"):
        on_prepared_grid(native, prepared, None, "bronze.nii.gz")  # no record: native grid unknown
    with pytest.raises(GeometryError, match="neither"):
        on_prepared_grid(Image(native.array, affines["RAS"]), prepared, geometry, "other.nii.gz")
