"""The ICBM152 template maps derived for the phantoms (3 mm grid to stay fast)."""

import numpy as np

from wmhkit.synth.template import load_template


def test_template_is_cached_per_resolution():
    assert load_template(3.0) is load_template(3.0)


def test_tissue_fractions_partition_the_brain():
    template = load_template(3.0)
    total = template.gm + template.wm + template.csf
    assert total.min() >= 0.0 and total.max() <= 1.0 + 1e-5
    brain_ml = float(total.sum()) * template.voxel_volume_ml
    assert 1700 < brain_ml < 2000  # ICBM152 brain including its CSF (1886 mL at 1 mm)
    assert template.gm.sum() > template.wm.sum()  # GM outweighs WM in adults


def test_ventricles_are_central_enclosed_csf_of_plausible_volume():
    template = load_template(3.0)
    volume_ml = float(template.ventricles.sum()) * template.voxel_volume_ml
    assert 10.0 < volume_ml < 30.0
    assert abs(template.ventricle_centre_mm[0]) < 3.0  # on the midline
    assert np.all(template.ventricle_distance_mm[template.ventricles] == 0.0)
    assert template.csf[template.ventricles].mean() > 0.5


def test_head_distance_is_zero_inside_brain_and_grows_outwards():
    template = load_template(3.0)
    assert np.all(template.outside_distance_mm[template.wm > 0.5] == 0.0)
    assert template.outside_distance_mm.max() > 10.0  # margin for scalp and skull
