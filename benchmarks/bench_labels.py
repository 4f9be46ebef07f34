"""Bronze and silver label benchmark: quality against gold and seconds per scan.

Usage::

    python benchmarks/bench_labels.py --phantoms 30 --real-data ../shared/data/real --out /tmp/bench_labels

``--prepare-only`` stops after synthesis and prepare; ``--reuse`` then labels the cached
prepared data (so method changes can be re-benchmarked without re-preparing).
``--methods`` names the bronze methods run (default: outlier, growth, tophat, lpa); silver
fuses them all, and the "silver variants" table gives STAPLE over other rater sets, computed
on the same bronze masks.

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

NiChart (``--nichart``, with ``--real-data``): the 23 whole-head FLAIR + T1 scans of
``nichart-demo`` (brain masks by prepare, template brain extraction when prepare offers
the choice), their DLWMLS masks imported as the external rater ``bronze_dlwmls``
(``external_dlwmls`` column) and left out of silver; each method's and silver's
agreement with DLWMLS: mean Dice and ICC(2,1) of volumes (agreement with a tool, not truth).

``--agreement MANIFEST`` only prints the agreement table above for a labelled manifest made
elsewhere (e.g. ``wmhkit bronze`` + ``silver`` on a build's prepared NiChart scans), against its
``--reference`` column (default ``bronze_dlwmls``).

``--flair-only`` leaves the T1s out, of phantoms and real scans (the common clinical case; the
methods then use the FLAIR-only tissue model with the MNI atlas priors); use another ``--out``
than a run with T1s.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from wmhkit.bronze.lpa import LpaParameters
from wmhkit.bronze.stage import BronzeOptions, bronze_manifest
from wmhkit.errors import InputError
from wmhkit.fusion.quality import error_agreement, label_quality, quality_summary
from wmhkit.fusion.stage import SilverOptions, silver_manifest
from wmhkit.fusion.staple import staple, staple_pruned
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_mask
from wmhkit.metrics.segmentation import dice
from wmhkit.metrics.volume import icc_2_1
from wmhkit.preprocess.geometry import load_native_geometry, to_prepared
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.synth.cohort import synthesize_cohort

#: Set from --silver-only: reuse the bronze masks of an earlier run.
SILVER_ONLY = False
#: Set from --prepare-only: stop after synthesis and prepare.
PREPARE_ONLY = False
#: Set from --flair-only: the manifests get no T1.
FLAIR_ONLY = False
#: Set from --methods: the bronze methods run (and fused by silver).
METHODS: tuple[str, ...] = ("outlier", "growth", "tophat", "lpa")
#: Consensus rule and rater set of each row of the "silver variants" table (those whose methods were all run).
SILVER_VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("staple", ("outlier", "growth", "tophat")), ("staple", ("outlier", "growth", "tophat", "lpa")),
    ("staple", ("outlier", "growth")), ("staple", ("growth", "lpa")), ("staple", ("outlier", "growth", "lpa")),
    ("staple-pruned", ("outlier", "growth", "tophat", "lpa")), ("staple-pruned", ("outlier", "growth", "tophat")),
)


def main() -> None:
    global SILVER_ONLY, PREPARE_ONLY, METHODS, FLAIR_ONLY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantoms", type=int, default=30, help="phantom subjects (0 to skip)")
    parser.add_argument("--real-data", type=Path, default=None, help="the shared real-data folder (optional)")
    parser.add_argument("--out", type=Path, default=None, help="work folder (created; required unless --agreement)")
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
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated bronze methods")
    parser.add_argument("--nichart", action="store_true",
                        help="with --real-data: also the NiChart demo scans with DLWMLS agreement")
    parser.add_argument("--skip-lesjak", action="store_true", help="with --real-data: skip the Lesjak scans")
    parser.add_argument("--flair-only", action="store_true", help="leave the T1s out")
    parser.add_argument("--agreement", type=Path, default=None,
                        help="only print each label's agreement with --reference in this labelled manifest")
    parser.add_argument("--reference", default="bronze_dlwmls", help="reference column of --agreement")
    args = parser.parse_args()
    SILVER_ONLY = args.silver_only and args.reuse
    PREPARE_ONLY = args.prepare_only
    METHODS = tuple(m for m in args.methods.split(",") if m)
    FLAIR_ONLY = args.flair_only
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.agreement is not None:
        table = tool_agreement(read_manifest(args.agreement), args.reference)
        print(table.to_markdown(index=False, floatfmt=".3f"))
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.phantoms > 0:
        run_phantoms(args.out / "phantoms", args.phantoms, args.seed, args.reuse, args.resolution_mm)
    if args.real_data is not None:
        if not args.real_data.is_dir():
            raise SystemExit(f"--real-data {args.real_data} is not a folder")
        if not args.skip_lesjak:
            run_real(args.out / "real", args.real_data, args.reuse, args.annotated_only)
        if args.nichart:
            run_nichart(args.out / "nichart", args.real_data / "nichart-demo", args.reuse)


def run_phantoms(work: Path, n_subjects: int, seed: int, reuse: bool, resolution_mm: float) -> None:
    if reuse and (work / "prepared" / "manifest.tsv").is_file():
        report_stages("Phantoms", work, work / "prepared" / "manifest.tsv", by_scanner=True)
        return
    raw = work / "raw"
    manifest = synthesize_cohort(raw, n_subjects, seed=seed, with_brain_mask=True, resolution_mm=resolution_mm)
    if FLAIR_ONLY:
        manifest = write_manifest(_without_t1(read_manifest(manifest).table), manifest)
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
    manifest = write_manifest(_without_t1(pd.DataFrame(rows).fillna("")), raw / "manifest.tsv")
    prepared = prepare_manifest(manifest, work / "prepared", options=_prepare_options())
    for failure in prepared.failures:
        print(f"- prepare failed for {failure.subject}: {failure.error}")
    report_stages(title, work, prepared.manifest, by_scanner=False)


def run_nichart(work: Path, folder: Path, reuse: bool) -> None:
    title = "NiChart demo (SBIA licence; DLWMLS masks as an external rater, not gold)"
    if not (reuse and (work / "prepared" / "manifest.tsv").is_file()):
        raw = work / "raw"
        rows = []
        for subject in sorted(folder.glob("Subj*"), key=lambda p: int(p.name.removeprefix("Subj"))):
            _copy(subject, raw / subject.name, ("FLAIR.nii.gz", "T1.nii.gz", "dlwmls.nii.gz"))
            rows.append({"subject": subject.name, "dataset": "nichart", "scanner": "nichart-2mm",
                         "flair": f"{subject.name}/FLAIR.nii.gz", "t1": f"{subject.name}/T1.nii.gz",
                         "external_dlwmls": f"{subject.name}/dlwmls.nii.gz"})
        manifest = write_manifest(_without_t1(pd.DataFrame(rows)), raw / "manifest.tsv")
        prepared = prepare_manifest(manifest, work / "prepared", options=_prepare_options())
        for failure in prepared.failures:
            print(f"- prepare failed for {failure.subject}: {failure.error}")
    report_stages(title, work, work / "prepared" / "manifest.tsv", by_scanner=False)
    if not PREPARE_ONLY:
        print("\n### Agreement with DLWMLS (Dice mean ± sd over scans; ICC(2,1) of volumes in mL)\n")
        print(tool_agreement(read_manifest(work / "manifest.tsv"), "bronze_dlwmls").to_markdown(index=False,
                                                                                                 floatfmt=".3f"))


def _without_t1(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without its ``t1`` column when ``--flair-only`` was given."""
    return table.drop(columns=["t1"], errors="ignore") if FLAIR_ONLY else table


