"""Benchmark the phantom synthesizer: speed per scanner profile, burden per stage, and difficulty.

Usage::

    python benchmarks/bench_synth.py --out bench-out/synth --subjects 15 [--seed 0] \
        [--scanners A,B,C,D,E] [--lesion-library ../shared/data/real/lesjak2018/consensus-masks-mni]

For every subject: wall and CPU seconds to synthesize and write it (the
one-off template load is timed separately), its gold WMH volume and Fazekas
grade, and the Dice against the gold of an Otsu threshold of the FLAIR inside
the true brain mask (SimpleITK's Otsu) and of the best single global threshold
(an oracle upper bound for intensity thresholding). A high Otsu Dice would mean the phantoms are too easy: real
FLAIR has GM brighter than WM, a bright periventricular rim, faint lesions,
bias and noise, and so should these. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.synth import synthesize_subject
from wmhkit.synth.template import load_template


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (1.0 when both are empty)."""
    total = float(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / total if total else 1.0


def threshold_dice(flair_path: Path, brain_path: Path, gold_path: Path) -> tuple[float, float]:
    """Dice against gold of (FLAIR > Otsu threshold inside the true brain), and of the best
    single global threshold (an oracle: tried at the 80th–99.9th brain percentiles)."""
    flair = load_image(flair_path)
    brain = load_mask(brain_path)
    gold = load_mask(gold_path).array > 0
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.SetMaskValue(1)
    otsu.SetMaskOutput(True)
    bright = sitk.GetArrayFromImage(otsu.Execute(sitk.GetImageFromArray(flair.array),
                                                 sitk.GetImageFromArray(brain.array))) > 0
    inside = brain.array > 0
    bright &= inside
    values = flair.array[inside]
    best = max(dice((flair.array > t) & inside, gold)
               for t in np.percentile(values, np.linspace(80.0, 99.9, 60)))
    return dice(bright, gold), best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the phantom cohort")
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scanners", default="A,B,C,D,E")
    parser.add_argument("--lesion-library", type=Path, default=None)
    parser.add_argument("--resolution-mm", type=float, default=1.0)
    args = parser.parse_args(argv)
    scanners = [s.strip() for s in args.scanners.split(",") if s.strip()]

    start = time.perf_counter()
    load_template(args.resolution_mm)
    template_seconds = time.perf_counter() - start
    rows, seconds, cpu_seconds = [], [], []
    for index in range(1, args.subjects + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        rows.append(synthesize_subject(
            args.out, index, seed=args.seed, scanner=scanners[(index - 1) % len(scanners)],
            lesion_library=args.lesion_library, resolution_mm=args.resolution_mm,
        ))
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    table = pd.DataFrame(rows)
    write_manifest(table, args.out / "manifest.tsv")
    table["seconds"] = seconds
    table["cpu_seconds"] = cpu_seconds
    table["volume_ml"] = table["volume_ml"].astype(float)
    table["fazekas"] = table["fazekas"].astype(int)
    scores = [threshold_dice(args.out / r["flair"], args.out / r["true_brain_mask"], args.out / r["gold"])
              for _, r in table.iterrows()]
    table["otsu_dice"] = [otsu for otsu, _ in scores]
    table["best_dice"] = [best for _, best in scores]

    print(f"Phantom benchmark: {args.subjects} subjects, seed {args.seed}, resolution {args.resolution_mm} mm, "
          f"template load {template_seconds:.1f} s (once per process)\n")
    print("| scanner | n | wall s/subject (mean, max) | CPU s/subject (mean) | Otsu Dice (mean, max) "
          "| best-threshold Dice (mean, max) |")
    print("|---|---|---|---|---|---|")
    for scanner, group in [*table.groupby("scanner"), ("all", table)]:
        print(f"| {scanner} | {len(group)} | {group.seconds.mean():.2f}, {group.seconds.max():.2f} | "
              f"{group.cpu_seconds.mean():.2f} | {group.otsu_dice.mean():.3f}, {group.otsu_dice.max():.3f} | "
              f"{group.best_dice.mean():.3f}, {group.best_dice.max():.3f} |")
    print()
    print("| stage | n | age (mean) | WMH volume_ml (mean) | volume_ml (median) | Fazekas (mean) |")
    print("|---|---|---|---|---|---|")
    by_stage = dict(tuple(table.groupby("stage")))
    for stage in ("CN", "MCI", "AD"):
        group = by_stage.get(stage)
        if group is None:
            print(f"| {stage} | 0 | | | | |")
            continue
        print(f"| {stage} | {len(group)} | {group.age.astype(float).mean():.1f} | {group.volume_ml.mean():.2f} | "
              f"{np.median(group.volume_ml):.2f} | {group.fazekas.mean():.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
