"""Benchmark the FLAIR-or-T1 contrast check (:func:`wmhkit.preprocess.checks.depth_ratio`) on real scans.

Usage::

    python benchmarks/bench_contrast_check.py --real-data ../shared/data/real

For every FLAIR and T1 of lesjak2018/annotated (skull stripped: the brain is the
nonzero voxels), the skull-stripped 3D FLAIR of unannotated-other and the first
``--nichart`` NiChart subjects (whole head: brain mask computed on the FLAIR by
:func:`~wmhkit.preprocess.brain_mask.compute_brain_mask`, resampled onto the T1;
N4 bias correction first, as ``predict`` checks the prepared scan), prints the
depth ratio and whether the check flags the scan. A FLAIR must stay under
:data:`~wmhkit.preprocess.checks.T1_DEPTH_RATIO`, a T1 go over it. Prints one
Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image
from wmhkit.metrics.evaluate import resample_nearest
from wmhkit.preprocess.bias import n4_bias_correct
from wmhkit.preprocess.brain_mask import compute_brain_mask
from wmhkit.preprocess.checks import T1_DEPTH_RATIO, depth_ratio
from wmhkit.preprocess.orientation import to_canonical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-data", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--nichart", type=int, default=1, help="NiChart subjects to include (brain mask computed)")
    args = parser.parse_args()
    root = args.real_data
    stripped = sorted((root / "lesjak2018" / "annotated").glob("patient*/*.nii.gz"))
    stripped = [p for p in stripped if p.name in ("FLAIR.nii.gz", "T1.nii.gz")]
    stripped.append(root / "unannotated-other" / "niivue-FLAIR.nii.gz")
    print(f"| scan | contrast | depth ratio | flagged (> {T1_DEPTH_RATIO:g}) |\n|---|---|---|---|")
    for path in stripped:
        image, _ = to_canonical(load_image(path))
        _row(root, path, image, image.array > 0)
    for index in range(1, args.nichart + 1):
        folder = root / "nichart-demo" / f"Subj{index}"
        flair = load_image(folder / "FLAIR.nii.gz")
        brain = compute_brain_mask(flair)
        _row(root, folder / "FLAIR.nii.gz", n4_bias_correct(flair, mask=brain.array), brain.array > 0)
        t1 = load_image(folder / "T1.nii.gz")
        t1_brain = resample_nearest(brain, t1).array > 0
        _row(root, folder / "T1.nii.gz", n4_bias_correct(t1, mask=t1_brain), t1_brain)


def _row(root: Path, path: Path, image: Image, brain: np.ndarray) -> None:
    ratio = depth_ratio(image, brain)
    contrast = "T1" if "T1" in path.name else "FLAIR"
    shown = "n/a" if ratio is None else f"{ratio:.2f}"
    flagged = ratio is not None and ratio > T1_DEPTH_RATIO
    print(f"| {path.relative_to(root)} | {contrast} | {shown} | {'yes' if flagged else 'no'} |", flush=True)

if __name__ == "__main__":
    main()
