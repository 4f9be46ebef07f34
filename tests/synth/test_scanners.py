"""Scanner grids: orientation on disk, obliquity, voxel size; stored data types."""

import nibabel as nib
import numpy as np
import pytest

from wmhkit.errors import InputError
from wmhkit.synth.acquire import scanner_grid
from wmhkit.synth.scanners import SCANNER_PROFILES, scanner_profile
from wmhkit.synth.storage import stored_values


@pytest.mark.parametrize(("name", "codes", "oblique"), [
    ("A", ("R", "A", "S"), False), ("B", ("L", "P", "S"), False), ("C", ("R", "A", "S"), True),
    ("D", ("L", "P", "S"), False), ("E", ("L", "P", "S"), True),
])
def test_profile_grid_orientation(name, codes, oblique):
    _, affine = scanner_grid(SCANNER_PROFILES[name])
    assert nib.aff2axcodes(affine) == codes
    off_diagonal = np.abs(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))).max()
    assert (off_diagonal > 0.1) == oblique


def test_grid_spacing_comes_from_the_profile_and_scale():
    profile = SCANNER_PROFILES["B"]
    shape, affine = scanner_grid(profile, scale=2.0)
    assert np.allclose(np.linalg.norm(affine[:3, :3], axis=0), [1.8, 1.8, 6.0])
    assert shape == (128, 128, 25)  # 230 × 230 × 150 mm field of view kept
    centre = affine[:3, :3] @ ((np.array(shape) - 1) / 2) + affine[:3, 3]
    assert np.allclose(centre, 0.0)  # centred on the isocentre


def test_profiles_cover_the_required_variety():
    profiles = SCANNER_PROFILES.values()
    assert len(SCANNER_PROFILES) >= 5
    assert {p.dtype for p in profiles} >= {"float32", "uint16", "int16", "uint8"}
    assert {p.two_d for p in profiles} == {True, False}
    assert sum(p.fat_suppressed for p in profiles) == 1
    assert all(p.flair.gm > 1.0 and p.flair.csf < 0.2 for p in profiles)  # GM > WM, CSF suppressed


def test_stored_values_round_and_clip_to_the_dtype():
    values = np.array([-5.4, 0.4, 0.6, 70000.0])
    assert stored_values(values, "uint16").tolist() == [0, 0, 1, 65535]
    assert stored_values(values, "int16").tolist() == [-5, 0, 1, 32767]
    assert stored_values(values, "float32").dtype == np.float32
    with pytest.raises(ValueError, match="dtype"):
        stored_values(values, "int64")


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(InputError, match="A, B, C, D, E"):
        scanner_profile("Z")


def test_random_profiles_span_the_clinical_range_and_repeat_per_seed():
    from wmhkit.synth.scanners import random_profile

    profiles = [random_profile(np.random.default_rng([0, index, 1])) for index in range(200)]
    assert random_profile(np.random.default_rng([0, 5, 1])) == profiles[5]
    two_d = [p for p in profiles if p.two_d]
    assert 0.4 < len(two_d) / len(profiles) < 0.8
    in_plane = np.array([p.spacing_mm[0] for p in two_d])
    slices = np.array([p.spacing_mm[2] for p in two_d])
    assert in_plane.min() < 0.55 and in_plane.max() > 1.1 and slices.min() < 2.5 and slices.max() > 7.5
    assert all(max(p.spacing_mm) <= 1.5 for p in profiles if not p.two_d)
    assert {p.dtype for p in profiles} == {"float32", "uint16", "int16", "uint8"}
    assert {p.orientation for p in profiles} == {"RAS", "LPS"}
    assert 0 < sum(p.fat_suppressed for p in profiles) < 100 and 0 < sum(p.skull_stripped for p in profiles) < 100
    assert all(p.flair.gm > 1.0 and p.flair.csf < 0.3 and p.flair.lesion > 0 for p in profiles)
