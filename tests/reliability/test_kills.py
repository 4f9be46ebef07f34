"""SIGKILL ``wmhkit train``, ``predict`` and ``silver`` at seeded moments: nothing partial, reruns finish identically.

The default run kills each command once; the ``slow`` campaign kills each one
several times per case over many seeds (``benchmarks/bench_reliability.py`` runs
the same cases at any budget).
"""

from __future__ import annotations

import pytest


def _targets(harness, train_inputs, raw_cohort, random_model, bronzed_cohort):
    return {"train": harness.train_target(*train_inputs),
            "predict": harness.predict_target(raw_cohort, random_model),
            "silver": harness.silver_target(bronzed_cohort)}


def _campaign(harness, target, tmp_path, seeds, kills):
    reference, seconds, reference_out = harness.reference_run(target, tmp_path / "reference")
    results = [harness.kill_case(target, tmp_path / f"case{seed}", reference, seconds, seed, kills) for seed in seeds]
    for result in results:
        assert result.broken == [], f"{target.name} seed {result.seed} left incomplete files"
        assert result.rerun_exit == 0
        assert result.differences == [], f"{target.name} seed {result.seed}: rerun differs from the reference"
        if target.name == "train":  # exported weights are compared by value (their bytes embed a temp name)
            for plane in sorted((reference_out / "model" / "weights").glob("*.pt")):
                assert harness.weights_identical(plane, tmp_path / f"case{result.seed}" / "run/model/weights" / plane.name)
    assert sum(r.kills_landed for r in results) >= 1, "every kill came too late to test anything"
    return results


@pytest.mark.parametrize("name", ["train", "predict", "silver"])
def test_one_kill_leaves_complete_files_and_the_rerun_matches(
    name, harness, train_inputs, raw_cohort, random_model, bronzed_cohort, tmp_path
):
    target = _targets(harness, train_inputs, raw_cohort, random_model, bronzed_cohort)[name]
    _campaign(harness, target, tmp_path, seeds=[11], kills=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train", "predict", "silver"])
def test_many_kills_leave_complete_files_and_the_reruns_match(
    name, harness, train_inputs, raw_cohort, random_model, bronzed_cohort, tmp_path
):
    target = _targets(harness, train_inputs, raw_cohort, random_model, bronzed_cohort)[name]
    results = _campaign(harness, target, tmp_path, seeds=range(8), kills=3)
    assert sum(r.kills_landed for r in results) >= 8
