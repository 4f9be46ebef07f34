"""Real-data check: the starter model, silver and every bronze method on the annotated Lesjak scans.

Usage::

    python benchmarks/bench_real.py --real-data ../shared/data/real --out /tmp/bench_real

Real data: Lesjak Ž. et al., "A novel public MR image dataset of multiple sclerosis patients
with lesion segmentations based on multi-rater consensus", Neuroinformatics 16:51–63 (2018),
CC-BY 4.0. Three scans carry the expert consensus mask (patients 07, 19, 26); results on
them are a sanity check on real anatomy, not a clinical validation (MS lesions, not the
small-vessel WMH wmhkit targets).

Rows, per annotated scan (metrics of :func:`wmhkit.metrics.segmentation.segmentation_metrics`
against the consensus mask, on the scan's own 1 mm grid):

* ``starter (shipped)``: ``wmhkit predict`` with ``--model`` (default: the bundled starter
  model) on the scan's FLAIR. The shipped model was trained on all three annotated scans
  (its gold stage), so this row is a *training-set* figure.

The leave-one-out figures (each annotated scan scored by a model trained without its mask) are
made by ``build_starter.py`` (``WORK/evaluation/loo.tsv``); bronze and silver on these scans by
``bench_labels.py``.

QC overlays (``OUT/qc``): each annotated scan with consensus, starter and silver contours;
every raw clinical FLAIR (LPS, 2D, skull on) and the two other real FLAIRs with the starter
model's mask. Writes ``OUT/results.json``, ``OUT/metrics.tsv`` and prints a Markdown table.
Set ``OMP_NUM_THREADS=1`` and ``nice -n 10`` on a shared machine; wall times are then upper bounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from wmhkit.infer.predict import predict_scans
from wmhkit.infer.starter import starter_model_dir
from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.metrics.segmentation import (
    METRIC_COLUMNS,
    segmentation_metrics,
    wmh_from_gold,
)
from wmhkit.qc.overlay import save_overlay_png

SUMMARY_METRICS = ("dice", "hd95_mm", "avd_pct", "lesion_f1", "vol_pred_ml", "vol_gold_ml")

log = logging.getLogger("bench_real")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-data", type=Path, required=True, help="the shared real-data folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled starter)")
    parser.add_argument("--no-clinical", action="store_true", help="skip the QC overlays of the raw clinical FLAIRs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)

    model = args.model if args.model is not None else starter_model_dir()
    out = args.out.resolve()
    annotated = sorted((args.real_data / "lesjak2018" / "annotated").iterdir())
    rows: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    for patient in annotated:
        scan_id = f"lesjak-{patient.name}"
        flair = load_image(patient / "FLAIR.nii.gz")
        gold = load_mask(patient / "consensus.nii.gz", allowed_labels=(0, 1, 2))
        masks: dict[str, Image] = {}
        seconds, masks["starter (shipped)"] = predict_one(model, patient / "FLAIR.nii.gz", out / "predict" / "shipped" / patient.name)
        timings.append({"scan": scan_id, "model": "starter (shipped)", "predict_s": seconds})
        wmh, other = wmh_from_gold(gold.array)
        for method, mask in masks.items():
            if not mask.same_grid(gold):
                raise SystemExit(f"{scan_id}: {method} mask is not on the consensus grid")
            metrics = segmentation_metrics((mask.array > 0) & ~other, wmh, gold.affine)
            rows.append({"scan": scan_id, "method": method, **metrics})
        overlay = {"consensus": gold, **masks}
        save_overlay_png(flair, out / "qc" / f"{scan_id}.png", masks=overlay,
                         title=f"{scan_id} (Lesjak 2018, CC-BY 4.0): consensus vs wmhkit")
    if not args.no_clinical:
        timings += clinical_overlays(model, args.real_data, out)
    write_results(rows, timings, out, args)
    return 0


def predict_one(model: Path, flair: Path, out: Path) -> tuple[float, Image]:
    """Run ``predict`` on one FLAIR into ``out``; return the wall seconds and the native-grid mask."""
    started = time.perf_counter()
    result = predict_scans(model, [flair], out)
    seconds = time.perf_counter() - started
    if result.failures:
        raise SystemExit(f"{flair}: predict failed: {result.failures[0].reason}")
    return seconds, load_mask(next(iter(result.outputs.values()))["wmh"])


def clinical_overlays(model: Path, real_data: Path, out: Path) -> list[dict[str, Any]]:
    """Starter masks and QC overlays of every raw clinical Lesjak FLAIR and the other real FLAIRs."""
    scans = {f"lesjak-{study.name}": study / "FLAIR.nii.gz"
             for study in sorted((real_data / "lesjak2018" / "unannotated").iterdir())}
    for name in ("niivue", "synthsr-demo"):
        path = real_data / "unannotated-other" / f"{name}-FLAIR.nii.gz"
        if path.exists():
            scans[name] = path
    timings = []
    for name, flair_path in scans.items():
        seconds, wmh = predict_one(model, flair_path, out / "predict" / "clinical" / name)
        flair = load_image(flair_path)
        volume_ml = float(wmh.array.sum()) * flair.voxel_volume_ml
        save_overlay_png(flair, out / "qc" / f"{name}.png", masks={"starter": wmh},
                         title=f"{name}: starter model WMH {volume_ml:.1f} mL (raw FLAIR, no annotation)")
        timings.append({"scan": name, "model": "starter (shipped)", "predict_s": seconds, "wmh_ml": volume_ml,
                        "shape": list(flair.shape), "spacing_mm": [round(s, 3) for s in flair.spacing_mm]})
    return timings


def write_results(rows: list[dict[str, Any]], timings: list[dict[str, Any]], out: Path, args: argparse.Namespace) -> None:
    """``metrics.tsv``, ``results.json`` and the Markdown tables on stdout."""
    table = pd.DataFrame(rows, columns=["scan", "method", *METRIC_COLUMNS])
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "metrics.tsv", sep="\t", index=False, float_format="%.6g")
    order = list(dict.fromkeys(table["method"]))
    summary = table.groupby("method", sort=False)[list(SUMMARY_METRICS)].mean().reindex(order)
    record = {
        "command": " ".join(sys.argv),
        "data": "Lesjak et al. 2018, Neuroinformatics 16:51-63, CC-BY 4.0 (annotated patients 07, 19, 26)",
        "per_scan": _json_ready(table.to_dict(orient="records")),
        "mean": _json_ready(summary.reset_index().to_dict(orient="records")),
        "predict": _json_ready(timings),
    }
    (out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    print("| method | " + " | ".join(f"{scan} Dice" for scan in dict.fromkeys(table["scan"]))
          + " | mean Dice | mean HD95 (mm) | mean AVD (%) | mean lesion F1 |")
    print("|---" * (5 + table["scan"].nunique()) + "|")
    for method in order:
        per_scan = table[table["method"] == method].set_index("scan")["dice"]
        mean = summary.loc[method]
        print(f"| {method} | " + " | ".join(f"{v:.3f}" for v in per_scan)
              + f" | **{mean['dice']:.3f}** | {mean['hd95_mm']:.1f} | {mean['avd_pct']:.1f} | {mean['lesion_f1']:.3f} |")
    if timings:
        print("\n| scan | predict wall s | WMH mL (unannotated scans) |\n|---|---|---|")
        for timing in timings:
            volume = f"{timing['wmh_ml']:.1f}" if "wmh_ml" in timing else "—"
            print(f"| {timing['scan']} ({timing['model']}) | {timing['predict_s']:.1f} | {volume} |")


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
