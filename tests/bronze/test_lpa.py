"""The LST-LPA-like ``lpa`` method: package data, spacing-aware features, lesions found and hard negatives left alone."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.lpa import (
    DATA_DIR,
    FEATURES,
    PRIOR_FILE,
    LpaParameters,
    load_model,
    lpa_probability,
    neighbourhood_sd_voxels,
    registered_prior,
)
from wmhkit.bronze.methods import METHODS
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.synth.cohort import synthesize_subject


def test_prior_is_small_package_data_highest_next_to_the_ventricles():
    path = DATA_DIR / PRIOR_FILE
    assert path.stat().st_size < 300_000
    prior = nib.load(str(path))
    values = prior.get_fdata()
    inverse = np.linalg.inv(prior.affine)

    def at(mni_mm):
        return values[tuple(np.rint(inverse[:3, :3] @ mni_mm + inverse[:3, 3]).astype(int))]

    periventricular = max(at(np.array([x, -20.0, 22.0])) for x in (-24.0, 24.0))  # beside the lateral ventricles
    cortex = at(np.array([0.0, 60.0, 10.0]))  # frontal pole
    assert periventricular > 0.02 and cortex < 0.1 * periventricular
    assert values.min() == 0.0 and values.max() <= 1.0


def test_coefficients_make_brighter_voxels_more_likely_lesion():
    model = load_model()
    assert len(model.coefficients) == len(FEATURES)
    values = {"z": 6.0, "local": 5.0, "logit_prior": -4.0, "z_prior": 3.0, "z_above_2": 4.0, "z_above_4": 2.0, "edge": 0.0}
    bright = np.array([[values[name] for name in FEATURES]])
    dim = bright.copy()
    dim[0, [FEATURES.index(name) for name in ("z", "local", "z_prior", "z_above_2", "z_above_4")]] = 0.0
    at_the_edge = bright.copy()
    at_the_edge[0, FEATURES.index("edge")] = 1.0
    assert model.probability(bright)[0] > LpaParameters().threshold > model.probability(dim)[0]
    assert model.probability(at_the_edge)[0] < model.probability(bright)[0]


def test_neighbourhoods_are_in_plane_on_thick_slices_and_in_mm():
    assert neighbourhood_sd_voxels((0.5, 0.5, 6.5), 8.0) == [16.0, 16.0, 0.0]
    assert neighbourhood_sd_voxels((1.0, 1.0, 1.0), 8.0) == [8.0, 8.0, 8.0]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A phantom of scanner profile B at 2 mm scale (2D 1.8 × 1.8 × 6 mm, LPS, uint16, cortex brighter than WM)."""
    folder = tmp_path_factory.mktemp("lpa_phantom")
    row = synthesize_subject(folder, 13, seed=11, scanner="B", with_head=False, with_brain_mask=True, resolution_mm=2.0)
    flair = load_image(folder / row["flair"])
    brain = load_mask(folder / row["brain_mask"]).array.astype(bool)
    gold = load_mask(folder / row["gold"]).array.astype(bool)
    return ScanContext(flair, brain, load_image(folder / row["t1"])), gold


@pytest.mark.slow
def test_lpa_finds_phantom_lesions_and_leaves_cortex_and_the_mask_edge_alone(phantom):
    scan, gold = phantom
    assert gold.sum() > 50
    probability = lpa_probability(scan)
    mask = METHODS["lpa"].run(scan)
    assert probability.dtype == np.float32 and 0.0 <= probability.min() and probability.max() <= 1.0
    assert not probability[~scan.brain_mask].any()
    # Unprepared (no N4) 6 mm slices: faint lesions; the probability still singles them out and the mask
    # lies on them (within one voxel of a lesion), not on the bright cortex.
    assert probability[gold].mean() > 5 * probability[scan.brain_mask & ~gold].mean()
    assert mask.any() and (mask & ndimage.binary_dilation(gold)).sum() > 0.7 * mask.sum()
    # Hard negatives: cortex in the outer 6 mm brighter than deep WM (a global intensity cut takes it), and the
    # mask edge.
    flair = scan.flair.array
    bright_cortex = scan.brain_mask & (scan.depth_mm <= 6.0) & (flair > np.median(flair[scan.depth_mm > 15]))
    assert bright_cortex.sum() > 200
    assert (mask & bright_cortex).sum() <= 0.05 * mask.sum()
    assert not (mask & (scan.depth_mm <= LpaParameters().edge_margin_mm)).any()


@pytest.mark.slow
def test_registered_prior_lands_on_periventricular_white_matter(phantom):
    scan, gold = phantom
    prior = registered_prior(scan)
    deep = scan.brain_mask & (scan.depth_mm > 15)
    outer = scan.brain_mask & (scan.depth_mm <= 4.0)
    assert prior[gold].mean() > 3 * prior[outer].mean()
    assert prior[deep].mean() > prior[outer].mean()
