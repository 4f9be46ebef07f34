"""Intensity normalisation inside the brain."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.errors import MaskError
from wmhkit.preprocess.normalize import (
    intensity_range,
    normalise_intensity,
    rescale_to_unit,
)


@pytest.fixture
def flair_and_brain():
    rng = np.random.default_rng(3)
    flair = rng.gamma(4.0, 25.0, size=(20, 20, 10)).astype(np.float32)
    brain = np.zeros(flair.shape, np.uint8)
    brain[4:16, 4:16, 2:8] = 1
    flair[brain == 0] += 1000.0  # bright skull outside the brain must not set the scale
    return flair, brain


def test_percentile_maps_p0_to_0_and_p98_to_1_without_clipping_the_bright_tail(flair_and_brain):
    flair, brain = flair_and_brain
    inside = flair[brain > 0]
    p0, p98 = np.percentile(inside, [0, 98])
    out = normalise_intensity(flair, brain)
    assert out.dtype == np.float32
    linear = (flair.astype(np.float64) - p0) / (p98 - p0)
    assert np.allclose(out[brain > 0], linear[brain > 0], atol=1e-6)  # one linear map, bright tail included
    assert out[flair == inside.min()][0] == 0.0
    brightest = inside.max()
    assert out[flair == brightest][0] == pytest.approx((brightest - p0) / (p98 - p0), rel=1e-6)
    assert out[flair == brightest][0] > 1.2  # the top 2 % keep their excess over 1
    assert np.mean(out[brain > 0] > 1.0) == pytest.approx(0.02, abs=0.005)
    assert len(np.unique(out[out > 1.0])) == np.sum(out > 1.0)  # none saturated to one value
    assert np.all(out[brain == 0] == 0.0)


def test_raised_lower_percentile_clips_below_at_zero(flair_and_brain):
    flair, brain = flair_and_brain
    inside = flair[brain > 0]
    p10, p98 = np.percentile(inside, [10, 98])
    out = normalise_intensity(flair, brain, percentiles=(10.0, 98.0))
    assert out.min() == 0.0
    assert np.mean(out[brain > 0] == 0.0) == pytest.approx(0.10, abs=0.01)
    middle = (inside > p10) & (inside < p98)
    assert np.allclose(out[brain > 0][middle], ((inside[middle] - p10) / (p98 - p10)), atol=1e-6)


def test_rescale_clips_high_only_when_asked():
    values = np.array([[[0.0, 5.0, 10.0, 20.0]]], np.float32)
    brain = np.ones_like(values, np.uint8)
    assert rescale_to_unit(values, brain, 0.0, 10.0).ravel().tolist() == [0.0, 0.5, 1.0, 2.0]
    assert rescale_to_unit(values, brain, 0.0, 10.0, clip_high=True).ravel().tolist() == [0.0, 0.5, 1.0, 1.0]


def test_minmax_uses_the_brain_extremes(flair_and_brain):
    flair, brain = flair_and_brain
    inside = flair[brain > 0]
    out = normalise_intensity(flair, brain, method="minmax")
    assert intensity_range(flair, brain, method="minmax") == (float(inside.min()), float(inside.max()))
    assert np.sum(out[brain > 0] == 1.0) == 1
    mid = (flair - inside.min()) / (inside.max() - inside.min())
    assert np.allclose(out[brain > 0], mid[brain > 0], atol=1e-6)


def test_empty_or_constant_brain_raises(flair_and_brain):
    flair, brain = flair_and_brain
    with pytest.raises(MaskError, match="empty"):
        normalise_intensity(flair, np.zeros_like(brain))
    with pytest.raises(MaskError, match="constant"):
        normalise_intensity(np.ones_like(flair), brain)
    with pytest.raises(ValueError, match="normalisation must be"):
        normalise_intensity(flair, brain, method="zscore")
