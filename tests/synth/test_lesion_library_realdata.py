"""Phantoms drawing lesions from the real MNI-space consensus masks of Lesjak et al. 2018."""

import json
from pathlib import Path

import pytest

from wmhkit.io.provenance import sidecar_path
from wmhkit.synth import synthesize_subject

LIBRARY = Path(__file__).resolve().parents[2].parent / "shared/data/real/lesjak2018/consensus-masks-mni"


@pytest.mark.realdata
@pytest.mark.skipif(not LIBRARY.is_dir(), reason="../shared/data/real not found")
def test_subject_records_the_real_lesion_mask_it_used(tmp_path):
    row = synthesize_subject(tmp_path, 2, seed=1, scanner="B", lesion_library=LIBRARY, resolution_mm=3.0)
    record = json.loads(sidecar_path(tmp_path / row["flair"]).read_text())
    chosen = record["parameters"]["lesions"]["library_file"]
    assert (LIBRARY / chosen).is_file()
    assert record["inputs"]["lesion_library_mask"]["path"].endswith(chosen)
    assert record["parameters"]["lesions"]["library_ml"] > 0