def _prepare_options() -> PrepareOptions:
    """prepare's defaults without QC images, with template brain extraction where prepare offers a choice."""
    names = {f.name for f in dataclasses.fields(PrepareOptions)}
    return PrepareOptions(qc_png=False, **({"brain_extractor": "template"} if "brain_extractor" in names else {}))


def tool_agreement(manifest, reference: str) -> pd.DataFrame:
    """Each bronze label's and silver's agreement with the ``reference`` column's masks (native grid)."""
    labels = [c for c in manifest.table.columns if c.startswith("bronze_") and c != reference]
    labels += ["silver"] if "silver" in manifest.table.columns else []
    dices: dict[str, list[float]] = {c: [] for c in labels}
    volumes: dict[str, list[tuple[float, float]]] = {c: [] for c in labels}
    for row in manifest.rows():
        if not row.get(reference, ""):
            continue
        tool = load_mask(manifest.root / row[reference])
        for column in labels:
            if not row.get(column, ""):
                continue
            mask = load_mask(manifest.root / row[column])
            dices[column].append(dice(mask.array.astype(bool), tool.array.astype(bool)))
            volumes[column].append((float(tool.array.sum()) * tool.voxel_volume_ml,
                                    float(mask.array.sum()) * mask.voxel_volume_ml))
    rows = []
    for column in labels:
        if not dices[column]:
            continue
        pairs = np.asarray(volumes[column])
        rows.append({"label": column.removeprefix("bronze_"), "n": len(dices[column]),
                     "dice_mean": float(np.mean(dices[column])), "dice_sd": float(np.std(dices[column], ddof=1)),
                     "icc_2_1": icc_2_1(pairs[:, 0], pairs[:, 1]).icc,
                     "volume_ml_tool": float(pairs[:, 0].mean()), "volume_ml_label": float(pairs[:, 1].mean())})
    return pd.DataFrame(rows)


