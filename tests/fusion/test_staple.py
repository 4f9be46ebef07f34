"""STAPLE restricted to the brain, and majority vote."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from wmhkit.fusion.majority import majority_vote
from wmhkit.fusion.staple import staple


def _simpleitk_staple(raters, iterations: int = 300):
    fusion = sitk.STAPLEImageFilter()
    fusion.SetForegroundValue(1.0)
    fusion.SetMaximumIterations(iterations)
    probability = sitk.GetArrayFromImage(fusion.Execute([sitk.GetImageFromArray(r.astype(np.uint8)) for r in raters]))
    return probability, fusion.GetSensitivity(), fusion.GetSpecificity()


def _raters(seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((30, 30, 8), bool)
    truth[8:16, 8:16, 2:6] = True
    raters = [truth ^ (rng.random(truth.shape) < p) for p in (0.01, 0.02, 0.05)]
    raters.append(truth & (rng.random(truth.shape) < 0.5))  # a rater missing half the lesion
    return truth, raters


def test_staple_on_the_whole_image_equals_simpleitk_on_the_image_grid():
    _, raters = _raters()
    ours = staple(raters, np.ones(raters[0].shape, bool))
    probability, sensitivity, specificity = _simpleitk_staple(raters)
    assert np.allclose(ours.probability, probability, atol=1e-4)
    assert ours.sensitivity == pytest.approx(sensitivity, abs=1e-4)
    assert ours.specificity == pytest.approx(specificity, abs=1e-4)


def test_voxels_outside_the_brain_do_not_change_the_estimate():
    _, raters = _raters()
    brain = np.ones(raters[0].shape, bool)
    padded = [np.pad(r, ((20, 20), (20, 20), (0, 0))) for r in raters]
    inside = staple(raters, brain)
    restricted = staple(padded, np.pad(brain, ((20, 20), (20, 20), (0, 0))))
    assert np.allclose(restricted.probability[20:-20, 20:-20], inside.probability, atol=1e-6)
    assert restricted.sensitivity == pytest.approx(inside.sensitivity)
    # SimpleITK over the padded box would see a prior diluted by the empty margin:
    diluted, _, _ = _simpleitk_staple(padded)
    assert not np.allclose(diluted[20:-20, 20:-20], inside.probability, atol=1e-3)


def test_staple_ranks_raters_and_recovers_the_truth():
    truth, raters = _raters()
    result = staple(raters, np.ones(truth.shape, bool))
    assert result.sensitivity[3] < result.sensitivity[0]  # the half-missing rater is found out
    assert result.specificity[2] < result.specificity[0]  # the noisiest rater too
    assert (result.mask == truth).mean() > 0.97
    assert result.probability.dtype == np.float32 and 0 <= result.probability.min() <= result.probability.max() <= 1


def test_unanimous_raters_are_returned_as_they_are():
    truth, _ = _raters()
    result = staple([truth, truth, truth], np.ones(truth.shape, bool))
    assert np.array_equal(result.mask, truth)


def test_consensus_needs_two_raters_and_a_brain():
    truth, raters = _raters()
    with pytest.raises(ValueError, match="at least two"):
        staple([truth], np.ones(truth.shape, bool))
    with pytest.raises(ValueError, match="brain mask is empty"):
        majority_vote(raters, np.zeros(truth.shape, bool))


def test_majority_vote_ties_are_background_and_rates_are_against_the_vote():
    a = np.array([1, 1, 0, 0], bool).reshape(4, 1, 1)
    b = np.array([1, 0, 1, 0], bool).reshape(4, 1, 1)
    result = majority_vote([a, b], np.ones((4, 1, 1), bool))
    assert result.mask.ravel().tolist() == [True, False, False, False]
    assert result.sensitivity == (1.0, 1.0)
    assert result.specificity == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_pruned_staple_refits_without_raters_far_less_sensitive_than_the_best():
    from wmhkit.fusion.staple import staple_pruned

    brain = np.ones((40, 40, 10), bool)
    found = np.zeros_like(brain)
    found[5:15, 5:15, 2:8] = True
    faint = np.zeros_like(brain)
    faint[20:30, 20:30, 2:8] = True
    rng = np.random.default_rng(0)
    wide = [(found | faint) ^ (rng.random(brain.shape) < 0.005) for _ in range(2)]
    narrow = [found & (rng.random(brain.shape) < 0.3) for _ in range(2)]
    first = staple([*wide, *narrow], brain)
    pruned = staple_pruned([*wide, *narrow], brain)
    assert pruned.fused == (True, True, False, False)
    refit = staple(wide, brain)
    assert np.array_equal(pruned.probability, refit.probability)
    assert pruned.sensitivity[:2] == refit.sensitivity and pruned.sensitivity[2:] == first.sensitivity[2:]
    assert pruned.mask[faint].mean() > 0.95
    # Never fewer than two raters: with two raters nothing is dropped.
    assert staple_pruned(narrow[:1] + wide[:1], brain).fused == (True, True)
