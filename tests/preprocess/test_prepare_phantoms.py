"""End to end on synthesised phantoms (scanner orientations, computed brain mask, N4). Slow."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_mask
from wmhkit.preprocess.geometry import load_native_geometry, to_native
from wmhkit.preprocess.pipeline import prepare_manifest
from wmhkit.synth import synthesize_cohort


@pytest.mark.slow
def test_phantom_cohort_prepares_and_maps_back(tmp_path):
    manifest = synthesize_cohort(tmp_path / "phantoms", 2, seed=5)
    result = prepare_manifest(manifest, tmp_path / "prepared")
    assert result.failures == []
    prepared = read_manifest(result.manifest)
    for row in prepared.rows():
        geometry = load_native_geometry(prepared.path(row, "flair"))
        gold = to_native(load_mask(prepared.path(row, "gold"), allowed_labels=(0, 1, 2)), geometry)
        native_gold = load_mask(prepared.path(row, "native_gold"), allowed_labels=(0, 1, 2))
        assert np.array_equal(gold.array, native_gold.array)
        assert np.array_equal(gold.affine, native_gold.affine)
        brain = to_native(load_mask(prepared.path(row, "brain_mask")), geometry).array > 0
        truth = load_mask(prepared.path(row, "true_brain_mask")).array > 0  # rewritten relative to OUT
        dice = 2 * np.sum(brain & truth) / (brain.sum() + truth.sum())
        assert dice > 0.85
