"""Provenance sidecars: relative inputs with hashes, versions, byte-identical across runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from wmhkit.io.provenance import describe_inputs, sha256_file, sidecar_path, software_versions, write_sidecar


def _cohort(root: Path) -> tuple[Path, Path, Path]:
    """A FLAIR, a brain mask and an output, laid out like a real run."""
    flair = root / "data" / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz"
    brain_mask = root / "data" / "sub-01" / "anat" / "sub-01_brainmask.nii.gz"
    output = root / "out" / "sub-01" / "wmh.nii.gz"
    for path, content in ((flair, b"flair bytes"), (brain_mask, b"mask bytes"), (output, b"wmh bytes")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return flair, brain_mask, output


@pytest.mark.parametrize(
    ("output", "sidecar"),
    [("a/wmh.nii.gz", "a/wmh.json"), ("a/wmh.nii", "a/wmh.json"), ("volumes.csv", "volumes.csv.json"),
     ("model.pt", "model.pt.json")],
)
def test_sidecar_path(output, sidecar):
    assert sidecar_path(output) == Path(sidecar)


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    content = np.random.default_rng(0).bytes(3 * 1024**2 + 17)
    path = tmp_path / "flair.nii.gz"
    path.write_bytes(content)
    assert sha256_file(path) == hashlib.sha256(content).hexdigest()


def test_sidecar_holds_relative_inputs_hashes_parameters_and_versions(tmp_path):
    flair, brain_mask, output = _cohort(tmp_path)
    sidecar = write_sidecar(
        output,
        step="predict",
        inputs={"flair": flair, "brain_mask": brain_mask, "t1": None},
        parameters={"threshold": np.float32(0.5), "patch": (64, 64, 32), "model_dir": Path("models/v1")},
        seed=7,
        extra={"device": {"type": "cpu"}, "model": {"hash": "ab" * 32}},
    )
    assert sidecar == output.parent / "wmh.json"
    record = json.loads(sidecar.read_text())
    assert record["inputs"] == {
        "brain_mask": {"path": "../../data/sub-01/anat/sub-01_brainmask.nii.gz",
                       "sha256": hashlib.sha256(b"mask bytes").hexdigest()},
        "flair": {"path": "../../data/sub-01/anat/sub-01_FLAIR.nii.gz",
                  "sha256": hashlib.sha256(b"flair bytes").hexdigest()},
    }
    assert record["output"] == "wmh.nii.gz"
    assert record["output_sha256"] == hashlib.sha256(b"wmh bytes").hexdigest()
    assert record["parameters"] == {"threshold": 0.5, "patch": [64, 64, 32], "model_dir": "models/v1"}
    assert record["seed"] == 7 and record["step"] == "predict"
    assert record["device"] == {"type": "cpu"} and record["model"] == {"hash": "ab" * 32}
    assert record["versions"] == software_versions()
    assert {"python", "wmhkit", "numpy", "nibabel"} <= set(record["versions"])
    assert str(tmp_path) not in sidecar.read_text()  # no absolute paths leak into provenance


def test_sidecar_is_byte_identical_across_runs_and_locations(tmp_path):
    texts = []
    for run in ("run1", "run2"):
        flair, brain_mask, output = _cohort(tmp_path / run)
        sidecar = write_sidecar(
            output, step="prepare", inputs={"flair": flair, "brain_mask": brain_mask},
            parameters={"b": 2, "a": [1.5, 2.5]}, seed=0,
        )
        texts.append(sidecar.read_bytes())
    assert texts[0] == texts[1]
    assert texts[0].endswith(b"}\n")


def test_extra_keys_cannot_overwrite_standard_fields(tmp_path):
    flair, _, output = _cohort(tmp_path)
    with pytest.raises(ValueError, match="inputs"):
        write_sidecar(output, step="predict", inputs={"flair": flair}, parameters={}, extra={"inputs": {}})
    assert not sidecar_path(output).exists()


def test_non_finite_parameters_are_refused_rather_than_written_as_invalid_json(tmp_path):
    flair, _, output = _cohort(tmp_path)
    with pytest.raises(ValueError, match="NaN or Inf"):
        write_sidecar(output, step="predict", inputs={"flair": flair}, parameters={"threshold": float("nan")})
    assert not sidecar_path(output).exists()


def test_describe_inputs_skips_missing_roles_and_sorts(tmp_path):
    flair, brain_mask, _ = _cohort(tmp_path)
    described = describe_inputs({"t1": None, "flair": flair, "brain_mask": brain_mask}, flair.parent)
    assert list(described) == ["brain_mask", "flair"]
    assert described["flair"]["path"] == "sub-01_FLAIR.nii.gz"
