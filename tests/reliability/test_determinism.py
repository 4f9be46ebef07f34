"""Same inputs and seed → byte-identical masks, CSVs/TSVs and JSON sidecars, for every stage; sidecars valid.

The one time-dependent value wmhkit writes is ``result.seconds`` (run time per
method) in the bronze stage's completion records (``records/bronze/*.json``): it
is excluded from the byte comparison and every other field of those records is
compared.
"""

from __future__ import annotations

import json
import re

import pytest

from wmhkit.cli import main
from wmhkit.io.provenance import sidecar_path, validate_sidecar


def _pipeline(raw_manifest, model, out):
    """prepare → bronze → silver → predict into ``out``; every command must succeed."""
    prepared = out / "prepared"
    assert main(["prepare", str(raw_manifest), "--out", str(prepared), "--no-n4", "--no-qc-png"]) == 0
    assert main(["bronze", str(prepared / "manifest.tsv"), "--out", str(prepared), "--seed", "5"]) == 0
    assert main(["silver", str(prepared / "manifest.tsv"), "--out", str(prepared)]) == 0
    assert main(["predict", str(raw_manifest), "--model", str(model), "--out", str(out / "predicted")]) == 0


@pytest.fixture(scope="module")
def two_runs(raw_cohort, random_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    for name in ("first", "second"):
        _pipeline(raw_cohort, random_model, root / name)
    return root / "first", root / "second"


#: Completion records carrying run times (``result.seconds``), compared without them.
TIMED_RECORDS = r"(.*/)?records/bronze/[^/]+\.json"


def _without_run_times(path):
    record = json.loads(path.read_text())
    record["result"].pop("seconds")
    return record


def test_every_output_is_byte_identical_across_runs(two_runs, harness):
    first, second = (harness.digests(run) for run in two_runs)
    assert harness.differences(two_runs[1], first, ignore=(harness.HIDDEN, TIMED_RECORDS)) == []
    timed = [name for name in first if re.fullmatch(TIMED_RECORDS, name)]
    assert len(timed) == 3
    for name in timed:
        assert _without_run_times(two_runs[0] / name) == _without_run_times(two_runs[1] / name)
    kinds = {name.split(".", 1)[-1] for name in first}
    assert {"nii.gz", "json", "tsv", "csv"} <= kinds  # masks, sidecars and tables were all compared
    assert any(name.endswith("silver.nii.gz") for name in first) and any(
        name.endswith("_wmh.nii.gz") for name in first)
    assert len(first) == len(second) >= 40


def test_every_sidecar_validates_and_names_hashed_inputs_seed_versions_device(two_runs, harness):
    sidecars = [p for p in harness.final_files(two_runs[0]) if p.suffix == ".json" and harness._is_sidecar(p)]
    steps = set()
    for path in sidecars:
        record = validate_sidecar(path)
        steps.add(record["step"].split("_")[0])
        assert record["inputs"] and all(len(i["sha256"]) == 64 for i in record["inputs"].values())
        assert record["device"]["type"] == "cpu" and "torch" in record["versions"]
        if "model" in record["inputs"]:
            assert len(record["model"]["hash"]) == 64
        if record["step"].startswith("bronze_") and record["step"] != "bronze_external":
            assert record["seed"] == 5
    assert steps == {"prepare", "bronze", "silver", "predict"}


def test_sidecars_hold_no_absolute_paths_or_timestamps(two_runs, harness):
    for path in harness.final_files(two_runs[0]):
        if path.suffix == ".json" and harness._is_sidecar(path):
            text = path.read_text()
            assert str(two_runs[0]) not in text and str(two_runs[0].parent) not in text
            assert "time" not in json.loads(text) and "date" not in json.loads(text)
            assert sidecar_path(path.with_name(json.loads(text)["output"])) == path
