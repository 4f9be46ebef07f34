"""The MNI atlas on a scan: tissue priors from nilearn's ICBM152 2009a maps."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from wmhkit.bronze.atlas import PRIOR_CONFIDENCE, mni_template, tissue_priors
from wmhkit.io.image import Image


def _world_voxel(image: Image, mm: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(int(round(v)) for v in np.linalg.solve(image.affine, [*mm, 1.0])[:3])


def test_priors_on_the_template_itself_put_wm_in_the_centrum_semiovale_and_gm_in_cortex():
    template, brain = mni_template()
    priors = tissue_priors(template, brain, sitk.Transform())  # identity: the template's own grid
    total = priors["csf"] + priors["gm"] + priors["wm"]
    assert np.allclose(total[brain], 1.0, atol=1e-5)
    assert not total[~brain].any()
    assert priors["wm"][_world_voxel(template, (-26.0, -10.0, 30.0))] > 0.7  # left centrum semiovale
    assert priors["gm"][_world_voxel(template, (-4.0, -80.0, 8.0))] > 0.5  # calcarine cortex
    assert priors["csf"][_world_voxel(template, (-10.0, 0.0, 20.0))] > 0.5  # lateral ventricle
    # the atlas never rules a tissue out: at least the uniform share is left
    floor = (1.0 - PRIOR_CONFIDENCE) / 3.0
    assert min(float(priors[t][brain].min()) for t in priors) == pytest.approx(floor, abs=1e-5)
