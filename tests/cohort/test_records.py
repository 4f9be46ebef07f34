"""Completion records: a scan is complete only with a matching record and intact outputs."""

from __future__ import annotations

import json

import pytest

from wmhkit.cohort.records import (
    commit_record, completed_result, discard_record, expected_record, is_complete, record_path,
)
from wmhkit.errors import OutputError


@pytest.fixture
def finished_scan(tmp_path):
    """An input, one output and its committed record: (input, output, record, expected)."""
    flair = tmp_path / "in" / "flair.nii.gz"
    flair.parent.mkdir()
    flair.write_bytes(b"flair bytes")
    out = tmp_path / "out"
    (out / "sub-01").mkdir(parents=True)
    mask = out / "sub-01" / "wmh.nii.gz"
    mask.write_bytes(b"mask bytes")
    record = record_path(out, "predict", "sub-01")
    expected = expected_record(record, step="predict", inputs={"flair": flair, "t1": None},
                               parameters={"threshold": 0.5, "planes": ("axial",)}, model={"hash": "abc"})
    commit_record(record, expected, [mask], {"volume_ml": 1.25})
    return flair, mask, record, expected


def test_a_committed_record_with_intact_outputs_is_complete(finished_scan):
    flair, mask, record, expected = finished_scan
    assert record.parent.name == "predict" and record.name == "sub-01.json"
    assert is_complete(record, expected)
    assert completed_result(record, expected) == {"volume_ml": 1.25}
    stored = json.loads(record.read_text())
    assert stored["outputs"] == {"../../sub-01/wmh.nii.gz": stored["outputs"]["../../sub-01/wmh.nii.gz"]}
    assert stored["inputs"]["flair"]["path"].endswith("in/flair.nii.gz") and "t1" not in stored["inputs"]
    assert "wmhkit" in stored["versions"]


@pytest.mark.parametrize("change", ["parameter", "model", "input", "output", "missing_output", "no_record"])
def test_any_change_makes_the_scan_incomplete(finished_scan, change):
    flair, mask, record, expected = finished_scan
    if change == "parameter":
        expected = expected_record(record, step="predict", inputs={"flair": flair},
                                   parameters={"threshold": 0.4, "planes": ("axial",)}, model={"hash": "abc"})
    elif change == "model":
        expected = expected_record(record, step="predict", inputs={"flair": flair},
                                   parameters={"threshold": 0.5, "planes": ("axial",)}, model={"hash": "other"})
    elif change == "input":
        flair.write_bytes(b"another scan")
        expected = expected_record(record, step="predict", inputs={"flair": flair},
                                   parameters={"threshold": 0.5, "planes": ("axial",)}, model={"hash": "abc"})
    elif change == "output":
        mask.write_bytes(b"half-writ")
    elif change == "missing_output":
        mask.unlink()
    else:
        discard_record(record)
    assert not is_complete(record, expected)
    assert completed_result(record, expected) is None


def test_a_truncated_record_is_incomplete(finished_scan):
    _, _, record, expected = finished_scan
    record.write_text(record.read_text()[:40])
    assert not is_complete(record, expected)


def test_record_names_cannot_escape_the_output_folder(tmp_path):
    with pytest.raises(OutputError):
        record_path(tmp_path, "prepare", "../escape")
