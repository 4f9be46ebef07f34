"""Real expert lesion masks (Lesjak 2018, CC-BY 4.0): sanity of the metrics on real shapes."""

from pathlib import Path

import numpy as np
import pytest

from wmhkit.io.nifti import load_mask
from wmhkit.metrics.evaluate import evaluate

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "lesjak2018" / "annotated"
CONSENSUS = REAL / "patient07" / "consensus.nii.gz"


@pytest.mark.realdata
@pytest.mark.skipif(not CONSENSUS.is_file(), reason="../shared/data/real not found")
def test_consensus_against_itself_and_a_one_voxel_shift():
    gold = load_mask(CONSENSUS)
    same = evaluate(gold, gold)
    assert same["dice"] == 1.0 and same["hd95_mm"] == 0.0 and same["lesion_f1"] == 1.0
    assert same["vol_gold_ml"] == pytest.approx(1.3, abs=0.1)  # the dataset's stated lesion load
    shifted = evaluate(gold.with_array(np.roll(gold.array, 1, axis=0)), gold)
    assert 0.2 < shifted["dice"] < 1.0
    assert shifted["hd95_mm"] == pytest.approx(1.0, abs=1e-6)  # 1 mm MNI grid, shift along x
    assert shifted["avd_pct"] == 0.0
