"""WMH generator: burden by stage and age, volume calibration, WM-only lesions, lesion library."""

import nibabel as nib
import numpy as np
import pytest

from wmhkit.errors import InputError
from wmhkit.synth.lesions import generate_lesions, lesion_library_files, target_burden_ml
from wmhkit.synth.template import load_template


def test_burden_grows_with_stage_and_age():
    rng = np.random.default_rng(0)
    median = {stage: np.median([target_burden_ml(stage, 72.0, rng) for _ in range(300)]) for stage in ("CN", "MCI", "AD")}
    assert median["CN"] < median["MCI"] < median["AD"]
    young = np.median([target_burden_ml("CN", 60.0, rng) for _ in range(300)])
    old = np.median([target_burden_ml("CN", 85.0, rng) for _ in range(300)])
    assert old > 2.5 * young  # 5 %/year over 25 years ≈ 3.5×


@pytest.mark.parametrize("burden_ml", [1.0, 6.0, 20.0])
def test_generated_volume_matches_the_burden(burden_ml):
    template = load_template(3.0)
    lesions = generate_lesions(template, burden_ml, np.random.default_rng(3))
    volume_ml = float((lesions.fraction >= 0.5).sum()) * template.voxel_volume_ml  # the gold rule
    assert volume_ml == pytest.approx(burden_ml, rel=0.25)
    assert lesions.parameters["total_ml"] == pytest.approx(volume_ml, abs=1e-3)
    assert lesions.parameters["periventricular_ml"] > 0 and lesions.parameters["deep_ml"] > 0


def test_lesions_lie_in_white_matter_with_faint_to_bright_contrast():
    template = load_template(3.0)
    lesions = generate_lesions(template, 15.0, np.random.default_rng(4))
    assert np.all(lesions.fraction <= np.clip(template.wm * 1.25, 0, 1) + 1e-6)
    assert np.all(lesions.signal <= 1.3 * lesions.fraction + 1e-6)
    contrast = lesions.signal[lesions.fraction > 0.9] / lesions.fraction[lesions.fraction > 0.9]
    assert contrast.min() < 0.5 < contrast.max()  # some faint, some bright
    assert lesions.fraction[template.ventricles].max() < 0.5  # never inside the ventricles


def test_stage_orders_generated_lesion_volume():
    template = load_template(3.0)
    volumes = {}
    for stage in ("CN", "MCI", "AD"):
        rng = np.random.default_rng(11)
        volumes[stage] = np.mean([
            (generate_lesions(template, target_burden_ml(stage, 72.0, rng), rng).fraction >= 0.5).sum()
            for _ in range(8)
        ])
    assert volumes["CN"] < volumes["MCI"] < volumes["AD"]


def test_library_lesions_are_mapped_through_world_coordinates(tmp_path):
    # A 182×218×182 MNI-space mask (flipped x axis, like FSL's MNI152) with one 8 mm cube in left WM.
    affine = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
    mask = np.zeros((182, 218, 182), np.uint8)
    centre_mm = np.array([-26.0, -10.0, 26.0])
    centre_voxel = np.rint(np.linalg.solve(affine[:3, :3], centre_mm - affine[:3, 3])).astype(int)
    mask[tuple(slice(c - 4, c + 4) for c in centre_voxel)] = 1
    library = tmp_path / "library"
    library.mkdir()
    nib.save(nib.Nifti1Image(mask, affine), library / "case01.nii.gz")
    files = lesion_library_files(library)
    template = load_template(3.0)
    sides = set()
    for seed in range(6):
        lesions = generate_lesions(template, 1.5, np.random.default_rng(seed), files)
        assert lesions.parameters["library_ml"] > 0.3
        library_part = np.where(template.ventricle_distance_mm > 8, lesions.fraction, 0) > 0.5
        world = template.affine[:3, :3] @ np.argwhere(library_part).T + template.affine[:3, 3:4]
        near = np.linalg.norm(np.abs(world) - np.abs(centre_mm)[:, None], axis=0) < 8.0
        assert near.any(), seed
        sides.update(np.sign(world[0, near]).tolist())
        assert lesions.parameters["library_file"] == "case01.nii.gz"
    assert sides == {-1.0, 1.0}  # mirrored left-right in some subjects


def test_missing_or_empty_library_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        lesion_library_files(tmp_path / "nope")
    with pytest.raises(InputError, match="no .nii"):
        lesion_library_files(tmp_path)
