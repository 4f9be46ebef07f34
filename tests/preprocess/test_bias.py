"""N4 removes a smooth multiplicative bias field."""

from __future__ import annotations

import numpy as np

from wmhkit.io.image import Image
from wmhkit.preprocess.bias import N4Settings, n4_bias_correct, shrink_factors


def _coefficient_of_variation(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def test_n4_reduces_a_synthetic_bias(ellipsoid):
    shape = (40, 40, 24)
    uniform = ellipsoid(shape, 0.8).astype(bool)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    bias = np.exp(0.35 * x - 0.25 * y + 0.2 * z)  # smooth, ±40 % across the object
    noise = np.random.default_rng(0).normal(1.0, 0.01, shape)
    flair = np.where(uniform, 100.0 * bias * noise, 0.0).astype(np.float32)
    image = Image(flair, np.diag([2.0, 2.0, 2.0, 1.0]))

    corrected = n4_bias_correct(image, settings=N4Settings(shrink_factor=4))

    before = _coefficient_of_variation(flair[uniform])
    after = _coefficient_of_variation(corrected.array[uniform])
    assert before > 0.1
    assert after < 0.5 * before
    assert corrected.array.dtype == np.float32 and corrected.same_grid(image)
    again = n4_bias_correct(image, settings=N4Settings(shrink_factor=4))
    assert np.array_equal(corrected.array, again.array)  # deterministic


def test_shrink_factors_follow_spacing():
    assert shrink_factors((1.0, 1.0, 1.0), (180, 220, 180), 4) == [4, 4, 4]
    assert shrink_factors((0.5, 0.5, 5.0), (400, 400, 30), 4) == [8, 8, 1]
    assert shrink_factors((1.0, 1.0, 1.0), (12, 10, 1), 4) == [3, 2, 1]
