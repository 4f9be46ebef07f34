"""``run_demo``: the whole of wmhkit, end to end, on a phantom cohort (and optionally real scans).

Steps, each into its own folder of ``OUT`` and resumable (:mod:`wmhkit.demo.steps`):

==================  ===========================  ==================================================
step                folder                       what
==================  ===========================  ==================================================
cohort              ``cohort/``                  phantoms A–E (unlabeled, gold training, held-out
                                                 test), real scans linked (:mod:`wmhkit.demo.cohort`)
prepare             ``labels/prepared/``         N4, brain mask, normalisation, crop
bronze              ``labels/``                  classical WMH masks per scan
silver              ``labels/``                  STAPLE consensus of the bronze masks
train-<variant>     ``models/<variant>/``        baseline, m3sl, transfer (with ImageNet weights),
                                                 volume (weak labels)
predict-<variant>   ``predictions/<variant>/``   native-space masks of the held-out scans
evaluate            ``metrics.csv``,             challenge metrics per (variant, scan); the run
                    ``manifest.tsv``             manifest with ``pred_<variant>`` columns
stats               ``stats/``                   ANOVA and Holm-corrected t-tests by variant,
                                                 stage and scanner; volume agreement (phantoms)
report              ``report.html``,             the HTML report and the summary table
                    ``summary.tsv``
==================  ===========================  ==================================================

The bronze and silver stages write into ``labels/`` because a manifest may only
point into its own folder: ``labels/manifest.tsv`` reaches both the prepared
scans and the label masks, and is what every model trains on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from wmhkit import __version__
from wmhkit.bronze.stage import BronzeOptions, bronze_manifest
from wmhkit.demo.cohort import (
    TEST_MANIFEST,
    TRAINING_MANIFEST,
    CohortPlan,
    build_cohort,
)
from wmhkit.demo.models import (
    SEGMENTATION_VARIANTS,
    VOLUME_VARIANT,
    segmentation_config,
    train_segmentation,
    train_volume_model,
    volume_config,
)
from wmhkit.demo.steps import Progress, StepRecord, StepRunner
from wmhkit.demo.summary import summary_table
from wmhkit.errors import InputError, OutputError
from wmhkit.fusion.stage import silver_manifest
from wmhkit.infer.predict import predict_manifest
from wmhkit.io.atomic import write_text_atomic
from wmhkit.io.manifest import Manifest, read_manifest, relative_path, write_manifest
from wmhkit.metrics.evaluate import evaluate_cohort
from wmhkit.preprocess.bias import N4Settings
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.report.render import write_report
from wmhkit.stats.analysis import analyse_metrics, write_results
from wmhkit.stats.tables import write_csv

log = logging.getLogger(__name__)

#: Cohorts of the full run and of ``--quick`` (2 mm phantoms; see :class:`~wmhkit.demo.cohort.CohortPlan`).
#: Both give the phantoms' true brain masks to prepare and predict, as a skull-stripped study would:
#: the demo is about the WMH stages (brain extraction has its own benchmark, and the computed mask
#: of one 2D thick-slice phantom of the full cohort fell just outside the plausible volume range).
FULL_COHORT = CohortPlan(unlabeled=25, gold_train=5, test=5, resolution_mm=2.0, with_brain_mask=True)
QUICK_COHORT = CohortPlan(unlabeled=5, gold_train=2, test=3, resolution_mm=2.0, with_brain_mask=True)
#: ``--quick`` fits the bias field with fewer iterations (one level of 10 instead of 25, 25, 15).
QUICK_N4 = N4Settings(iterations=(10,))
SETTINGS_FILE = "demo.json"
METRICS_FILE = "metrics.csv"
RUN_MANIFEST = "manifest.tsv"
SUMMARY_FILE = "summary.tsv"
FAILURES_FILE = "failures.tsv"
STATS_GROUPINGS: tuple[str, ...] = ("variant", "stage", "scanner")


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    summary
        Mean scores per model and kind of data (:func:`~wmhkit.demo.summary.summary_table`).
    metrics
        ``OUT/metrics.csv``: one row per (variant, held-out scan).
    report
        ``OUT/report.html``.
    predictions
        Variant → scan name → native-space predicted mask.
    failures
        One row per scan a step could not process (``demo_step``, ``subject``, ``session``, ``error``),
        also in ``OUT/failures.tsv``.
    steps
        Every step in order, with its wall time and whether this run skipped it.
    """

    summary: pd.DataFrame
    metrics: Path
    report: Path
    predictions: dict[str, dict[str, Path]]
    failures: pd.DataFrame
    steps: list[StepRecord]


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    seed: int = 0,
    real_data: str | os.PathLike[str] | None = None,
    imagenet_weights: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Run every stage of wmhkit into ``out_dir`` (see the module docstring), resuming a run left there.

    Parameters
    ----------
    out_dir
        Demo folder (created). A folder holding a demo run with the same settings
        is resumed: finished steps are skipped.
    quick
        Tiny cohort (:data:`QUICK_COHORT`, true brain masks, a short N4) and one-epoch
        ``demo-quick-*`` configs: a smoke run of a few minutes, not a model.
    seed
        Seed of the phantoms, the splits, the bronze tissue model and every network.
    real_data
        The shared real-data folder (``lesjak2018/``, ``unannotated-other/``): its
        unlabeled scans join the label stages and the bronze/silver training
        stages, and its three annotated scans are held out and scored.
    imagenet_weights
        torchvision ``vgg16-397923af.pth``: also train the transfer-learning variant.
    progress
        Optional ``(description, done, total)`` callback for the steps and training batches.

    Raises
    ------
    OutputError
        When ``out_dir`` holds something else than a demo run with these settings.
    InputError
        For a real-data folder or ImageNet weights file that does not exist.
    """
    out_dir = Path(out_dir)
    if real_data is not None and not Path(real_data).is_dir():
        raise InputError(real_data, "real-data folder does not exist", "pass the shared folder, e.g. ../shared/data/real")
    if imagenet_weights is not None and not Path(imagenet_weights).is_file():
        raise InputError(imagenet_weights, "ImageNet weights file does not exist", "pass torchvision's vgg16-397923af.pth")
    plan = QUICK_COHORT if quick else FULL_COHORT
    settings = {
        "quick": quick, "seed": seed, "cohort": dataclasses.asdict(plan),
        "real_data": str(Path(real_data).resolve()) if real_data is not None else None,
        "imagenet_weights": str(Path(imagenet_weights).resolve()) if imagenet_weights is not None else None,
    }
    _start(out_dir, settings)
    variants = [v for v in SEGMENTATION_VARIANTS if v != "transfer" or imagenet_weights is not None] + [VOLUME_VARIANT]
    steps = StepRunner(out_dir, settings, total=7 + 2 * len(variants), progress=progress)
    cohort_dir, labels_dir = out_dir / "cohort", out_dir / "labels"
    training_manifest = labels_dir / "manifest.tsv"
    failures: list[dict[str, str]] = []

    steps.run("cohort", "synthesize the phantom cohort", lambda: _cohort_step(cohort_dir, plan, seed, real_data))
    failures += _failed("prepare", steps.run("prepare", "prepare (N4, brain mask, normalisation, crop)",
                                             lambda: _prepare_step(cohort_dir, labels_dir, quick)))
    failures += _failed("bronze", steps.run("bronze", "bronze labels (classical WMH segmenters)",
                                            lambda: _bronze_step(labels_dir, seed)))
    failures += _failed("silver", steps.run("silver", "silver labels (STAPLE consensus)",
                                            lambda: _silver_step(labels_dir)))
    models: dict[str, Path] = {}
    for variant in variants:
        run_dir = out_dir / "models" / variant
        if variant == VOLUME_VARIANT:
            config = volume_config(quick=quick, seed=seed)
            steps.run(f"train-{variant}", f"train {variant} (weak labels: {config.name})",
                      partial(train_volume_model, config, run_dir, training_manifest))
            models[variant] = run_dir / f"seed-{seed}" / "model"
        else:
            weights = imagenet_weights if variant == "transfer" else None
            steps.run(f"train-{variant}", f"train {variant}",
                      partial(_train_step, variant, run_dir, training_manifest, quick, seed, weights, progress))
            models[variant] = run_dir / "model"
    predictions: dict[str, dict[str, Path]] = {}
    for variant, model_dir in models.items():
        result = steps.run(f"predict-{variant}", f"predict the held-out scans with {variant}",
                           partial(_predict_step, model_dir, cohort_dir / TEST_MANIFEST,
                                   out_dir / "predictions" / variant))
        failures += _failed(f"predict {variant}", result)
        predictions[variant] = {name: out_dir / path for name, path in result["masks"].items()}
    steps.run("evaluate", "evaluate against the gold masks",
              lambda: _evaluate_step(out_dir, cohort_dir / TEST_MANIFEST, predictions))
    steps.run("stats", "statistics (ANOVA, Holm) by variant, stage and scanner", lambda: _stats_step(out_dir))
    failure_table = pd.DataFrame(failures, columns=["demo_step", "subject", "session", "error"])
    write_text_atomic(out_dir / FAILURES_FILE, failure_table.to_csv(sep="\t", index=False, lineterminator="\n"))
    steps.run("report", "HTML report and summary", lambda: _report_step(out_dir, list(models)))
    summary = pd.read_csv(out_dir / SUMMARY_FILE, sep="\t")
    return DemoResult(summary, out_dir / METRICS_FILE, out_dir / "report.html", predictions, failure_table,
                      steps.records)


def _start(out_dir: Path, settings: dict[str, Any]) -> None:
    """Create ``out_dir`` with ``demo.json``, or check that the demo run already there has these settings."""
    record_path = out_dir / SETTINGS_FILE
    if record_path.is_file():
        recorded = json.loads(record_path.read_text(encoding="utf-8"))
        if recorded.get("settings") != settings:
            raise OutputError(f"{out_dir} holds a demo run with other settings ({recorded.get('settings')}); "
                              "rerun with those settings to resume it, or choose a new --out")
        log.info("resuming the demo run in %s", out_dir)
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise OutputError(f"{out_dir} exists and holds no demo run ({SETTINGS_FILE}); choose a new or empty --out")
    record = {"step": "demo", "settings": settings, "wmhkit_version": __version__,
              "data": "phantoms on the MNI ICBM152 2009a template" + (" and real scans" if settings["real_data"] else "")}
    write_text_atomic(record_path, json.dumps(record, indent=2) + "\n")


def _cohort_step(cohort_dir: Path, plan: CohortPlan, seed: int, real_data: str | os.PathLike[str] | None) -> dict:
    files = build_cohort(cohort_dir, plan, seed=seed, real_data=real_data)
    training, test = read_manifest(files.training), read_manifest(files.test)
    return {"training_scans": len(training), "test_scans": len(test),
            "roles": training.table["demo_role"].value_counts().sort_index().to_dict()}


def _prepare_step(cohort_dir: Path, labels_dir: Path, quick: bool) -> dict:
    options = PrepareOptions(n4_settings=QUICK_N4, qc_png=False) if quick else PrepareOptions()
    result = prepare_manifest(cohort_dir / TRAINING_MANIFEST, labels_dir / "prepared", options=options)
    return {"prepared": len(result.scans), "failures": [_failure(f) for f in result.failures]}


def _bronze_step(labels_dir: Path, seed: int) -> dict:
    result = bronze_manifest(labels_dir / "prepared" / "manifest.tsv", labels_dir, options=BronzeOptions(seed=seed))
    return {"masks": sum(len(scan.outputs) for scan in result.scans.values()),
            "failures": [_failure(f, f.method) for f in result.failures]}


def _silver_step(labels_dir: Path) -> dict:
    result = silver_manifest(labels_dir / "manifest.tsv", labels_dir)
    summary = result.raters.groupby("method")[["sensitivity", "specificity"]].mean() if len(result.raters) else None
    raters = {} if summary is None else {name: {k: round(float(v), 4) for k, v in values.items()}
                                         for name, values in summary.iterrows()}
    return {"silver": len(result.scans), "raters": raters, "failures": [_failure(f) for f in result.failures]}


def _train_step(variant: str, run_dir: Path, manifest: Path, quick: bool, seed: int,
                imagenet_weights: str | os.PathLike[str] | None, progress: Progress | None) -> dict:
    config = segmentation_config(variant, manifest, quick=quick, seed=seed, imagenet_weights=imagenet_weights)
    log.info("%s: config %s, pad shape %s", variant, config.name, list(config.data.pad_shape))
    return train_segmentation(config, run_dir, manifest, progress=progress)


def _predict_step(model_dir: Path, test_manifest: Path, predictions_dir: Path) -> dict:
    result = predict_manifest(model_dir, test_manifest, predictions_dir)
    out_dir = predictions_dir.parent.parent
    masks = {name: relative_path(files["wmh"], out_dir) for name, files in sorted(result.outputs.items())}
    return {"masks": masks, "failures": [_failure(f) for f in result.failures]}


def _evaluate_step(out_dir: Path, test_manifest: Path, predictions: dict[str, dict[str, Path]]) -> dict:
    """Write the run manifest (held-out scans + ``pred_<variant>`` columns) and ``metrics.csv``."""
    test = read_manifest(test_manifest)
    keep = [c for c in ("subject", "session", "dataset", "scanner", "stage", "age", "sex", "flair", "brain_mask",
                        "gold", "volume_ml", "fazekas") if c in test.table.columns]
    table = test.table[keep].copy()
    for column in ("flair", "brain_mask", "gold"):
        if column in table.columns:
            table[column] = [relative_path(test.root / cell, out_dir) if cell else "" for cell in table[column]]
    names = [test.scan_id(row) for row in test.rows()]
    for variant, masks in predictions.items():
        table[f"pred_{variant}"] = [relative_path(masks[name], out_dir) if name in masks else "" for name in names]
    write_manifest(table, out_dir / RUN_MANIFEST)
    run = read_manifest(out_dir / RUN_MANIFEST)
    frames = []
    for variant in predictions:
        column = f"pred_{variant}"
        predicted = Manifest(run.table[run.table[column] != ""].reset_index(drop=True), run.root, run.source)
        if len(predicted) == 0:
            log.warning("%s predicted no held-out scan; not evaluated", variant)
            continue
        frame = evaluate_cohort(manifest=predicted, columns=(column, "gold"))
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("pred_")])
        frame.insert(0, "variant", variant)
        frames.append(frame)
    metrics = pd.concat(frames, ignore_index=True)
    write_csv(metrics, out_dir / METRICS_FILE)
    return {"rows": len(metrics), "mean_dice": {v: round(float(m["dice"].mean()), 4)
                                                for v, m in metrics.groupby("variant", sort=True)}}


def _stats_step(out_dir: Path) -> dict:
    """Statistics of the phantom test scans (real scans are too few and too different to pool with them)."""
    metrics = pd.read_csv(out_dir / METRICS_FILE, dtype={"subject": str, "session": str, "stage": str,
                                                         "scanner": str, "dataset": str, "variant": str},
                          keep_default_na=False, na_values=[""])
    phantoms = metrics[metrics["dataset"] == "phantom"]
    by = [c for c in STATS_GROUPINGS if c in phantoms.columns]
    try:
        results = analyse_metrics(phantoms, by=by, volumes=("vol_gold_ml", "vol_pred_ml"))
    except ValueError as exc:  # volume agreement needs 3 scans per variant
        log.info("stats: no volume agreement (%s)", exc)
        results = analyse_metrics(phantoms, by=by)
    written = write_results(results, out_dir / "stats")
    anova = results["anova"]
    significant = anova[anova["significant"]] if len(anova) else anova
    return {"tables": sorted(p.name for p in written),
            "significant": [f"{r.metric} by {r.grouping} ({r.subset})" for r in significant.itertuples()]}


def _report_step(out_dir: Path, variants: list[str]) -> dict:
    metrics = pd.read_csv(out_dir / METRICS_FILE, dtype={"dataset": str, "variant": str}, keep_default_na=False,
                          na_values=[""])
    summary = summary_table(metrics, variants)
    write_text_atomic(out_dir / SUMMARY_FILE,
                      summary.to_csv(sep="\t", index=False, float_format="%.4f", lineterminator="\n"))
    report = write_report(out_dir)
    return {"report": relative_path(report, out_dir), "summary": relative_path(out_dir / SUMMARY_FILE, out_dir)}


def _failure(failure: Any, method: str = "") -> dict[str, str]:
    error = f"[{method}] {failure.error}" if method else failure.error
    return {"subject": failure.subject, "session": failure.session, "error": error}


def _failed(step: str, result: dict) -> list[dict[str, str]]:
    return [{"demo_step": step, **failure} for failure in result.get("failures", [])]
