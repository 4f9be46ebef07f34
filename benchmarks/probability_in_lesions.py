"""How sure a 2.5D model is inside the gold lesions: the fused probability there, and the lesions' contrast.

Usage::

    python benchmarks/probability_in_lesions.py PROB GOLD [FLAIR] [PROB GOLD [FLAIR] ...]

Each ``PROB`` is a ``<name>_wmhprob.nii.gz`` of ``wmhkit predict`` and ``GOLD`` its scan's gold mask
(label 1 = WMH) on the same grid; with ``--flair`` triples, the FLAIR too (0 outside the brain, as the
Lesjak scans). Prints per scan the 10/25/50/75/90th percentiles of the fused probability inside the
gold and, with the FLAIR, those of the lesion intensity over the median of the other brain voxels and
the median intensity of the voxels the model marks (probability > 0.5) on the same scale.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from wmhkit.io.nifti import load_image, load_mask

PERCENTILES = (10, 25, 50, 75, 90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="PROB GOLD pairs, or PROB GOLD FLAIR triples with --flair")
    parser.add_argument("--flair", action="store_true", help="the files come in triples with the FLAIR last")
    args = parser.parse_args(argv)
    size = 3 if args.flair else 2
    if len(args.files) % size:
        parser.error(f"give the files in groups of {size}")
    for start in range(0, len(args.files), size):
        prob_path, gold_path, *flair_path = args.files[start:start + size]
        prob = load_image(prob_path).array
        gold = load_mask(gold_path, allowed_labels=(0, 1, 2)).array == 1
        line = f"{prob_path}: probability in the gold {np.round(np.percentile(prob[gold], PERCENTILES), 3).tolist()}"
        if flair_path:
            flair = load_image(flair_path[0]).array
            level = np.median(flair[(flair > 0) & ~gold])
            line += (f"; lesion / brain median {np.round(np.percentile(flair[gold] / level, PERCENTILES), 2).tolist()}"
                     f"; marked voxels' median {np.median(flair[prob > 0.5]) / level:.2f}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
