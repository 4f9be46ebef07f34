"""Fusion rules and the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.nn.plane_fusion import FUSION_RULES, binarise, check_threshold, fuse_probabilities

MAPS = [np.array([0.2, 0.9, 0.5, 0.0]), np.array([0.6, 0.9, 0.5, 1.0]), np.array([0.7, 0.0, 0.5, 1.0])]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("mean", [0.5, 0.6, 0.5, 2 / 3]),
        ("median", [0.6, 0.9, 0.5, 1.0]),
        ("max", [0.7, 0.9, 0.5, 1.0]),
        ("geometric_mean", [(0.2 * 0.6 * 0.7) ** (1 / 3), 0.0, 0.5, 0.0]),
    ],
)
def test_rules_give_their_voxelwise_statistic(rule: str, expected: list[float]) -> None:
    fused = fuse_probabilities(MAPS, rule)
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, expected, rtol=1e-6)


def test_median_threshold_is_the_majority_vote_of_three_planes() -> None:
    rng = np.random.default_rng(0)
    planes = [rng.random(1000) for _ in range(3)]
    votes = sum((p >= 0.5).astype(int) for p in planes)
    np.testing.assert_array_equal(binarise(fuse_probabilities(planes, "median"), 0.5), (votes >= 2).astype(np.uint8))


def test_threshold_is_inclusive_and_checked() -> None:
    assert binarise(np.array([0.49, 0.5, 0.51]), 0.5).tolist() == [0, 1, 1]
    assert binarise(np.array([0.5, 0.7]), 0.7).dtype == np.uint8
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            check_threshold(bad)


def test_bad_fusion_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        fuse_probabilities(MAPS, "vote")
    with pytest.raises(ValueError, match="different shapes"):
        fuse_probabilities([np.zeros(3), np.zeros(4)])
    with pytest.raises(ValueError, match="no probability maps"):
        fuse_probabilities([])
    assert set(FUSION_RULES) == {"mean", "median", "max", "geometric_mean"}
