"""Which scans a stage trains on: scans whose machine labels are empty add nothing and are left out."""

from __future__ import annotations

import numpy as np

from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_mask, save_mask
from wmhkit.train.config import parse_config
from wmhkit.train.data import stage_label_sources


def _empty(path) -> None:
    mask = load_mask(path, allowed_labels=(0, 1, 2))
    save_mask(Image(np.zeros(mask.shape, np.uint8), mask.affine), path)


def test_scans_with_empty_silver_or_bronze_masks_are_left_out_but_empty_gold_stays(tiny_cohort, make_config):
    manifest = read_manifest(tiny_cohort)
    root = tiny_cohort.parent
    _empty(root / "u06" / "silver.nii.gz")
    _empty(root / "u07" / "bronze_a.nii.gz")
    _empty(root / "u07" / "bronze_b.nii.gz")
    _empty(root / "u08" / "bronze_a.nii.gz")  # one empty method of two: the scan still has labels
    _empty(root / "g00" / "gold.nii.gz")
    config = parse_config(make_config(stages=[
        {"labels": "bronze", "scans": "without_gold"}, {"labels": "silver", "scans": "without_gold"},
        {"labels": "gold", "scans": "with_gold", "folds": 1}]))
    unlabelled = [f"u{i:02d}" for i in range(6, 12)]
    bronze, silver, gold = config.stages
    assert [s.scan_id for s in stage_label_sources(manifest, unlabelled, bronze)] == \
        ["u06", "u08", "u09", "u10", "u11"]
    assert [s.scan_id for s in stage_label_sources(manifest, unlabelled, silver)] == \
        ["u07", "u08", "u09", "u10", "u11"]
    assert [s.scan_id for s in stage_label_sources(manifest, ["g00", "g01"], gold)] == ["g00", "g01"]
