"""A realistic run folder built from tiny synthetic scans: manifest, metrics of two variants, stats, failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import save_image, save_mask
from wmhkit.io.provenance import write_sidecar
from wmhkit.metrics.evaluate import evaluate_cohort
from wmhkit.report import write_report
from wmhkit.stats.analysis import analyse_metrics, write_results
from wmhkit.stats.tables import write_csv

SHAPE = (40, 48, 14)
AFFINE = np.diag([2.0, 2.0, 4.0, 1.0])
STAGES = ("CN", "MCI", "AD")
SCANNERS = ("A", "B", "C", "D", "E")
VARIANTS = ("baseline", "m3sl")


def _scan(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A head-like FLAIR with bright lesions, its gold mask and four imperfect segmentations."""
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = (np.array(SHAPE) - 1) / 2
    radii = np.array([17.0, 21.0, 6.0])
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
    lesions = np.zeros(SHAPE, bool)
    for _ in range(rng.integers(2, 6)):
        at = centre + rng.uniform(-0.5, 0.5, 3) * radii
        size = rng.uniform(1.5, 3.5)
        semi_axes = np.array([size, size, size / 2])[:, None, None, None]
        lesions |= (((grid - at[:, None, None, None]) / semi_axes) ** 2).sum(0) <= 1
    lesions &= brain
    flair = np.where(brain, 0.45, 0.02) + 0.5 * lesions + rng.normal(0, 0.03, SHAPE)
    noise = ndimage.binary_dilation(rng.random(SHAPE) < 0.0006) & brain  # small false-positive blobs
    baseline = ndimage.binary_dilation(lesions) if rng.random() < 0.5 else ndimage.binary_erosion(lesions)
    baseline |= noise
    # M3SL is usually better than the baseline, but not for every scan.
    m3sl = lesions ^ ((rng.random(SHAPE) < rng.choice([0.1, 0.6], p=[0.75, 0.25])) & ndimage.binary_dilation(lesions))
    silver = ndimage.binary_opening(lesions | noise)
    bronze = (flair > 0.7) & brain
    return {"flair": flair.astype(np.float32), "brain": brain, "gold": lesions, "pred_baseline": baseline,
            "pred_m3sl": m3sl, "silver": silver, "bronze_threshold": bronze}


def build_run(root: Path, *, subjects: int = 15, with_stats: bool = True, seed: int = 0) -> Path:
    """Write a run folder under ``root`` and return it.

    Contents: ``manifest.tsv`` (flair, brain_mask, gold, silver, bronze_threshold,
    pred_baseline, pred_m3sl), ``metrics.csv`` (both variants scored by
    ``evaluate_cohort``), ``metrics.csv.json``, ``config.yaml``, ``failures.tsv``
    (one failed scan) and, with ``with_stats``, ``stats/``.
    """
    rng = np.random.default_rng(seed)
    run = root / "run"
    rows = []
    for k in range(1, subjects + 1):
        subject = f"sub-{k:03d}"
        folder = run / subject
        folder.mkdir(parents=True)
        scan = _scan(rng)
        if k == 4:  # one scan where the baseline finds nothing: NaN HD95, flag empty_prediction
            scan["pred_baseline"] = np.zeros(SHAPE, bool)
        row = {"subject": subject, "dataset": "phantom" if k % 3 else "lesjak2018",
               "scanner": SCANNERS[(k - 1) % 5], "stage": STAGES[(k - 1) % 3],
               "age": f"{60 + (k * 7) % 30}", "sex": "FM"[k % 2]}
        save_image(Image(scan["flair"], AFFINE), folder / "flair.nii.gz")
        row["flair"] = f"{subject}/flair.nii.gz"
        for name in ("brain", "gold", "silver", "bronze_threshold", "pred_baseline", "pred_m3sl"):
            save_mask(Image(scan[name].astype(np.uint8), AFFINE), folder / f"{name}.nii.gz")
            row["brain_mask" if name == "brain" else name] = f"{subject}/{name}.nii.gz"
        rows.append(row)
    manifest = write_manifest(pd.DataFrame(rows), run / "manifest.tsv")

    parts = []
    for variant in VARIANTS:
        scored = evaluate_cohort(manifest=manifest, columns=(f"pred_{variant}", "gold"))
        scored = scored.drop(columns=[c for c in scored.columns if c.startswith("pred_")])
        scored.insert(2, "variant", variant)
        parts.append(scored)
    metrics = pd.concat(parts, ignore_index=True)
    write_csv(metrics, run / "metrics.csv")
    write_sidecar(run / "metrics.csv", step="evaluate", inputs={"manifest": manifest},
                  parameters={"resample": False, "variants": list(VARIANTS)})
    (run / "config.yaml").write_text("stages:\n  - name: bronze\n    epochs: 2\n  - name: gold\n    epochs: 1\n")
    (run / "failures.tsv").write_text("subject\tsession\terror\nsub-099\t\tflair.nii.gz: truncated gzip stream\n")
    if with_stats:
        results = analyse_metrics(metrics, by=["variant", "stage", "scanner"], volumes=("vol_gold_ml", "vol_pred_ml"))
        write_results(results, run / "stats")
    (run / "run.json").write_text(json.dumps({"seed": seed, "subjects": subjects}))
    return run


@pytest.fixture(scope="session")
def run_builder() -> Callable[..., Path]:
    """``run_builder(root, subjects=15, with_stats=True)`` → a run folder (see :func:`build_run`)."""
    return build_run


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run folder with 15 subjects, shared by the tests that only read it."""
    return build_run(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="session")
def full_report(full_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of :func:`full_run` (3 overlay mosaics), written once."""
    return write_report(full_run, tmp_path_factory.mktemp("report") / "report.html", max_overlays=3)
