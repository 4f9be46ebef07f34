"""Bronze and silver on a real annotated scan (Lesjak et al. 2018, CC-BY 4.0); skipped without the data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from wmhkit.bronze.stage import bronze_manifest
from wmhkit.fusion.quality import label_quality
from wmhkit.fusion.stage import silver_manifest
from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_mask

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "lesjak2018" / "annotated" / "patient26"

pytestmark = [
    pytest.mark.realdata, pytest.mark.slow,
    pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real not found"),
]


def test_bronze_and_silver_on_a_real_annotated_scan(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("FLAIR.nii.gz", "T1.nii.gz", "consensus.nii.gz"):
        shutil.copyfile(REAL / name, raw / name)
    flair = load_image(raw / "FLAIR.nii.gz")
    save_mask(Image(ndimage.binary_fill_holes(flair.array > 0).astype(np.uint8), flair.affine), raw / "brain.nii.gz")
    manifest = write_manifest(pd.DataFrame([{"subject": "patient26", "flair": "raw/FLAIR.nii.gz", "t1": "raw/T1.nii.gz",
                                             "brain_mask": "raw/brain.nii.gz", "gold": "raw/consensus.nii.gz"}]),
                              tmp_path / "manifest.tsv")
    bronze = bronze_manifest(manifest, tmp_path / "work")
    assert bronze.failures == []
    silver = silver_manifest(bronze.manifest, tmp_path / "work")
    assert silver.failures == []
    mask = load_mask(silver.scans["patient26"].mask)
    assert mask.shape == flair.shape and np.array_equal(mask.affine, flair.affine)
    quality = label_quality(silver.manifest).set_index("label")
    assert quality.loc["silver", "dice"] > 0.3
