"""Bronze and silver label benchmark: quality against gold and seconds per scan.

Usage::

    python benchmarks/bench_labels.py --phantoms 30 --real-data ../shared/data/real --out /tmp/bench_labels

``--prepare-only`` stops after synthesis and prepare; ``--reuse`` then labels the cached
prepared data (so method changes can be re-benchmarked without re-preparing).

Phantoms: a cohort of ``--phantoms`` subjects (``--resolution-mm``, default 1 mm) spread over scanner profiles
A–E, prepared with their *true* brain masks (this benchmark measures labels;
brain extraction has its own benchmark), then ``bronze`` and ``silver``.
Real data: the three annotated Lesjak 2018 scans (skull-stripped; brain mask =
FLAIR > 0, holes filled) with their consensus masks as gold, plus every
unannotated FLAIR (brain mask computed by prepare) — copied into ``OUT/real``
because a manifest may not point outside its folder (the data stay outside the
repository). Prints Markdown tables: quality per method and silver, per scanner,
on the real annotated scans, each bronze method's STAPLE sensitivity and
specificity, seconds per scan per method and of the STAPLE EM alone (wall time
on this machine).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from wmhkit.bronze.stage import bronze_manifest
from wmhkit.fusion.quality import error_agreement, label_quality, quality_summary
from wmhkit.fusion.stage import silver_manifest
from wmhkit.fusion.staple import staple
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_mask
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.synth.cohort import synthesize_cohort

#: Set from --silver-only: reuse the bronze masks of an earlier run.
SILVER_ONLY = False
#: Set from --prepare-only: stop after synthesis and prepare.
PREPARE_ONLY = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantoms", type=int, default=30, help="phantom subjects (0 to skip)")
    parser.add_argument("--real-data", type=Path, default=None, help="the shared real-data folder (optional)")
    parser.add_argument("--out", type=Path, required=True, help="work folder (created)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--resolution-mm", type=float, default=1.0, help="phantom voxel size (mm)")
    parser.add_argument("--annotated-only", action="store_true",
                        help="real data: only the annotated Lesjak scans (skip the unannotated FLAIRs)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="synthesise and prepare, then stop (a later --reuse run labels the cached data)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse OUT/<part>/prepared/manifest.tsv from an earlier run (skip synthesis and prepare)")
    parser.add_argument("--silver-only", action="store_true",
                        help="with --reuse: also reuse the bronze masks (OUT/<part>/manifest.tsv); rerun silver only")
    args = parser.parse_args()
    global SILVER_ONLY, PREPARE_ONLY
    SILVER_ONLY = args.silver_only and args.reuse
    PREPARE_ONLY = args.prepare_only
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.phantoms > 0:
        run_phantoms(args.out / "phantoms", args.phantoms, args.seed, args.reuse, args.resolution_mm)
    if args.real_data is not None:
        if not args.real_data.is_dir():
            raise SystemExit(f"--real-data {args.real_data} is not a folder")
        run_real(args.out / "real", args.real_data, args.reuse, args.annotated_only)


def run_phantoms(work: Path, n_subjects: int, seed: int, reuse: bool, resolution_mm: float) -> None:
    if reuse and (work / "prepared" / "manifest.tsv").is_file():
        report_stages("Phantoms", work, work / "prepared" / "manifest.tsv", by_scanner=True)
        return
    raw = work / "raw"
    manifest = synthesize_cohort(raw, n_subjects, seed=seed, with_brain_mask=True, resolution_mm=resolution_mm)
    prepared = prepare_manifest(manifest, work / "prepared", options=PrepareOptions(qc_png=False))
    report_stages("Phantoms", work, prepared.manifest, by_scanner=True)


def run_real(work: Path, real: Path, reuse: bool, annotated_only: bool) -> None:
    title = "Real data (Lesjak 2018, CC-BY 4.0; NiiVue and py_synthsr demo FLAIRs)"
    if reuse and (work / "prepared" / "manifest.tsv").is_file():
        report_stages(title, work, work / "prepared" / "manifest.tsv", by_scanner=False)
        return
    raw = work / "raw"
    rows = []
    annotated = sorted((real / "lesjak2018" / "annotated").glob("patient*"))
    for folder in annotated:
        target = _copy(folder, raw / folder.name, ("FLAIR.nii.gz", "T1.nii.gz", "consensus.nii.gz"))
        flair = load_image(target / "FLAIR.nii.gz")
        brain = ndimage.binary_fill_holes(flair.array > 0)
        save_mask(Image(brain.astype(np.uint8), flair.affine), target / "brainmask.nii.gz")
        rows.append({"subject": folder.name, "dataset": "lesjak2018-annotated", "scanner": "lesjak-3D",
                     "flair": f"{folder.name}/FLAIR.nii.gz", "t1": f"{folder.name}/T1.nii.gz",
                     "brain_mask": f"{folder.name}/brainmask.nii.gz", "gold": f"{folder.name}/consensus.nii.gz"})
    unannotated = [] if annotated_only else sorted((real / "lesjak2018" / "unannotated").glob("patient*"))
    others = [] if annotated_only else sorted((real / "unannotated-other").glob("*.nii.gz"))
    for folder in unannotated:
        target = _copy(folder, raw / folder.name, ("FLAIR.nii.gz", "T1.nii.gz"))
        rows.append({"subject": folder.name, "dataset": "lesjak2018-clinical", "scanner": "lesjak-2D",
                     "flair": f"{folder.name}/FLAIR.nii.gz",
                     "t1": f"{folder.name}/T1.nii.gz" if (target / "T1.nii.gz").is_file() else ""})
    for path in others:
        name = path.name.removesuffix(".nii.gz").replace("-FLAIR", "")
        _copy(path.parent, raw / name, (path.name,))
        rows.append({"subject": name, "dataset": "other", "scanner": name, "flair": f"{name}/{path.name}"})
    manifest = write_manifest(pd.DataFrame(rows).fillna(""), raw / "manifest.tsv")
    prepared = prepare_manifest(manifest, work / "prepared", options=PrepareOptions(qc_png=False))
    for failure in prepared.failures:
        print(f"- prepare failed for {failure.subject}: {failure.error}")
    report_stages(title, work, prepared.manifest, by_scanner=False)


def report_stages(title: str, work: Path, prepared_manifest: Path, *, by_scanner: bool) -> None:
    if PREPARE_ONLY:
        print(f"{title}: prepared into {prepared_manifest}")
        return
    print(f"\n## {title}\n")
    if SILVER_ONLY:
        bronze_path = work / "manifest.tsv"
    else:
        start = time.perf_counter()
        bronze = bronze_manifest(prepared_manifest, work)
        bronze_s = time.perf_counter() - start
        bronze_path = bronze.manifest
        print(f"{len(bronze.scans)} scans; bronze {bronze_s:.0f} s in total.\n")
        for failure in bronze.failures:
            print(f"- bronze failed: {failure.subject} [{failure.method}]: {failure.error}")
        print("\n### Seconds per scan per bronze method (median / max; the shared tissue model counted in the first "
              "method that needs it)\n")
        print(timing_table(bronze, read_manifest(bronze.manifest)).to_markdown(index=False, floatfmt=".1f"))
    start = time.perf_counter()
    silver = silver_manifest(bronze_path, work)
    silver_s = time.perf_counter() - start
    print(f"\nsilver: {silver_s:.0f} s for {len(silver.scans)} scans ({silver_s / max(len(silver.scans), 1):.1f} s "
          "per scan, reading and writing included)\n")
    for failure in silver.failures:
        print(f"- silver failed: {failure.subject}: {failure.error}")
    staple_s = staple_seconds(read_manifest(bronze_path))
    if staple_s:
        print(f"STAPLE alone (the EM on the native bronze masks inside the native brain mask, no file I/O): "
              f"median {np.median(staple_s):.2f} s, max {max(staple_s):.2f} s per scan over {len(staple_s)} scans\n")
    scores = label_quality(silver.manifest)
    if scores.empty:
        print("\n(no gold masks: no quality table)")
    else:
        scores.to_csv(work / "label_quality.tsv", sep="\t", index=False)
        print("\n### Quality against gold, per label (mean ± sd over scans)\n")
        print(_markdown(quality_summary(scores)))
        if by_scanner:
            print("\n### Dice / HD95 (mm) / AVD (%) / lesion F1 per scanner\n")
            print(per_scanner(scores).to_markdown())
        else:
            print("\n### Per scan\n")
            print(scores.drop(columns=["session"]).to_markdown(index=False, floatfmt=".3f"))
        medians = quality_summary(scores).set_index("label")["dice_mean"]
        bronze_only = medians.drop(index="silver", errors="ignore")
        print(f"\nsilver Dice {medians.get('silver', float('nan')):.3f} vs median bronze method "
              f"{float(np.median(bronze_only)):.3f} (best {bronze_only.idxmax()} {bronze_only.max():.3f})")
        print("\n### Do the methods err in the same places? (mean pairwise Dice of false positives / false negatives)\n")
        print(error_agreement(silver.manifest).to_markdown(index=False, floatfmt=".3f"))
    print("\n### STAPLE sensitivity / specificity per method\n")
    print(pd.read_csv(work / "raters_summary.tsv", sep="\t").to_markdown(index=False, floatfmt=".4f"))


def staple_seconds(manifest) -> list[float]:
    """Seconds of :func:`staple` alone per scan: its native bronze masks inside its native brain mask."""
    seconds = []
    columns = [c for c in manifest.table.columns if c.startswith("bronze_")]
    for row in manifest.rows():
        masks = [row.get(c, "") for c in columns]
        brain_cell = row.get("native_brain_mask", "") or row.get("brain_mask", "")
        if sum(bool(m) for m in masks) < 2 or not brain_cell:
            continue
        raters = [load_mask(manifest.root / m).array for m in masks if m]
        brain = load_mask(manifest.root / brain_cell).array
        if any(r.shape != brain.shape for r in raters):
            continue
        start = time.perf_counter()
        staple(raters, brain)
        seconds.append(time.perf_counter() - start)
    return seconds


def timing_table(bronze, manifest) -> pd.DataFrame:
    scanner = {manifest.scan_id(row): row.get("scanner", "") for row in manifest.rows()}
    rows = [{"scanner": scanner.get(scan, ""), "method": method, "seconds": seconds}
            for scan, result in bronze.scans.items() for method, seconds in result.seconds.items()]
    frame = pd.DataFrame(rows)
    return frame.groupby(["method"])["seconds"].agg(["median", "max"]).reset_index()


def per_scanner(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows scanner, columns label, cells "Dice / HD95 mm / AVD % / lesion F1" (means over the scanner's scans)."""
    means = scores.groupby(["scanner", "label"])[["dice", "hd95_mm", "avd_pct", "lesion_f1"]].mean()
    cells = means.apply(
        lambda r: f"{r['dice']:.3f} / {r['hd95_mm']:.1f} / {r['avd_pct']:.0f} / {r['lesion_f1']:.3f}", axis=1)
    return cells.unstack("label")


def _markdown(summary: pd.DataFrame) -> str:
    frame = pd.DataFrame({"label": summary["label"], "n": summary["n_scans"]})
    for metric in ("dice", "hd95_mm", "avd_pct", "lesion_f1"):
        frame[metric] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(summary[f"{metric}_mean"], summary[f"{metric}_std"])]
    return frame.to_markdown(index=False)


def _copy(source: Path, target: Path, names: tuple[str, ...]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    return target


if __name__ == "__main__":
    main()
