"""Subject anatomy: ageing and stage enlarge the ventricles through the mapping to the template."""

import numpy as np
import pytest

from wmhkit.synth.anatomy import AnatomyParameters, atrophy_index, draw_anatomy, template_voxel_coordinates
from wmhkit.synth.template import load_template


def _ventricle_fraction(expansion: float) -> float:
    template = load_template(3.0)
    anatomy = AnatomyParameters((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), expansion, 0.0, 0.0)
    index = np.indices(template.shape).reshape(3, -1).astype(np.float32)
    world = (template.affine[:3, :3] @ index + template.affine[:3, 3:4]).astype(np.float32)
    world -= template.brain_centre_mm.astype(np.float32)[:, None]  # the brain centre sits at the isocentre
    coordinates = np.rint(template_voxel_coordinates(world, anatomy, template)).astype(int)
    inside = np.all((coordinates >= 0) & (coordinates < np.array(template.shape)[:, None]), axis=0)
    hits = template.ventricles[tuple(coordinates[:, inside])]
    return float(hits.sum()) / coordinates.shape[1]


def test_identity_anatomy_maps_the_template_onto_itself():
    unchanged = _ventricle_fraction(0.0)
    template = load_template(3.0)
    assert unchanged == pytest.approx(template.ventricles.mean(), rel=1e-6)


def test_ventricular_expansion_enlarges_the_ventricles():
    assert _ventricle_fraction(0.4) > 1.4 * _ventricle_fraction(0.0)


def test_atrophy_grows_with_age_and_stage():
    assert atrophy_index("CN", 60) < atrophy_index("CN", 80)
    assert atrophy_index("CN", 70) < atrophy_index("MCI", 70) < atrophy_index("AD", 70)
    young = [draw_anatomy("CN", 60, np.random.default_rng(i)).ventricle_expansion for i in range(20)]
    old_ad = [draw_anatomy("AD", 85, np.random.default_rng(i)).ventricle_expansion for i in range(20)]
    assert np.mean(old_ad) > np.mean(young) + 0.1


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="stage"):
        atrophy_index("XYZ", 70)
