"""Clinical degradations of a 1 mm scan: slice profile, storage orientation, head, intensity storage."""

import nibabel as nib
import numpy as np
import pytest

from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image
from wmhkit.synth.degrade import (
    STORAGES,
    ClinicalAcquisition,
    add_synthetic_head,
    clinical_grid,
    clinical_variant,
    degrade_mask,
    save_stored_image,
    slice_profile_resample,
    stored_intensities,
)
from wmhkit.synth.head import HeadParameters

#: A 1 mm source grid centred near the world origin (MNI-like placement).
SOURCE_AFFINE = np.array([[1.0, 0, 0, -40.0], [0, 1.0, 0, -45.0], [0, 0, 1.0, -35.0], [0, 0, 0, 1]])
SHAPE = (80, 90, 70)


def _sphere(radius_mm: float, centre=(40.0, 45.0, 35.0)) -> Image:
    grid = np.indices(SHAPE, dtype=np.float64)
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return Image((distance <= radius_mm).astype(np.uint8), SOURCE_AFFINE)


def _world(affine: np.ndarray, voxel) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(voxel, dtype=np.float64) + affine[:3, 3]


@pytest.mark.parametrize("spacing", [(0.9, 0.9, 6.5), (0.45, 0.45, 8.0)])
def test_slice_profile_keeps_lesion_volume(spacing):
    sphere = _sphere(12.0)
    shape, affine = clinical_grid(sphere, ClinicalAcquisition(spacing, "LAS", (12.0, 0.0, 4.0)))
    moved = degrade_mask(sphere, shape, affine)
    before_ml = sphere.array.sum() * sphere.voxel_volume_ml
    after_ml = moved.array.sum() * moved.voxel_volume_ml
    assert before_ml == pytest.approx(7.24, abs=0.15)  # 4/3 π 12³ mm³, voxelised
    assert after_ml == pytest.approx(before_ml, rel=0.15)
    assert moved.array.dtype == np.uint8 and moved.shape == shape


def test_slice_profile_blurs_across_slices_only_as_wide_as_the_slice():
    """A 1 mm sheet perpendicular to the slice axis spreads over about one 6 mm slice, not more."""
    sheet = np.zeros(SHAPE, np.float32)
    sheet[:, :, 35] = 1.0
    thick = slice_profile_resample(Image(sheet, SOURCE_AFFINE), (20, 20, 11), np.array(
        [[1.0, 0, 0, -10.0], [0, 1.0, 0, -10.0], [0, 0, 6.0, -30.0], [0, 0, 0, 1]]))
    profile = thick.array[10, 10, :]
    # Gaussian slice profile of FWHM 6 mm: a 1 mm sheet at the slice centre gives about 1 mm / (1.064 × 6 mm)
    assert profile[5] == pytest.approx(1.0 / (1.0645 * 6.0), rel=0.1)
    assert profile[4] == pytest.approx(profile[6], rel=1e-6)
    assert profile[4] < 0.1 * profile[5]  # one slice away: exp(-0.5 (6 / 2.55)^2) ≈ 0.06 of the peak
    assert profile[3] < 1e-3


