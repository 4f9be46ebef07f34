"""Benchmark brain extraction on real scans (volume, time, QC picture) and on head phantoms (Dice).

Usage::

    python benchmarks/bench_brain_mask.py --real-data ../shared/data/real --out bench-out/brain_mask \
        [--method hdbet|template] [--only NAME ...] [--nichart 3] [--phantoms 3] [--seed 0]

Every scan goes through :func:`wmhkit.preprocess.brain_extraction.extract_brain`
on its RAS+ reoriented FLAIR, as ``prepare`` runs it: an input already skull
stripped is masked by its non-background region, any other by ``--method``
(default hdbet), with the other method as fallback; the table names the method
actually used.

Real scans: every raw clinical FLAIR of lesjak2018/unannotated, the whole-head
3D FLAIR of unannotated-other, the first ``--nichart`` whole-head 2 mm FLAIRs of
nichart-demo, and the already skull-stripped FLAIRs (where the mask must keep
the nonzero brain); ``--only`` keeps the scans whose name contains one of the
given strings. For each: brain volume (mL), seconds, the fraction of nonzero
voxels kept (skull-stripped inputs), the fraction of lesion voxels inside the
mask (expert consensus of lesjak2018/annotated, DLWMLS masks of nichart-demo),
and a QC PNG with the mask contour in ``--out``. Phantoms (when ``wmhkit.synth``
is available): Dice of the computed mask against the phantom's true brain.
Prints one Markdown table; the peak RSS is that of the whole run (run one scan
under ``/usr/bin/time -v`` for a per-scan figure).
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
from wmhkit.preprocess.brain_extraction import BRAIN_EXTRACTORS, extract_brain
from wmhkit.preprocess.orientation import to_canonical
from wmhkit.qc.overlay import save_overlay_png


def real_scans(root: Path, nichart: int = 0) -> list[tuple[str, Path, bool, Path | None]]:
    """(name, path, skull_stripped, lesion mask or None) of every real FLAIR used."""
    scans: list[tuple[str, Path, bool, Path | None]] = [
        (p.parent.name, p, False, None) for p in sorted((root / "lesjak2018/unannotated").glob("*/FLAIR.nii.gz"))]
    scans.append(("synthsr-demo", root / "unannotated-other/synthsr-demo-FLAIR.nii.gz", False, None))
    subjects = sorted((root / "nichart-demo").glob("Subj*/FLAIR.nii.gz"), key=lambda p: int(p.parent.name[4:]))
    scans += [(f"nichart-{p.parent.name}", p, False, p.parent / "dlwmls.nii.gz") for p in subjects[:nichart]]
    scans.append(("niivue (stripped)", root / "unannotated-other/niivue-FLAIR.nii.gz", True, None))
    scans += [(f"{p.parent.name} (stripped)", p, True, p.parent / "consensus.nii.gz")
              for p in sorted((root / "lesjak2018/annotated").glob("*/FLAIR.nii.gz"))]
    return [s for s in scans if s[1].exists()]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary arrays."""
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def timed_mask(flair: Image, method: str, source: Path | None = None) -> tuple[Image, str, float]:
    """Brain mask of a RAS+ FLAIR as prepare makes it: (mask, method used, seconds)."""
    start = time.perf_counter()
    result = extract_brain(flair, method=method, source=source)
    return result.mask, result.method, time.perf_counter() - start


def bench_real(root: Path, out: Path, method: str, only: list[str], nichart: int) -> list[str]:
    rows = []
    for name, path, stripped, lesion_path in real_scans(root, nichart):
        if only and not any(part in name for part in only):
            continue
        flair, _ = to_canonical(load_image(path))
        mask, used, seconds = timed_mask(flair, method, path)
        brain = mask.array > 0
        volume_ml = float(brain.sum()) * flair.voxel_volume_ml
        kept = inside = ""
        if stripped:
            nonzero = flair.array > 0
            kept = f"{float((brain & nonzero).sum()) / nonzero.sum():.3f}"
        if lesion_path is not None and lesion_path.exists():
            lesions, _ = to_canonical(load_mask(lesion_path, allowed_labels=(0, 1, 2)))
            lesion = lesions.array == 1
            inside = f"{float((brain & lesion).sum()) / max(float(lesion.sum()), 1.0):.4f}"
        png = save_overlay_png(flair, out / f"{name.split()[0]}-{method}.png", masks={"brain": mask},
                               title=f"{name}: {used}, {volume_ml:.0f} mL")
        rows.append(f"| {name} | {'x'.join(map(str, flair.shape))} | "
                    f"{'x'.join(f'{s:.2f}' for s in flair.spacing_mm)} | {used} | {volume_ml:.0f} | {kept} | "
                    f"{inside} | {seconds:.1f} | {png.name} |")
    return rows


def bench_phantoms(n: int, seed: int, out: Path, method: str) -> list[str]:
    try:
        from wmhkit.synth import synthesize_cohort
    except ImportError:
        return ["| phantoms | wmhkit.synth not available | | | | | | | |"]
    import pandas as pd

    phantom_dir = out / "phantoms"
    manifest_path = Path(synthesize_cohort(phantom_dir, n_subjects=n, seed=seed))
    manifest = pd.read_csv(manifest_path, sep="\t", dtype=str)
    rows = []
    for _, row in manifest.iterrows():
        flair, _ = to_canonical(load_image(manifest_path.parent / row["flair"]))
        truth, _ = to_canonical(load_mask(manifest_path.parent / row["true_brain_mask"]))
        mask, used, seconds = timed_mask(flair, method)
        score = dice(mask.array, truth.array)
        volume_ml = float(mask.array.sum()) * flair.voxel_volume_ml
        png = save_overlay_png(flair, out / f"phantom-{row['subject']}.png",
                               masks={"brain": mask, "true brain": truth},
                               title=f"phantom {row['subject']}: {used}, Dice {score:.3f}")
        rows.append(f"| phantom {row['subject']} (Dice {score:.3f}) | {'x'.join(map(str, flair.shape))} | "
                    f"{'x'.join(f'{s:.2f}' for s in flair.spacing_mm)} | {used} | {volume_ml:.0f} | | | "
                    f"{seconds:.1f} | {png.name} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-data", type=Path, required=True, help="folder holding lesjak2018/ and unannotated-other/")
    parser.add_argument("--out", type=Path, required=True, help="folder for QC PNGs (and phantoms)")
    parser.add_argument("--phantoms", type=int, default=0, help="number of head phantoms to score (needs wmhkit.synth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="hdbet", choices=sorted(BRAIN_EXTRACTORS),
                        help="brain extractor for scans that are not skull stripped (the other is the fallback)")
    parser.add_argument("--only", nargs="*", default=[], help="keep only the real scans whose name contains one of these")
    parser.add_argument("--nichart", type=int, default=0, help="number of nichart-demo whole-head FLAIRs to add")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = bench_real(args.real_data, args.out, args.method, args.only, args.nichart)
    if args.phantoms:
        rows += bench_phantoms(args.phantoms, args.seed, args.out, args.method)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| scan | shape | spacing (mm) | method | brain (mL) | nonzero kept | lesion voxels inside | seconds | QC |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\npeak RSS of the whole run: {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
