"""The T1-like contrast flag (``t1_like_contrast``) on prepared scans: its ratio per scan and how many it flags.

Usage::

    python benchmarks/bench_contrast.py --label FLAIR 'WORK/prepared/*/' 'OUT/work/*/prepared' \\
        --label T1 'T1PREP/*/'

Each argument after ``--label NAME`` is a glob of prepared-scan folders (``flair.nii.gz`` and
``brain_mask.nii.gz``, as ``wmhkit prepare`` writes them); prints, per label, the number of
scans, the range of :func:`wmhkit.preprocess.checks.cortex_to_deep_ratio` and how many fall
below :data:`~wmhkit.preprocess.checks.T1_LIKE_RATIO`, then every scan's ratio with ``-v``.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

from wmhkit.io.nifti import load_image, load_mask
from wmhkit.preprocess.checks import T1_LIKE_RATIO, cortex_to_deep_ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", action="append", nargs="+", metavar=("NAME", "GLOB"), required=True,
                        help="a label and the globs of its prepared-scan folders (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print every scan's ratio")
    args = parser.parse_args(argv)
    for name, *patterns in args.label:
        folders = sorted({Path(p) for pattern in patterns for p in glob.glob(pattern)
                          if (Path(p) / "brain_mask.nii.gz").is_file()})
        ratios = [cortex_to_deep_ratio(load_image(f / "flair.nii.gz"), load_mask(f / "brain_mask.nii.gz"))
                  for f in folders]
        if not ratios:
            print(f"{name}: no prepared folders found")
            continue
        values = np.asarray(ratios)
        print(f"{name}: {len(values)} scans, ratio {np.nanmin(values):.3f}–{np.nanmax(values):.3f}, "
              f"{int((values < T1_LIKE_RATIO).sum())} flagged (< {T1_LIKE_RATIO})")
        if args.verbose:
            for folder, ratio in zip(folders, ratios):
                print(f"  {folder}: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