@pytest.mark.parametrize(("orientation", "oblique", "codes"), [
    ("LPS", (0.0, 0.0, 0.0), ("L", "P", "S")),
    ("LAS", (0.0, 0.0, 0.0), ("L", "A", "S")),
    ("LAS", (13.0, 0.0, 5.0), ("L", "A", "S")),
])
def test_grid_orientation_and_world_content(orientation, oblique, codes):
    """The affine is the one claimed, and a linear ramp in world mm reads the same through it."""
    grid = np.indices(SHAPE, dtype=np.float64)
    world = np.einsum("ij,j...->i...", SOURCE_AFFINE[:3, :3], grid) + SOURCE_AFFINE[:3, 3, None, None, None]
    ramp = (300.0 + 2.0 * world[0] - 1.5 * world[1] + 0.5 * world[2]).astype(np.float32)
    source = Image(ramp, SOURCE_AFFINE)
    shape, affine = clinical_grid(source, ClinicalAcquisition((0.9, 0.9, 6.5), orientation, oblique, margin_mm=-20.0))
    assert nib.aff2axcodes(affine) == codes
    assert np.allclose(np.linalg.norm(affine[:3, :3], axis=0), (0.9, 0.9, 6.5))
    off_diagonal = np.abs(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))).max()
    assert (off_diagonal > 0.1) == any(oblique)
    moved = slice_profile_resample(source, shape, affine)
    for voxel in [(shape[0] // 2, shape[1] // 2, shape[2] // 2), (shape[0] // 3, 2 * shape[1] // 3, shape[2] // 2 + 1)]:
        x, y, z = _world(affine, voxel)
        assert moved.array[voxel] == pytest.approx(300.0 + 2.0 * x - 1.5 * y + 0.5 * z, abs=0.05)


@pytest.mark.parametrize("name", sorted(STORAGES))
def test_storage_round_trips_within_quantisation(tmp_path, name):
    storage = STORAGES[name]
    values = np.random.default_rng(3).gamma(2.0, 300.0, size=(12, 10, 6)).astype(np.float32)
    values[0] = 0.0  # background
    image = Image(values, np.diag([-0.9, 0.9, 6.5, 1.0]))
    loaded = load_image(save_stored_image(image, tmp_path / f"{name}.nii.gz", storage))
    header = nib.load(tmp_path / f"{name}.nii.gz").header
    assert header.get_data_dtype() == np.dtype(storage.dtype)
    scale = 1.0 if storage.physical_max is None else storage.physical_max / values.max()
    np.testing.assert_allclose(loaded.array, values * scale, atol=storage.slope * 0.51, rtol=1e-6)
    codes, _ = stored_intensities(image, storage)
    if name == "int16-unit":
        assert (codes.min(), codes.max()) == (-32768, 32767) and 0 < storage.slope < 1e-4
    if name == "uint16":
        assert codes.max() == 65535


def test_synthetic_head_surrounds_the_brain_and_keeps_it():
    brain = _sphere(25.0).array.astype(np.float32) * 100.0
    with_head = add_synthetic_head(Image(brain, SOURCE_AFFINE), HeadParameters(1.0, 0.0), pad_mm=20.0)
    pad = 20
    inner = with_head.array[pad:-pad, pad:-pad, pad:-pad]
    np.testing.assert_array_equal(inner[brain > 0], brain[brain > 0])  # brain untouched
    assert np.allclose(with_head.affine[:3, 3], SOURCE_AFFINE[:3, 3] - pad)  # same world position
    centre = np.array([40, 45, 35]) + pad
    ray = with_head.array[centre[0], centre[1], centre[2]:]  # brain, CSF shell, skull, marrow, skull, fat, muscle, air
    outside = ray[26:]
    assert outside.max() == pytest.approx(140.0, rel=0.05)  # scalp fat 1.4 × WM
    assert outside[:2].max() < 10.0  # dark CSF shell right outside the brain
    assert outside[-3:].max() == 0.0  # air beyond the scalp


@pytest.mark.parametrize("head", [None, HeadParameters(1.0, 0.0)])
def test_clinical_variant_of_a_stripped_brain(head):
    brain = _sphere(28.0).array.astype(np.float32) * 80.0
    lesion = _sphere(10.0, centre=(48.0, 45.0, 35.0))
    brain[lesion.array > 0] = 200.0
    acquisition = ClinicalAcquisition((0.9, 0.9, 6.5), "LPS", margin_mm=25.0)
    flair, gold = clinical_variant(Image(brain, SOURCE_AFFINE), lesion, acquisition, head=head,
                                   noise=0.0 if head is None else 0.02, rng=np.random.default_rng(0))
    assert flair.same_grid(gold) and nib.aff2axcodes(flair.affine) == ("L", "P", "S")
    corner = flair.array[:5, :5, :]
    assert (corner == 0).all() if head is None else (corner > 0).all()  # stripped: background exactly 0
    assert gold.array.sum() * gold.voxel_volume_ml == pytest.approx(lesion.array.sum() / 1000.0, rel=0.15)
    assert flair.array[gold.array > 0].mean() > 150.0  # the lesion lands where its mask does


def test_stripped_variant_is_stripped_on_its_own_grid():
    """The slice profile must not blur a skull-stripped brain into the background."""
    brain = _sphere(25.0)
    acquisition = ClinicalAcquisition((0.9, 0.9, 6.5), "LAS", margin_mm=15.0)
    flair, _ = clinical_variant(Image(brain.array.astype(np.float32) * 100.0, SOURCE_AFFINE), brain, acquisition)
    nonzero_ml = np.count_nonzero(flair.array) * flair.voxel_volume_ml
    assert nonzero_ml == pytest.approx(brain.array.sum() / 1000.0, rel=0.1)
