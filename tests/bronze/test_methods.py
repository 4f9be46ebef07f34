"""The classical bronze methods on a toy brain with known lesions, cortex, deep GM and rim."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.methods import METHODS, bronze_method
from wmhkit.bronze.tophat import segment_tophat
from wmhkit.errors import InputError, MaskError
from wmhkit.io.image import Image
from wmhkit.metrics.segmentation import dice


def _recall(pred: np.ndarray, truth: np.ndarray) -> float:
    return float((pred & truth).sum() / truth.sum())


@pytest.fixture(scope="module")
def with_t1(toy_brain):
    return ScanContext(toy_brain.flair, toy_brain.brain, toy_brain.t1)


@pytest.mark.parametrize("name", ["outlier", "growth"])
def test_flair_methods_find_lesions_and_spare_cortex(toy_brain, with_t1, name):
    pred = METHODS[name].run(with_t1)
    assert pred.dtype == bool and pred.shape == toy_brain.flair.shape
    assert dice(pred, toy_brain.lesions) > 0.3
    assert not (pred & toy_brain.cortex).any()


def test_outlier_rejects_an_isolated_periventricular_rim(toy_brain, with_t1):
    pred = METHODS["outlier"].run(with_t1)
    rim_far_from_lesions = toy_brain.rim & (with_t1.depth_mm > 0)
    assert (pred & rim_far_from_lesions).sum() < 0.05 * toy_brain.rim.sum()


def test_lesion_surroundings_are_t1_white_matter_not_deep_grey_matter(toy_brain, with_t1):
    surroundings = with_t1.lesion_surroundings
    white_matter = toy_brain.brain & ~toy_brain.cortex & ~toy_brain.deep_gm & ~toy_brain.lesions & (with_t1.depth_mm > 8)
    assert surroundings[white_matter].mean() > 0.9
    assert surroundings[toy_brain.deep_gm].mean() < 0.05
    assert np.array_equal(surroundings, (with_t1.t1_tissue.posteriors["wm"] > 0.5) | with_t1.ventricles)


def test_t1hypo_needs_a_t1(toy_brain):
    with pytest.raises(InputError, match="needs a T1"):
        METHODS["t1hypo"].run(ScanContext(toy_brain.flair, toy_brain.brain))


def test_t1hypo_finds_t1_dark_lesions_in_wm(toy_brain, with_t1):
    pred = METHODS["t1hypo"].run(with_t1)
    assert _recall(pred, toy_brain.lesions) > 0.3
    assert not (pred & toy_brain.cortex).any()


def test_tophat_finds_a_small_bright_spot_but_not_a_broad_bright_region():
    shape = (60, 60, 12)
    flair = np.full(shape, 0.6, np.float32) + np.random.default_rng(1).normal(0, 0.01, shape).astype(np.float32)
    brain = np.ones(shape, bool)
    spot = np.zeros(shape, bool)
    spot[20:24, 20:24, 4:8] = True
    broad = np.zeros(shape, bool)
    broad[5:55, 35:58, :] = True
    flair[spot] = 1.0
    flair[broad] += 0.2
    scan = ScanContext(Image(flair, np.diag([1.0, 1.0, 1.0, 1.0])), brain)
    from dataclasses import replace

    params = replace(METHODS["tophat"].parameters, cortex_margin_mm=0.0, deep_mm=0.0)
    pred = segment_tophat(scan, params)
    assert pred[spot].mean() > 0.9
    assert not pred[broad].any()


def test_methods_run_without_t1(toy_brain):
    scan = ScanContext(toy_brain.flair, toy_brain.brain)
    for name in ("outlier", "growth", "tophat"):
        assert METHODS[name].run(scan).shape == toy_brain.flair.shape


def test_empty_brain_mask_is_a_clear_error(toy_brain):
    with pytest.raises(MaskError, match="brain mask is empty"):
        ScanContext(toy_brain.flair, np.zeros(toy_brain.flair.shape, bool))


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="outlier"):
        bronze_method("lga")


def test_methods_are_deterministic(toy_brain):
    first = METHODS["growth"].run(ScanContext(toy_brain.flair, toy_brain.brain, toy_brain.t1))
    second = METHODS["growth"].run(ScanContext(toy_brain.flair, toy_brain.brain, toy_brain.t1))
    assert np.array_equal(first, second)


def test_a_t1_on_another_grid_is_a_clear_error(toy_brain):
    t1 = Image(toy_brain.t1.array[:-2], toy_brain.t1.affine)
    with pytest.raises(MaskError, match="resample the T1 onto the FLAIR grid"):
        ScanContext(toy_brain.flair, toy_brain.brain, t1)
