"""The template registration is bit-reproducible whatever ITK's default thread count."""

from __future__ import annotations

import numpy as np

from wmhkit.bronze.atlas import mni_template, mni_transform
from wmhkit.io.image import Image
from wmhkit.itk_threads import itk_threads


def test_affine_registration_gives_the_same_transform_on_every_run_with_many_threads():
    template, brain = mni_template()
    shifted = template.affine.copy()
    shifted[:3, 3] += (4.0, -3.0, 2.0)
    scan = Image(template.array, shifted)
    with itk_threads(4):  # the metric's sums would be added in a varying order without the pinning
        runs = [np.array(mni_transform(scan, brain).GetParameters()) for _ in range(3)]
    assert all(np.array_equal(runs[0], run) for run in runs[1:])
