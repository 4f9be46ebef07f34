"""Tissue mixture and the morphology helpers the methods share."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.bronze.tissue import (
    close_mm,
    fit_tissue_model,
    keep_surrounded_clusters,
    remove_small_clusters,
    robust_location_scale,
)


def test_mixture_recovers_three_flair_classes_and_names_them():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.03, 4000), rng.normal(0.6, 0.03, 9000), rng.normal(0.8, 0.03, 7000)])
    flair = values.reshape(20, 25, 40).astype(np.float32)
    model = fit_tissue_model(np.ones(flair.shape, bool), flair=flair)
    # FLAIR alone: CSF < WM < GM
    assert model.mean("csf", "flair") == pytest.approx(0.1, abs=0.01)
    assert model.mean("wm", "flair") == pytest.approx(0.6, abs=0.01)
    assert model.mean("gm", "flair") == pytest.approx(0.8, abs=0.01)
    assert model.weights["wm"] == pytest.approx(0.45, abs=0.02)
    total = sum(model.posteriors[t] for t in ("csf", "gm", "wm"))
    assert np.allclose(total, 1.0, atol=1e-4)


def test_mixture_with_t1_names_classes_from_t1():
    rng = np.random.default_rng(1)
    t1 = np.concatenate([rng.normal(0.2, 0.03, 3000), rng.normal(0.6, 0.03, 3000), rng.normal(0.9, 0.03, 4000)])
    flair = np.concatenate([rng.normal(0.1, 0.03, 3000), rng.normal(0.8, 0.03, 3000), rng.normal(0.6, 0.03, 4000)])
    model = fit_tissue_model(np.ones((10, 10, 100), bool), flair=flair.reshape(10, 10, 100), t1=t1.reshape(10, 10, 100))
    assert model.features == ("t1", "flair")
    assert model.mean("wm", "t1") == pytest.approx(0.9, abs=0.02)
    assert model.mean("gm", "flair") == pytest.approx(0.8, abs=0.02)


def test_mixture_needs_an_image_and_brain_voxels():
    with pytest.raises(ValueError, match="FLAIR, a T1"):
        fit_tissue_model(np.ones((5, 5, 5), bool))
    with pytest.raises(ValueError, match="at least 100"):
        fit_tissue_model(np.zeros((5, 5, 5), bool), flair=np.ones((5, 5, 5)))


def test_closing_bridges_gaps_narrower_than_its_diameter_in_mm():
    mask = np.zeros((30, 10, 10), bool)
    mask[5:12, 2:8, 2:8] = True
    mask[14:21, 2:8, 2:8] = True  # 2-voxel gap at 1 mm
    assert close_mm(mask, 2.0, (1.0, 1.0, 1.0))[12:14, 5, 5].all()
    assert not close_mm(mask, 2.0, (3.0, 1.0, 1.0))[12:14, 5, 5].any()  # the same gap is 6 mm at 3 mm spacing
    assert not close_mm(mask, 0.9, (1.0, 1.0, 1.0))[12:14, 5, 5].any()


def test_small_clusters_are_removed_by_volume_in_mm3():
    mask = np.zeros((20, 20, 20), bool)
    mask[2:4, 2:4, 2:4] = True  # 8 voxels
    mask[10:15, 10:15, 10:15] = True  # 125 voxels
    kept = remove_small_clusters(mask, 10.0, (1.0, 1.0, 1.0))
    assert kept.sum() == 125
    assert remove_small_clusters(mask, 10.0, (2.0, 2.0, 2.0)).sum() == 133  # 8 voxels = 64 mm³ at 2 mm


def test_clusters_are_kept_by_what_surrounds_them():
    wm = np.zeros((40, 20, 20), bool)
    wm[:20] = True
    mask = np.zeros_like(wm)
    mask[8:12, 8:12, 8:12] = True  # inside WM
    mask[28:32, 8:12, 8:12] = True  # inside "GM"
    kept = keep_surrounded_clusters(mask, wm, (1.0, 1.0, 1.0), shell_mm=2.0, min_fraction=0.5)
    assert kept[8:12, 8:12, 8:12].all() and not kept[28:32].any()


def test_robust_statistics_ignore_outliers():
    values = np.concatenate([np.random.default_rng(2).normal(1.0, 0.1, 10000), np.full(500, 9.0)])
    median, sd = robust_location_scale(values)
    assert median == pytest.approx(1.0, abs=0.02) and sd == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ValueError, match="no voxels"):
        robust_location_scale(np.array([]))


def _two_halves_with_a_bright_tail(rng):
    """A FLAIR whose WM (left half) is *brighter* than its GM (right half), with a wide bright tail in WM (WMH)
    and CSF at both ends: the contrast of the NiChart FLAIRs that broke the intensity-only naming."""
    shape = (40, 20, 20)
    wm_side = np.zeros(shape, bool)
    wm_side[:20] = True
    csf = np.zeros(shape, bool)
    csf[:, :, :3] = True
    flair = np.where(wm_side, rng.normal(0.75, 0.05, shape), rng.normal(0.65, 0.05, shape))
    tail = wm_side & (rng.random(shape) < 0.08)
    flair[tail] = rng.uniform(0.9, 1.4, tail.sum())
    flair[csf] = rng.normal(0.3, 0.05, csf.sum())
    priors = {"csf": np.where(csf, 0.8, 0.1), "gm": np.where(~csf & ~wm_side, 0.8, 0.1),
              "wm": np.where(~csf & wm_side, 0.8, 0.1)}
    return flair.astype(np.float32), priors, wm_side & ~csf, ~wm_side & ~csf


def test_spatial_priors_name_the_classes_whatever_their_flair_order():
    flair, priors, wm, gm = _two_halves_with_a_bright_tail(np.random.default_rng(2))
    brain = np.ones(flair.shape, bool)
    model = fit_tissue_model(brain, flair=flair, priors=priors)
    assert model.mean("wm", "flair") > model.mean("gm", "flair")  # named by the atlas, not by FLAIR order
    assert (model.posteriors["wm"][wm] > 0.5).mean() > 0.9  # the bright tail too: FLAIR-bright is not CSF
    assert (model.posteriors["gm"][gm] > 0.5).mean() > 0.9
    # GM and WM share one sd, so neither becomes a broad catch-all of the bright tail
    assert model.sds["wm"][0] == pytest.approx(model.sds["gm"][0])
    # without priors, FLAIR order names the darker tissue WM: here that is the GM half
    plain = fit_tissue_model(brain, flair=flair)
    assert (plain.posteriors["wm"][gm] > 0.5).mean() > 0.5
    assert model.spatial_priors and not plain.spatial_priors  # recorded in the bronze sidecars


def test_priors_are_normalised_per_voxel_and_posteriors_sum_to_one():
    flair, priors, _, _ = _two_halves_with_a_bright_tail(np.random.default_rng(3))
    scaled = {tissue: 7.0 * prior for tissue, prior in priors.items()}
    brain = np.ones(flair.shape, bool)
    a = fit_tissue_model(brain, flair=flair, priors=priors)
    b = fit_tissue_model(brain, flair=flair, priors=scaled)
    np.testing.assert_allclose(a.posteriors["wm"], b.posteriors["wm"], atol=1e-5)
    assert np.allclose(sum(a.posteriors[t] for t in ("csf", "gm", "wm")), 1.0, atol=1e-4)


def test_priors_are_for_the_flair_only_model():
    flair, priors, _, _ = _two_halves_with_a_bright_tail(np.random.default_rng(4))
    with pytest.raises(ValueError, match="FLAIR-only"):
        fit_tissue_model(np.ones(flair.shape, bool), flair=flair, t1=flair, priors=priors)
