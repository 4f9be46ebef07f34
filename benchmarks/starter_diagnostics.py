"""Two checks of a starter build's models (``benchmarks/build_starter.py``) behind BENCHMARKS.md's session-8 figures.

Usage::

    python benchmarks/starter_diagnostics.py fit MODEL WORK/prepared/lesjak-patient19 ...
    python benchmarks/starter_diagnostics.py rethreshold WORK m3sl 0.5,0.3,0.2

``fit``: a model applied to *prepared* scans (folders holding ``flair.nii.gz``, ``brain_mask.nii.gz`` and
``gold.nii.gz`` on the working grid: the exact images a gold stage trains on), Dice against the prepared gold at
0.5 and 0.2, and the median fused probability inside the gold. On a scan the model trained on, a low Dice means
the network cannot fit it (under-fitting), not that it fails to generalise.

``rethreshold``: the build's final predictions of one twin (``WORK/evaluation/work/*/predict-TWIN/*_wmhprob.nii.gz``,
native grid) thresholded again: mean Dice against DLWMLS on the NiChart scans (with mean volume and ICC(2,1) of
volumes) and against the truth on the unseen phantoms, per threshold. At the model's own threshold it reproduces the
build's ``final-TWIN.tsv`` Dice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wmhkit.io.nifti import load_image, load_mask
from wmhkit.metrics.segmentation import dice
from wmhkit.metrics.volume import icc_2_1
from wmhkit.models.predictors import load_predictor

NICHART = Path("nichart-demo")


def fit(model: Path, scans: list[Path]) -> None:
    predictor = load_predictor(model)
    print("| scan | Dice @0.5 | Dice @0.2 | median probability in gold |\n|---|---|---|---|")
    for folder in scans:
        prepared = {"flair": load_image(folder / "flair.nii.gz"), "brain_mask": load_mask(folder / "brain_mask.nii.gz")}
        gold = load_mask(folder / "gold.nii.gz", allowed_labels=(0, 1, 2)).array == 1
        probability = predictor.predict(prepared).wmh_prob.array
        print(f"| {folder.name} | {dice(probability >= 0.5, gold):.3f} | {dice(probability >= 0.2, gold):.3f} | "
              f"{np.median(probability[gold]):.3f} |")


def rethreshold(work: Path, twin: str, thresholds: list[float], real_data: Path) -> None:
    scores = {t: {"nichart": [], "phantoms": [], "volumes": []} for t in thresholds}
    reference_volumes = []
    for folder in sorted((work / "evaluation" / "work").iterdir()):
        maps = sorted((folder / f"predict-{twin}").glob("*_wmhprob.nii.gz"))
        if not maps:
            continue
        if folder.name.startswith("nichart-"):
            group = "nichart"
            reference = load_mask(real_data / NICHART / folder.name.removeprefix("nichart-") / "dlwmls.nii.gz")
        elif folder.name.startswith("phantom-"):
            group = "phantoms"
            subject = "-".join(folder.name.split("-")[1:3])
            reference = load_mask(work / "evaluation" / "phantoms" / subject / f"{subject}_gold.nii.gz",
                                  allowed_labels=(0, 1, 2))
        else:
            continue
        probability = load_image(maps[0])
        truth = reference.array == 1
        if group == "nichart":
            reference_volumes.append(truth.sum() * probability.voxel_volume_ml)
        for threshold in thresholds:
            mask = probability.array >= threshold
            scores[threshold][group].append(dice(mask, truth))
            if group == "nichart":
                scores[threshold]["volumes"].append(mask.sum() * probability.voxel_volume_ml)
    print("| threshold | NiChart Dice vs DLWMLS | NiChart mean volume mL | volume ICC(2,1) | unseen phantoms Dice |")
    print("|---|---|---|---|---|")
    for threshold, score in scores.items():
        icc = icc_2_1(np.asarray(reference_volumes), np.asarray(score["volumes"])).icc
        print(f"| {threshold} | {np.mean(score['nichart']):.3f} (n = {len(score['nichart'])}) | "
              f"{np.mean(score['volumes']):.1f} | {icc:.2f} | {np.mean(score['phantoms']):.3f} "
              f"(n = {len(score['phantoms'])}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="a model on prepared training inputs")
    fit_parser.add_argument("model", type=Path)
    fit_parser.add_argument("scans", type=Path, nargs="+")
    again = commands.add_parser("rethreshold", help="a build's final probability maps at other thresholds")
    again.add_argument("work", type=Path)
    again.add_argument("twin")
    again.add_argument("thresholds", help="comma-separated, e.g. 0.5,0.2")
    again.add_argument("--real-data", type=Path, default=Path("../shared/data/real"))
    args = parser.parse_args()
    if args.command == "fit":
        fit(args.model, args.scans)
    else:
        rethreshold(args.work, args.twin, [float(t) for t in args.thresholds.split(",")], args.real_data)


if __name__ == "__main__":
    main()
