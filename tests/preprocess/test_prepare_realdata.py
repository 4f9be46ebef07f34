"""Real scans (Lesjak 2018, CC-BY 4.0): prepare a raw clinical FLAIR and map it back exactly."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from wmhkit.io.nifti import load_image, load_mask
from wmhkit.preprocess.bias import N4Settings
from wmhkit.preprocess.geometry import load_native_geometry, to_native
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_scan

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "lesjak2018"
RAW_FLAIR = REAL / "unannotated" / "patient20-study2" / "FLAIR.nii.gz"  # LPS uint16, 0.9 x 0.9 x 3 mm, skull on
MNI_FLAIR = REAL / "annotated" / "patient07" / "FLAIR.nii.gz"
MNI_GOLD = REAL / "annotated" / "patient07" / "consensus.nii.gz"


@pytest.mark.realdata
@pytest.mark.skipif(not RAW_FLAIR.is_file(), reason="../shared/data/real not found")
def test_raw_clinical_flair_round_trip(tmp_path):
    native = load_image(RAW_FLAIR)
    quick_n4 = N4Settings(shrink_factor=8, iterations=(10,))  # exercise N4 on real data, cheaply
    options = PrepareOptions(qc_png=False, n4_settings=quick_n4, brain_extractor="template")  # HD-BET: slow tests
    result = prepare_scan(RAW_FLAIR, tmp_path, options=options)
    prepared = load_image(result.outputs["flair"])
    prepared_brain = load_mask(result.outputs["brain_mask"]).array > 0
    assert nib.aff2axcodes(prepared.affine) == ("R", "A", "S")
    assert prepared.array.min() == 0.0
    assert np.percentile(prepared.array[prepared_brain], 98) == pytest.approx(1.0, abs=1e-4)
    assert result.anisotropic and result.brain_mask_source == "template"
    brain = to_native(load_mask(result.outputs["brain_mask"]), load_native_geometry(result.outputs["flair"]))
    assert brain.shape == native.shape
    assert np.array_equal(brain.affine, native.affine)
    assert 700.0 < brain.array.sum() * native.voxel_volume_ml < 2000.0


@pytest.mark.realdata
@pytest.mark.skipif(not MNI_GOLD.is_file(), reason="../shared/data/real not found")
def test_skull_stripped_mni_gold_round_trip(tmp_path):
    gold = load_mask(MNI_GOLD)
    result = prepare_scan(MNI_FLAIR, tmp_path, labels={"gold": MNI_GOLD},
                          options=PrepareOptions(n4=False, qc_png=False))
    back = to_native(load_mask(result.outputs["gold"]), result.geometry)
    assert np.array_equal(back.array, gold.array)
    assert np.array_equal(back.affine, gold.affine)
