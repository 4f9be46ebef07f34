"""Benchmark brain extraction on real scans (volume, time, QC picture) and on head phantoms (Dice).

Usage::

    python benchmarks/bench_brain_mask.py --real-data ../shared/data/real --out bench-out/brain_mask \
        [--phantoms 3] [--seed 0]

Real scans: every raw clinical FLAIR of lesjak2018/unannotated, the whole-head
3D FLAIR of unannotated-other, and the already skull-stripped FLAIRs (where the
mask must keep the nonzero brain). For each: brain volume (mL), seconds, peak
RSS, the fraction of nonzero voxels kept (skull-stripped inputs), and a QC PNG
with the mask contour in ``--out``. Phantoms (when ``wmhkit.synth`` is
available): Dice of the computed mask against the phantom's true brain.
Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.preprocess.brain_mask import compute_brain_mask
from wmhkit.qc.overlay import save_overlay_png


def real_scans(root: Path) -> list[tuple[str, Path, bool]]:
    """(name, path, skull_stripped) of every real FLAIR used."""
    scans = [(p.parent.name, p, False) for p in sorted((root / "lesjak2018/unannotated").glob("*/FLAIR.nii.gz"))]
    scans.append(("synthsr-demo", root / "unannotated-other/synthsr-demo-FLAIR.nii.gz", False))
    scans.append(("niivue (stripped)", root / "unannotated-other/niivue-FLAIR.nii.gz", True))
    scans += [(f"{p.parent.name} (stripped)", p, True)
              for p in sorted((root / "lesjak2018/annotated").glob("*/FLAIR.nii.gz"))]
    return [s for s in scans if s[1].exists()]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary arrays."""
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def timed_mask(flair: Image) -> tuple[Image, float]:
    start = time.perf_counter()
    mask = compute_brain_mask(flair)
    return mask, time.perf_counter() - start


def bench_real(root: Path, out: Path) -> list[str]:
    rows = []
    for name, path, stripped in real_scans(root):
        flair = load_image(path)
        mask, seconds = timed_mask(flair)
        volume_ml = float(mask.array.sum()) * flair.voxel_volume_ml
        kept = ""
        if stripped:
            nonzero = flair.array > 0
            kept = f"{float((mask.array.astype(bool) & nonzero).sum()) / nonzero.sum():.3f}"
        png = save_overlay_png(flair, out / f"{name.split()[0]}.png", masks={"brain": mask},
                               title=f"{name}: {volume_ml:.0f} mL")
        rows.append(f"| {name} | {'x'.join(map(str, flair.shape))} | "
                    f"{'x'.join(f'{s:.2f}' for s in flair.spacing_mm)} | {volume_ml:.0f} | {kept} | "
                    f"{seconds:.1f} | {png.name} |")
    return rows


def bench_phantoms(n: int, seed: int, out: Path) -> list[str]:
    try:
        from wmhkit.synth import synthesize_cohort
    except ImportError:
        return ["| phantoms | wmhkit.synth not available | | | | | |"]
    import pandas as pd

    phantom_dir = out / "phantoms"
    manifest_path = Path(synthesize_cohort(phantom_dir, n_subjects=n, seed=seed))
    manifest = pd.read_csv(manifest_path, sep="\t", dtype=str)
    rows = []
    for _, row in manifest.iterrows():
        flair = load_image(manifest_path.parent / row["flair"])
        truth = load_mask(manifest_path.parent / row["true_brain_mask"])
        mask, seconds = timed_mask(flair)
        score = dice(mask.array, truth.array)
        volume_ml = float(mask.array.sum()) * flair.voxel_volume_ml
        png = save_overlay_png(flair, out / f"phantom-{row['subject']}.png",
                               masks={"brain": mask, "true brain": truth},
                               title=f"phantom {row['subject']}: Dice {score:.3f}")
        rows.append(f"| phantom {row['subject']} (Dice {score:.3f}) | {'x'.join(map(str, flair.shape))} | "
                    f"{'x'.join(f'{s:.2f}' for s in flair.spacing_mm)} | {volume_ml:.0f} | | "
                    f"{seconds:.1f} | {png.name} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-data", type=Path, required=True, help="folder holding lesjak2018/ and unannotated-other/")
    parser.add_argument("--out", type=Path, required=True, help="folder for QC PNGs (and phantoms)")
    parser.add_argument("--phantoms", type=int, default=0, help="number of head phantoms to score (needs wmhkit.synth)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = bench_real(args.real_data, args.out)
    if args.phantoms:
        rows += bench_phantoms(args.phantoms, args.seed, args.out)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| scan | shape | spacing (mm) | brain (mL) | nonzero kept | seconds | QC |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\npeak RSS of the whole run: {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