def silver_variants(manifest, gold_column: str | None) -> pd.DataFrame:
    """Each consensus of :data:`SILVER_VARIANTS` on the native bronze masks: mean Dice against the gold
    (``gold_column`` None: the scan's gold) or against another label column (e.g. ``bronze_dlwmls``)."""
    rows = []
    for rule, variant in SILVER_VARIANTS:
        fuse = staple if rule == "staple" else staple_pruned
        if not set(variant) <= set(METHODS):
            continue
        scores = []
        for row in manifest.rows():
            reference_cell = row.get(gold_column, "") if gold_column else (row.get("native_gold", "") or row.get("gold", ""))
            brain_cell = row.get("native_brain_mask", "") or row.get("brain_mask", "")
            cells = [row.get(f"bronze_{m}", "") for m in variant]
            if not reference_cell or not brain_cell or not all(cells):
                continue
            brain = load_mask(manifest.root / brain_cell)
            on_brain_grid = _on_grid_of(brain, manifest.path(row, "flair"))
            reference = on_brain_grid(load_mask(manifest.root / reference_cell, allowed_labels=(0, 1, 2))) == 1
            raters = [on_brain_grid(load_mask(manifest.root / c)) for c in cells]
            brain = brain.array
            scores.append(dice(fuse(raters, brain).mask, reference))
        if scores:
            rows.append({"rule": rule, "raters": "+".join(variant), "n": len(scores), "dice_mean": float(np.mean(scores)),
                         "dice_sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan")})
    return pd.DataFrame(rows)


#: Thresholds of the lpa probability tried by :func:`lpa_threshold_loo`.
LPA_THRESHOLDS: tuple[float, ...] = (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)


def lpa_threshold_loo(manifest) -> pd.DataFrame:
    """Dice of the thresholded lpa probability (``bronze_lpa_prob.nii.gz``, no edge or size filter) per scan with
    gold: at the shipped threshold, and at the threshold that is best on the *other* scans (leave one scan out)."""
    default = LpaParameters().threshold
    scans = {}
    for row in manifest.rows():
        gold_cell = row.get("native_gold", "") or row.get("gold", "")
        if not gold_cell or not row.get("bronze_lpa", ""):
            continue
        probability = load_image((manifest.root / row["bronze_lpa"]).parent / "bronze_lpa_prob.nii.gz").array
        gold = load_mask(manifest.root / gold_cell, allowed_labels=(0, 1, 2)).array == 1
        scans[row["subject"]] = {t: dice(probability > t, gold) for t in (*LPA_THRESHOLDS, default)}
    rows = []
    for subject, scores in scans.items():
        others = [s for name, s in scans.items() if name != subject]
        chosen = max(LPA_THRESHOLDS, key=lambda t: np.mean([s[t] for s in others])) if others else default
        rows.append({"subject": subject, f"dice_at_{default:g}": scores[default], "loo_threshold": chosen,
                     "dice_loo": scores[chosen]})
    return pd.DataFrame(rows)


def _on_grid_of(brain: Image, flair: Path):
    """A function giving a native-grid (or already brain-grid) mask's array on the brain mask's grid."""
    geometry = load_native_geometry(flair) if is_prepared_flair(flair) else None

    def convert(mask: Image) -> np.ndarray:
        if mask.shape == brain.shape or geometry is None:
            return mask.array
        return to_prepared(mask, geometry).array

    return convert


def is_prepared_flair(flair: Path) -> bool:
    """True when ``flair`` has a prepare sidecar with a native-geometry record."""
    try:
        load_native_geometry(flair)
    except InputError:  # no sidecar or no record: a native FLAIR
        return False
    return True


def report_stages(title: str, work: Path, prepared_manifest: Path, *, by_scanner: bool) -> None:
    if PREPARE_ONLY:
        print(f"{title}: prepared into {prepared_manifest}")
        return
    print(f"\n## {title}\n")
    if SILVER_ONLY:
        bronze_path = work / "manifest.tsv"
    else:
        start = time.perf_counter()
        bronze = bronze_manifest(prepared_manifest, work, options=BronzeOptions(methods=METHODS))
        bronze_s = time.perf_counter() - start
        bronze_path = bronze.manifest
        print(f"{len(bronze.scans)} scans; bronze {bronze_s:.0f} s in total.\n")
        for failure in bronze.failures:
            print(f"- bronze failed: {failure.subject} [{failure.method}]: {failure.error}")
        print("\n### Seconds per scan per bronze method (median / max; the shared tissue model counted in the first "
              "method that needs it)\n")
        print(timing_table(bronze, read_manifest(bronze.manifest)).to_markdown(index=False, floatfmt=".1f"))
    start = time.perf_counter()
    silver = silver_manifest(bronze_path, work, options=SilverOptions(methods=METHODS))
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
    bronze_table = read_manifest(bronze_path)
    if not scores.empty and "bronze_lpa" in bronze_table.table.columns:
        loo = lpa_threshold_loo(bronze_table)
        print("\n### lpa threshold: shipped vs chosen on the other scans (leave one scan out; probability map "
              "alone, no edge or size filter)\n")
        print(loo.to_markdown(index=False, floatfmt=".3f"))
        print(f"\nmean: shipped {loo.iloc[:, 1].mean():.3f}, leave-one-out {loo['dice_loo'].mean():.3f}")
    if not scores.empty or "bronze_dlwmls" in bronze_table.table.columns:
        reference = None if not scores.empty else "bronze_dlwmls"
        print(f"\n### Silver variants: STAPLE over other rater sets, mean Dice against {reference or 'the gold'}\n")
        print(silver_variants(bronze_table, reference).to_markdown(index=False, floatfmt=".3f"))
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
