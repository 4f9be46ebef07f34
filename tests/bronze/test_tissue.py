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
