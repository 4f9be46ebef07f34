"""The README's demo on a tiny quick cohort: every stage runs and the summary is right."""

import numpy as np
import pandas as pd
import pytest

from wmhkit.cli import main
from wmhkit.demo import SUMMARY_COLUMNS, run_demo
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image


def test_quick_demo_prepares_every_phantom_and_draws_native_overlays(tmp_path):
    result = run_demo(tmp_path, subjects=2, seed=3, quick=True)

    assert not result.failures
    assert list(result.summary.columns) == list(SUMMARY_COLUMNS)
    assert len(result.summary) == 2 and len(result.qc_pngs) == 2
    assert all(png.read_bytes()[:4] == b"\x89PNG" for png in result.qc_pngs)
    cohort = read_manifest(tmp_path / "cohort" / "manifest.tsv")
    assert set(result.summary["subject"]) == {cohort.scan_id(row) for row in cohort.rows()}
    # Brain masks computed on the phantoms, mapped back to their native grids, match the truth.
    assert (result.summary["brain_dice"] > 0.85).all()
    assert result.summary["brain_ml"].between(800, 2500).all()
    written = pd.read_csv(result.summary_path, sep="\t")
    assert written["wmh_ml"].round(3).tolist() == result.summary["wmh_ml"].round(3).tolist()
    prepared = read_manifest(tmp_path / "prepared" / "manifest.tsv")
    flair = load_image(prepared.path(0, "flair"))
    brain = load_image(prepared.path(0, "brain_mask")).array > 0
    assert 0.0 <= float(flair.array.min()) and float(flair.array[~brain].max()) == 0.0
    assert np.percentile(flair.array[brain], 98) == pytest.approx(1.0, abs=1e-5)  # lesions may exceed 1


def test_demo_command_prints_the_summary(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quick", "--subjects", "1"]) == 0
    out = capsys.readouterr().out
    assert "sub-001" in out and "brain_dice" in out
