"""Lesions of a library mask transplanted into a skull-stripped FLAIR."""

import nibabel as nib
import numpy as np
import pytest

from wmhkit.io.image import Image
from wmhkit.synth.transplant import CONTRAST_LIMITS, transplant_lesions

AFFINE = np.array([[1.0, 0, 0, -20.0], [0, 1.0, 0, -20.0], [0, 0, 1.0, -20.0], [0, 0, 0, 1]])
SHAPE = (40, 40, 40)


def _ball(centre, radius):
    grid = np.indices(SHAPE, dtype=np.float64)
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre))) <= radius


@pytest.fixture
def host():
    """A brain of tissue level 100 (±2 % noise) with a dark ventricle and a host lesion."""
    rng = np.random.default_rng(0)
    brain = _ball((20, 20, 20), 17)
    values = np.where(brain, 100.0 * (1 + 0.02 * rng.standard_normal(SHAPE)), 0.0)
    values[_ball((20, 20, 20), 4)] = 20.0  # ventricle (CSF)
    lesion = _ball((20, 28, 20), 2)
    values[lesion] = 140.0
    return Image(values.astype(np.float32), AFFINE), Image(lesion.astype(np.uint8), AFFINE)


def test_transplanted_lesions_are_bright_labelled_and_kept_off_csf(host, tmp_path):
    flair, gold = host
    library = np.zeros(SHAPE, np.uint8)
    library[_ball((20, 10, 20), 3)] = 1  # in tissue
    library[_ball((20, 20, 20), 3)] = 1  # inside the ventricle
    path = tmp_path / "donor.nii.gz"
    nib.save(nib.Nifti1Image(library, AFFINE), path)

    new_flair, new_gold, added_ml = transplant_lesions(flair, gold, path, np.random.default_rng(1))

    in_tissue, in_csf = _ball((20, 10, 20), 2), _ball((20, 20, 20), 3)
    assert new_gold.array[in_tissue].all() and not new_gold.array[in_csf].any()
    assert new_gold.array[gold.array == 1].all(), "the host's own lesions stay in the mask"
    ratio = new_flair.array[in_tissue].mean() / 100.0
    assert CONTRAST_LIMITS[0] - 0.05 <= ratio <= CONTRAST_LIMITS[1]
    np.testing.assert_array_equal(new_flair.array[in_csf], flair.array[in_csf])
    far = ~_ball((20, 10, 20), 6) & ~_ball((20, 20, 20), 6)
    np.testing.assert_allclose(new_flair.array[far], flair.array[far], rtol=1e-6)
    assert new_flair.array[flair.array == 0].max() == 0, "nothing is drawn outside the brain"
    assert added_ml == pytest.approx(new_gold.array.sum() / 1000 - gold.array.sum() / 1000)
    assert 0.08 < added_ml < 0.15  # the 3 mm ball (0.113 mL) only


def test_mirror_moves_lesions_to_the_other_hemisphere(host, tmp_path):
    flair, gold = host
    library = np.zeros(SHAPE, np.uint8)
    library[_ball((10, 20, 20), 3)] = 1  # world x = -10 mm
    path = tmp_path / "donor.nii.gz"
    nib.save(nib.Nifti1Image(library, AFFINE), path)
    _, mirrored, _ = transplant_lesions(flair, gold, path, np.random.default_rng(1), mirror=True)
    assert mirrored.array[_ball((30, 20, 20), 2)].all() and not mirrored.array[_ball((10, 20, 20), 3)].any()
