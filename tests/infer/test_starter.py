"""The bundled starter model: found in the package, valid, small, and able to segment a phantom."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from wmhkit.errors import InputError
from wmhkit.infer import starter
from wmhkit.infer.predict import predict_scans
from wmhkit.infer.starter import starter_model_dir
from wmhkit.io.nifti import load_mask
from wmhkit.metrics.segmentation import dice
from wmhkit.models.folder import read_model_spec
from wmhkit.synth.cohort import synthesize_subject

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
#: Package size budget of the starter weights (issue 6: ≤ 25 MB).
MAX_WEIGHTS_BYTES = 25_000_000


def test_starter_model_is_packaged_and_valid() -> None:
    folder = starter_model_dir()
    assert folder.parts[-2:] == ("models", "starter")
    spec = read_model_spec(folder)  # raises for a missing weights file or a bad model.yaml
    assert spec.kind == "segmentation-2.5d"
    assert list(spec.planes) == ["axial", "sagittal", "coronal"]
    weights = sorted((folder / "weights").glob("*.pt"))
    assert [w.stem for w in weights] == ["axial", "coronal", "sagittal"]
    assert sum(w.stat().st_size for w in weights) <= MAX_WEIGHTS_BYTES
    card = (folder / starter.MODEL_CARD).read_text(encoding="utf-8")
    assert "CC-BY" in card and "Lesjak" in card


def test_missing_starter_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(starter, "STARTER_PARTS", ("models", "no-such-model"))
    with pytest.raises(InputError, match="starter model is not installed.*--model"):
        starter_model_dir()


def test_starter_model_segments_a_phantom(tmp_path: Path) -> None:
    # A 2 mm phantom of scanner A (3D, skull stripped) with its true lesions.
    row = synthesize_subject(tmp_path / "cohort", 3, seed=5, scanner="A", resolution_mm=2.0)
    flair = tmp_path / "cohort" / row["flair"]
    result = predict_scans(starter_model_dir(), [flair], tmp_path / "out")
    assert result.failures == []
    outputs = next(iter(result.outputs.values()))
    wmh = nib.load(outputs["wmh"])
    native = nib.load(flair)
    assert wmh.shape == native.shape
    np.testing.assert_array_equal(wmh.affine, native.affine)
    gold = load_mask(tmp_path / "cohort" / row["gold"], allowed_labels=(0, 1, 2)).array == 1
    predicted = np.asarray(wmh.dataobj) > 0
    assert dice(predicted, gold) > 0.2  # a smoke check of the shipped weights; MODEL_CARD.md has the validation


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real not found")
def test_starter_model_on_a_real_annotated_scan(tmp_path: Path) -> None:
    # Patient 26 (8.2 mL of MS lesions) was in the starter's gold training set: this pins the
    # shipped weights, it does not validate them (benchmarks/build_starter.py does leave-one-out).
    patient = REAL / "lesjak2018" / "annotated" / "patient26"
    result = predict_scans(starter_model_dir(), [patient / "FLAIR.nii.gz"], tmp_path / "out")
    assert result.failures == []
    predicted = load_mask(next(iter(result.outputs.values()))["wmh"]).array > 0
    gold = load_mask(patient / "consensus.nii.gz").array > 0
    assert dice(predicted, gold) > 0.15


def test_the_bundled_model_names_no_path_of_the_machine_that_built_it():
    from wmhkit.infer.starter import starter_model_dir
    from wmhkit.models.folder import read_model_spec

    trained_on = read_model_spec(starter_model_dir()).record["trained_on"]
    assert "/" not in trained_on.replace("see MODEL_CARD.md", "") and "MODEL_CARD.md" in trained_on
