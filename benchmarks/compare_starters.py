"""Paired comparison of two starter builds on the same real validation scans.

Usage::

    python benchmarks/compare_starters.py NEW_WORK OLD_WORK [--twin m3sl] [--old-twin m3sl]

Reads each build's ``WORK/evaluation/loo-<twin>.tsv`` and ``final-<twin>.tsv`` (written by
``build_starter.py``) and prints, per set (Lesjak leave-one-out, its clinical degradations,
NiChart vs DLWMLS, unseen phantoms), the mean Dice of both, then the paired difference over the
real scans both scored (leave-one-out, degradations, NiChart) with a paired t-test, and the NiChart
volumes (mean ± SD, mL) of both and of the reference (DLWMLS).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

#: ``group`` values of the evaluation tables, in display order; the real ones are paired.
SETS = {"lesjak-annotated": "Lesjak leave-one-out", "lesjak-variants": "its clinical degradations",
        "nichart": "NiChart vs DLWMLS", "phantoms-unseen": "unseen phantoms"}
REAL_SETS = ("lesjak-annotated", "lesjak-variants", "nichart")


def dice_table(work: Path, twin: str) -> pd.DataFrame:
    """Scan, group, Dice and volumes (predicted, reference; mL) of a build's leave-one-out and final tables."""
    tables = [pd.read_csv(work / "evaluation" / f"{name}-{twin}.tsv", sep="\t") for name in ("loo", "final")]
    return pd.concat(tables, ignore_index=True)[["scan", "group", "dice", "vol_pred_ml", "vol_gold_ml"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", type=Path, help="work folder of the new build")
    parser.add_argument("old", type=Path, help="work folder of the old build")
    parser.add_argument("--twin", default="m3sl", help="twin of the new build")
    parser.add_argument("--old-twin", default="m3sl", help="twin of the old build")
    args = parser.parse_args(argv)
    new, old = dice_table(args.new, args.twin), dice_table(args.old, args.old_twin)
    for group, title in SETS.items():
        print(f"{title}: new {new[new.group == group].dice.mean():.3f}, old {old[old.group == group].dice.mean():.3f}")
    nichart_new, nichart_old = new[new.group == "nichart"], old[old.group == "nichart"]
    print(f"NiChart volumes (mL): new {nichart_new.vol_pred_ml.mean():.1f} ± {nichart_new.vol_pred_ml.std():.1f}, "
          f"old {nichart_old.vol_pred_ml.mean():.1f} ± {nichart_old.vol_pred_ml.std():.1f}, "
          f"reference {nichart_new.vol_gold_ml.mean():.1f} ± {nichart_new.vol_gold_ml.std():.1f}")
    paired = new[new.group.isin(REAL_SETS)].merge(old[["scan", "dice"]], on="scan", suffixes=("_new", "_old"))
    difference = paired.dice_new - paired.dice_old
    test = stats.ttest_rel(paired.dice_new, paired.dice_old)
    print(f"{len(paired)} real scans: new {paired.dice_new.mean():.3f} vs old {paired.dice_old.mean():.3f}, "
          f"difference {difference.mean():+.3f} (SD {difference.std():.3f}), paired t = {test.statistic:.2f}, "
          f"p = {test.pvalue:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
