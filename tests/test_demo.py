"""The README's demo: one quick end-to-end run (every stage, real outputs), resume, settings checks, parts."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from wmhkit.cli import main
from wmhkit.demo import QUICK_COHORT, SUMMARY_COLUMNS, run_demo, summary_table
from wmhkit.demo.cohort import CohortPlan, copy_real_scans
from wmhkit.demo.models import fitted_pad_shape, segmentation_config, volume_config
from wmhkit.demo.steps import StepRunner
from wmhkit.errors import InputError, OutputError
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.io.nifti import load_image

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
QUICK_VARIANTS = ["baseline", "m3sl", "volume"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick demo run shared by the tests of this module (about a minute on 2 idle cores)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, run_demo(out, quick=True, seed=3)


def test_quick_demo_runs_every_stage_and_scores_every_model_on_held_out_scans(quick_run):
    out, result = quick_run
    assert [step.name for step in result.steps] == [
        "cohort", "prepare", "bronze", "silver", "train-baseline", "train-m3sl", "train-volume",
        "predict-baseline", "predict-m3sl", "predict-volume", "evaluate", "stats", "report"]
    assert not any(step.skipped for step in result.steps)
    assert result.failures.empty
    # The label stages made bronze and silver masks for every training scan.
    labels = read_manifest(out / "labels" / "manifest.tsv")
    assert len(labels) == QUICK_COHORT.unlabeled + QUICK_COHORT.gold_train
    assert (labels.table["silver"] != "").all() and labels.bronze_methods
    # The held-out scans never reach training.
    test = read_manifest(out / "cohort" / "test.tsv")
    test_ids = {test.scan_id(row) for row in test.rows()}
    assert len(test_ids) == QUICK_COHORT.test and not test_ids & {labels.scan_id(row) for row in labels.rows()}
    # Every model's mask of every held-out scan lies on that scan's native grid.
    for variant in QUICK_VARIANTS:
        assert set(result.predictions[variant]) == test_ids
        for row in test.rows():
            mask = load_image(result.predictions[variant][test.scan_id(row)])
            assert mask.same_grid(load_image(test.path(row, "flair")))
            assert set(np.unique(mask.array)) <= {0.0, 1.0}
    metrics = pd.read_csv(result.metrics)
    assert sorted(metrics.groupby("variant").size().items()) == [(v, QUICK_COHORT.test) for v in QUICK_VARIANTS]
    assert metrics["dice"].between(0, 1).all() and (metrics["dataset"] == "phantom").all()
    gold_ml = {test.scan_id(row): float(row["volume_ml"]) for row in test.rows()}
    for record in metrics.itertuples():
        assert record.vol_gold_ml == pytest.approx(gold_ml[record.subject], rel=1e-3)
    assert list(result.summary.columns) == list(SUMMARY_COLUMNS)
    assert result.summary["model"].tolist() == QUICK_VARIANTS
    assert (result.summary["scans"] == QUICK_COHORT.test).all()
    for variant, mean_dice in metrics.groupby("variant")["dice"].mean().items():
        assert result.summary.set_index("model").loc[variant, "dice"] == pytest.approx(mean_dice, abs=1e-4)
    anova = pd.read_csv(out / "stats" / "anova.csv")
    assert "variant" in set(anova["grouping"])
    html = result.report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "m3sl against baseline per subject" in html
    assert html.count("data:image/png") >= QUICK_COHORT.test  # one overlay mosaic per held-out scan at least


def test_demo_command_resumes_an_interrupted_run_and_prints_the_summary(quick_run, capsys):
    out, result = quick_run
    # Interrupt after evaluate: the stats and report steps have not finished.
    for marker in ("12-stats.json", "13-report.json"):
        (out / "steps" / marker).unlink()
    (out / "report.html").unlink()
    metrics_before = result.metrics.read_bytes()

    assert main(["demo", "--out", str(out), "--quick", "--seed", "3", "--no-progress"]) == 0

    printed = capsys.readouterr().out
    assert "every model on the held-out scans" in printed
    assert all(variant in printed for variant in QUICK_VARIANTS) and "dice" in printed
    assert printed.count("(earlier run)") == 11  # every step but stats and report was skipped
    assert (out / "report.html").is_file() and (out / "steps" / "13-report.json").is_file()
    assert result.metrics.read_bytes() == metrics_before


def test_demo_refuses_a_folder_of_another_run(quick_run, tmp_path):
    out, _ = quick_run
    with pytest.raises(OutputError, match="other settings"):
        run_demo(out, quick=True, seed=4)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds no demo run"):
        run_demo(tmp_path, quick=True)
    with pytest.raises(InputError, match="real-data folder does not exist"):
        run_demo(tmp_path / "new", quick=True, real_data=tmp_path / "absent")


@pytest.mark.slow
def test_quick_demo_with_the_same_seed_reproduces_the_same_numbers(quick_run, tmp_path):
    _, first = quick_run
    second = run_demo(tmp_path / "again", quick=True, seed=3)
    pd.testing.assert_frame_equal(pd.read_csv(first.metrics), pd.read_csv(second.metrics))
    pd.testing.assert_frame_equal(first.summary, second.summary)


@pytest.mark.slow
def test_quick_demo_trains_the_transfer_variant_with_imagenet_weights(tmp_path):
    from wmhkit.nn.imagenet import vgg16_conv_channels
    from wmhkit.nn.vgg_unet import CONV_NAMES, TORCHVISION_FEATURE_INDEX

    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, (in_channels, out_channels) in zip(CONV_NAMES, vgg16_conv_channels()):
        index = TORCHVISION_FEATURE_INDEX[name]
        state[f"features.{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(out_channels)
    torch.save(state, tmp_path / "vgg16.pth")
    result = run_demo(tmp_path / "run", quick=True, seed=3, imagenet_weights=tmp_path / "vgg16.pth")
    assert result.summary["model"].tolist() == ["baseline", "m3sl", "transfer", "volume"]
    assert len(result.predictions["transfer"]) == QUICK_COHORT.test


def test_step_runner_skips_finished_steps_and_rejects_other_settings(tmp_path):
    calls = []

    def action():
        calls.append(1)
        return {"n": len(calls)}

    def failing():
        calls.append(1)
        return {"failures": [{"subject": "sub-001", "session": "", "error": "bad"}]} if len(calls) < 4 else {}

    first = StepRunner(tmp_path, {"seed": 1}, total=1)
    assert first.run("count", "count calls", action) == {"n": 1}
    marker = json.loads((tmp_path / "steps" / "01-count.json").read_text())
    assert marker["result"] == {"n": 1} and marker["settings"] == {"seed": 1}
    again = StepRunner(tmp_path, {"seed": 1}, total=1)
    assert again.run("count", "count calls", action) == {"n": 1} and len(calls) == 1
    assert again.records[0].skipped
    with pytest.raises(OutputError, match="other settings"):
        StepRunner(tmp_path, {"seed": 2}, total=1).run("count", "count calls", action)
    # A step with failed scans runs again on the next run, and so does every step after it.
    first.run("retry", "a step with a failure", failing)
    first.run("after", "a step after it", action)
    assert len(calls) == 3
    rerun = StepRunner(tmp_path, {"seed": 1}, total=3)
    rerun.run("count", "count calls", action)
    assert rerun.run("retry", "a step with a failure", failing) == {}
    assert rerun.run("after", "a step after it", action) == {"n": 5}
    assert [r.skipped for r in rerun.records] == [True, False, False]


def test_cohort_plan_roles_and_limits():
    plan = CohortPlan(unlabeled=5, gold_train=2, test=3, resolution_mm=2.0)
    assert [plan.role(k) for k in range(1, plan.subjects + 1)] == ["unlabeled"] * 5 + ["gold-train"] * 2 + ["test"] * 3
    with pytest.raises(ValueError, match="scanner profiles"):
        CohortPlan(unlabeled=4, gold_train=2, test=2, resolution_mm=2.0)
    with pytest.raises(ValueError, match="at least 2"):
        CohortPlan(unlabeled=5, gold_train=1, test=2, resolution_mm=2.0)


@pytest.fixture
def two_scan_manifest(tmp_path):
    for name, shape in (("a", (70, 40, 20)), ("b", (33, 96, 64))):
        nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), tmp_path / f"{name}.nii.gz")
    return write_manifest(pd.DataFrame({"subject": ["a", "b"], "flair": ["a.nii.gz", "b.nii.gz"]}), tmp_path / "m.tsv")


def test_fitted_pad_shape_holds_the_largest_scan_in_whole_patches(two_scan_manifest):
    assert fitted_pad_shape(two_scan_manifest, 32) == (96, 96, 64)


def test_demo_configs_take_the_seed_weights_and_fitted_pad_shape(two_scan_manifest, tmp_path):
    for quick in (True, False):
        transfer = segmentation_config("transfer", two_scan_manifest, quick=quick, seed=5,
                                       imagenet_weights=tmp_path / "vgg16.pth")
        assert (transfer.init, transfer.imagenet_weights, transfer.seed) == ("imagenet", str(tmp_path / "vgg16.pth"), 5)
        assert transfer.data.pad_shape == (96, 96, 64)
        m3sl = segmentation_config("m3sl", two_scan_manifest, quick=quick, seed=5)
        assert [s.labels for s in m3sl.stages] == ["bronze", "silver", "gold"]
        assert not m3sl.stages[-1].cross_validated  # the demo scores held-out scans instead
        volume = volume_config(quick=quick, seed=5)
        assert volume.seeds == (5,) and volume.split.seed == 5 and volume.split.test == 0.0


def test_summary_table_means_per_model_and_labels_real_data():
    metrics = pd.DataFrame({
        "variant": ["m3sl", "m3sl", "m3sl", "baseline"], "dataset": ["phantom", "phantom", "lesjak2018", "phantom"],
        "dice": [0.5, 0.7, 0.2, 0.4], "hd95_mm": [4.0, np.nan, 9.0, 5.0], "avd_pct": [10.0, 30.0, 50.0, 20.0],
        "lesion_f1": [0.5, 0.5, 0.1, 0.3], "vol_gold_ml": [1.0, 3.0, 8.0, 1.0], "vol_pred_ml": [2.0, 2.0, 4.0, 1.5],
    })
    summary = summary_table(metrics, ["baseline", "m3sl"])
    assert summary[["model", "data", "scans"]].values.tolist() == [
        ["baseline", "phantom", 1], ["m3sl", "phantom", 2], ["m3sl", "real: lesjak2018 (CC BY 4.0)", 1]]
    assert summary.loc[1, "dice"] == pytest.approx(0.6) and summary.loc[1, "hd95_mm"] == pytest.approx(4.0)


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL / "lesjak2018").is_dir(), reason="../shared/data/real not found")
def test_real_scans_are_copied_into_the_cohort_with_the_annotated_ones_held_out(tmp_path):
    unlabeled, annotated = copy_real_scans(REAL, tmp_path / "real")
    assert len(annotated) == 3 and (annotated["dataset"] == "lesjak2018").all()
    assert (annotated["gold"].str.endswith("consensus.nii.gz")).all()
    assert len(unlabeled) >= 11 and "gold" not in unlabeled.columns
    copied = tmp_path / annotated["flair"][0]
    assert copied.read_bytes() == (REAL / "lesjak2018" / "annotated" / "patient07" / "FLAIR.nii.gz").read_bytes()
    assert all((tmp_path / cell).is_file() and not (tmp_path / cell).is_symlink() for cell in unlabeled["flair"])
