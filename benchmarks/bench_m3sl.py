"""M3SL vs baseline (vs transfer) on a phantom cohort built like the paper's.

Usage::

    python benchmarks/bench_m3sl.py --out bench-out/m3sl [--unlabeled 20] [--gold 10] [--no-n4] \
        [--gold-scanners A B C] [--resolution-mm 2] [--epochs N] [--imagenet-weights vgg16-397923af.pth]

The cohort: ``--unlabeled`` + ``--gold`` phantoms (``wmhkit.synth``, scanners A–E
in turn, true brain masks), prepared (``wmhkit prepare`` defaults, N4 included),
labelled by every bronze method and fused to silver (``wmhkit bronze`` /
``wmhkit silver`` defaults). Only ``--gold`` scans, taken in equal shares from
``--gold-scanners``, keep their gold mask in the training manifest; every other
scan is "unlabeled" (its gold is hidden; bronze and silver are all the training
sees of it). The quality of the bronze and silver labels against the hidden gold
is reported, since M3SL can only learn what they teach.

Then ``m3sl-cpu``, ``baseline-cpu`` and, with ``--imagenet-weights``,
``transfer-cpu`` are trained (:func:`wmhkit.train.segmentation.train_run`; ``--epochs``
overrides every stage's epochs). Their cross-validated gold-stage test-fold
metrics (every gold scan predicted once by the fold models that held it out,
2.5D fused) are compared: mean ± sd of Dice (= voxel F-measure), IoU, HD95 and
lesion F1 per variant, per variant × scanner and per variant × clinical stage;
the one-way ANOVA with Holm-corrected pooled t-tests of :mod:`wmhkit.stats.groups`
(variant; scanner and stage within each variant); and paired t-tests between
variants on the same scans (Holm-corrected per metric).

Every stage's output is reused when the script is rerun with the same ``--out``
(synthesis, prepare, bronze, silver, and each finished training run; an
interrupted training run resumes from its checkpoints), so a killed benchmark can
be continued. Written to ``--out``: ``metrics.csv`` (per scan and variant),
``summary*.csv``, ``anova.csv``, ``pairwise.csv``, ``paired.csv``,
``label_quality.csv`` and ``results.json`` (tables, timings, cohort sizes).
Wall and CPU seconds of each training are recorded when it runs in this process
(``m3sl-cpu`` target: ≤ 20 min end to end).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from wmhkit.bronze.stage import bronze_manifest
from wmhkit.fusion.quality import label_quality, quality_summary
from wmhkit.fusion.stage import silver_manifest
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.stats.groups import compare_groups
from wmhkit.stats.tables import to_markdown, write_csv
from wmhkit.synth.cohort import synthesize_cohort
from wmhkit.train.config import load_config, resolve_config_path
from wmhkit.train.run_folder import RUN_JSON
from wmhkit.train.segmentation import CV_METRICS, train_run

METRICS = ("dice", "iou", "hd95_mm", "lesion_f1")
TESTED_METRICS = ("dice", "iou", "hd95_mm")
log = logging.getLogger("bench_m3sl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/m3sl"), help="work and result folder")
    parser.add_argument("--unlabeled", type=int, default=20, help="scans without gold (all scanners)")
    parser.add_argument("--gold", type=int, default=10, help="scans with gold (from --gold-scanners)")
    parser.add_argument("--gold-scanners", nargs="+", default=["A", "B", "C"])
    parser.add_argument("--resolution-mm", type=float, default=2.0, help="phantom voxel size (mm)")
    parser.add_argument("--seed", type=int, default=11, help="cohort seed")
    parser.add_argument("--no-n4", action="store_true", help="prepare without N4 bias correction (faster)")
    parser.add_argument("--configs", nargs="+", default=["m3sl-cpu", "baseline-cpu"],
                        help="training configs: shipped names or YAML files (transfer-cpu is added with --imagenet-weights)")
    parser.add_argument("--epochs", type=int, default=None, help="override every stage's epochs")
    parser.add_argument("--imagenet-weights", type=Path, default=None,
                        help="torchvision vgg16-397923af.pth (adds transfer-cpu; nothing is downloaded)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("wmhkit.bronze", "wmhkit.fusion", "wmhkit.preprocess", "wmhkit.synth"):
        logging.getLogger(name).setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    configs = list(args.configs) + (["transfer-cpu"] if args.imagenet_weights and "transfer-cpu" not in args.configs
                                    else [])

    labelled = build_cohort(args)
    train_manifest = hide_gold(labelled, args.gold, args.gold_scanners)
    quality = label_quality_on_unlabeled(labelled, train_manifest)
    timings = dict(train_variant(config, args, train_manifest) for config in configs)

    metrics = collect_metrics(args.out, list(timings), train_manifest)
    summaries = {
        "summary": summarise(metrics, ["variant"]),
        "summary_scanner": summarise(metrics, ["variant", "scanner"]),
        "summary_stage": summarise(metrics, ["variant", "stage"]),
    }
    anova, pairwise, _ = compare_groups(metrics, by=["variant", "scanner", "stage"], metrics=list(TESTED_METRICS))
    paired = paired_tests(metrics, TESTED_METRICS)
    tables = {"metrics": metrics, **summaries, "anova": anova, "pairwise": pairwise, "paired": paired,
              "label_quality": quality}
    for name, table in tables.items():
        write_csv(table, args.out / f"{name}.csv")
    record = {
        "cohort": {"unlabeled": args.unlabeled, "gold": args.gold, "gold_scanners": args.gold_scanners,
                   "resolution_mm": args.resolution_mm, "seed": args.seed,
                   "n4": not args.no_n4},
        "epochs_override": args.epochs, "timings": timings,
        "tables": {name: json.loads(table.to_json(orient="records")) for name, table in tables.items()},
    }
    (args.out / "results.json").write_text(json.dumps(record, indent=2) + "\n")

    print(f"\n## M3SL comparison ({args.unlabeled} unlabeled + {args.gold} gold phantoms at {args.resolution_mm:g} mm, "
          f"gold from scanners {', '.join(args.gold_scanners)})\n")
    print("### Bronze and silver labels vs the hidden gold (unlabeled scans)\n")
    print(to_markdown(quality, digits=3))
    print("### Training time\n")
    print(to_markdown(pd.DataFrame([{"variant": k, **v} for k, v in timings.items()]), digits=4))
    for name, table in summaries.items():
        print(f"### Test-fold metrics ({name.replace('_', ' by ')}; mean, sd; empty = predictions with no lesion)\n")
        print(to_markdown(table, digits=3))
    print("### ANOVA (variant; scanner and stage within each variant)\n")
    print(to_markdown(anova, digits=3))
    print("### Holm-corrected pooled t-tests where the ANOVA is significant\n")
    print(to_markdown(pairwise, digits=3) if len(pairwise) else "(none: no ANOVA was significant)\n")
    print("### Paired t-tests between variants (same scans), Holm-corrected per metric\n")
    print(to_markdown(paired, digits=3))
    return 0


def build_cohort(args: argparse.Namespace) -> Path:
    """Synthesise, prepare, bronze and silver; each step reused when its manifest is there."""
    synth_manifest = args.out / "synth" / "manifest.tsv"
    if not synth_manifest.is_file():
        start = time.perf_counter()
        synthesize_cohort(args.out / "synth", args.unlabeled + args.gold, seed=args.seed, with_brain_mask=True,
                          resolution_mm=args.resolution_mm)
        log.info("synthesis: %.0f s", time.perf_counter() - start)
    labels = args.out / "labels"
    prepared = labels / "prepared" / "manifest.tsv"
    if not prepared.is_file():
        start = time.perf_counter()
        result = prepare_manifest(synth_manifest, labels / "prepared",
                                  options=PrepareOptions(qc_png=False, n4=not args.no_n4))
        log.info("prepare: %.0f s, %d failures", time.perf_counter() - start, len(result.failures))
    manifest = labels / "manifest.tsv"
    columns = read_manifest(manifest).table.columns if manifest.is_file() else []
    if not any(c.startswith("bronze_") for c in columns):
        start = time.perf_counter()
        result = bronze_manifest(prepared, labels)
        log.info("bronze: %.0f s, %d failures", time.perf_counter() - start, len(result.failures))
        columns = read_manifest(manifest).table.columns
    if "silver" not in columns:
        start = time.perf_counter()
        result = silver_manifest(manifest, labels)
        log.info("silver: %.0f s, %d failures", time.perf_counter() - start, len(result.failures))
    return manifest


def gold_subjects(table: pd.DataFrame, n_gold: int, scanners: list[str]) -> list[str]:
    """``n_gold`` subjects in equal shares from ``scanners`` (remainder to the first), in manifest order."""
    quota = {s: n_gold // len(scanners) + (i < n_gold % len(scanners)) for i, s in enumerate(scanners)}
    chosen = []
    for subject, scanner in zip(table["subject"], table["scanner"]):
        if quota.get(scanner, 0) > 0:
            chosen.append(subject)
            quota[scanner] -= 1
    if any(quota.values()):
        raise SystemExit(f"not enough scans on scanners {scanners} for {n_gold} gold scans; add scans")
    return chosen


def hide_gold(labelled: Path, n_gold: int, scanners: list[str]) -> Path:
    """``labels/manifest-train.tsv``: the labelled manifest with gold kept only for the gold subjects."""
    table = read_manifest(labelled).table.copy()
    gold = set(gold_subjects(table, n_gold, scanners))
    for column in ("gold", "native_gold"):
        if column in table.columns:
            table[column] = [cell if subject in gold else "" for subject, cell in zip(table["subject"], table[column])]
    path = labelled.parent / "manifest-train.tsv"
    if not path.is_file() or not read_manifest(path).table.equals(table):
        write_manifest(table, path)
    return path


def label_quality_on_unlabeled(labelled: Path, train_manifest: Path) -> pd.DataFrame:
    """Mean quality of each bronze method and of silver on the scans whose gold training never sees."""
    hidden = set(read_manifest(train_manifest).table.query("gold == ''")["subject"])
    scores = label_quality(labelled)
    summary = quality_summary(scores[scores["subject"].isin(hidden)])
    keep = ["label", "n_scans"] + [c for c in summary.columns if c.split("_mean")[0] in METRICS and c.endswith("_mean")]
    return summary[keep]


def train_variant(config_name: str, args: argparse.Namespace, manifest: Path) -> tuple[str, dict]:
    """Train (or resume, or reuse) one config (shipped name or YAML file) in ``runs/<its name>``.

    Returns the config's name and the wall and CPU seconds when it ran here.
    """
    config = load_config(resolve_config_path(config_name))
    name = config.name
    if args.epochs is not None:
        config = dataclasses.replace(config, stages=tuple(dataclasses.replace(s, epochs=args.epochs)
                                                          for s in config.stages))
    if config.init == "imagenet":
        config = dataclasses.replace(config, imagenet_weights=str(args.imagenet_weights))
    config = dataclasses.replace(config, tensorboard=False, device="cpu")
    run_dir = args.out / "runs" / name
    timing_file = run_dir / "bench_timing.json"
    if (run_dir / CV_METRICS).is_file() and (run_dir / "model" / "model.yaml").is_file():
        log.info("%s: finished run reused", name)
        return name, json.loads(timing_file.read_text()) if timing_file.is_file() else {"wall_s": None, "cpu_s": None}
    resume = (run_dir / RUN_JSON).is_file()
    start, cpu_start = time.perf_counter(), time.process_time()
    train_run(config, run_dir, manifest=manifest, resume=resume)
    timing = {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(time.process_time() - cpu_start, 1),
              "resumed": resume}
    timing_file.write_text(json.dumps(timing) + "\n")
    return name, timing


def collect_metrics(out: Path, configs: list[str], manifest: Path) -> pd.DataFrame:
    """Test-fold metrics of every variant, with the scan's scanner and clinical stage."""
    table = read_manifest(manifest)
    stage = {table.scan_id(row): row.get("stage", "") for row in table.rows()}
    parts = []
    for name in configs:
        metrics = pd.read_csv(out / "runs" / name / CV_METRICS, sep="\t", dtype={"scan": str, "scanner": str})
        metrics.insert(0, "variant", name)
        metrics.insert(3, "stage", metrics["scan"].map(stage))
        parts.append(metrics)
    return pd.concat(parts, ignore_index=True)


def summarise(metrics: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group: scans, mean and sd of each of :data:`METRICS`, and predictions without any lesion."""
    grouped = metrics.groupby(by, sort=True)
    summary = grouped.size().rename("n").to_frame()
    for metric in METRICS:
        summary[f"{metric}_mean"] = grouped[metric].mean()
        summary[f"{metric}_sd"] = grouped[metric].std()
    summary["empty_predictions"] = grouped["vol_pred_ml"].apply(lambda v: int((v == 0).sum()))
    return summary.reset_index()


def paired_tests(metrics: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Paired t-tests between every pair of variants on the scans both scored (finite values), Holm per metric."""
    rows = []
    variants = sorted(metrics["variant"].unique())
    for metric in names:
        wide = metrics.pivot(index="scan", columns="variant", values=metric)
        family = []
        for a, b in itertools.combinations(variants, 2):
            pair = wide[[a, b]].dropna()
            if len(pair) < 2:
                continue
            result = stats.ttest_rel(pair[a], pair[b])
            family.append({"metric": metric, "variant_a": a, "variant_b": b, "n": len(pair),
                           "mean_a": pair[a].mean(), "mean_b": pair[b].mean(),
                           "mean_diff": (pair[a] - pair[b]).mean(), "t": float(result.statistic),
                           "p": float(result.pvalue)})
        if family:
            p_values = np.nan_to_num([r["p"] for r in family], nan=1.0)
            reject, corrected, _, _ = multipletests(p_values, method="holm")
            for row, p_holm, significant in zip(family, corrected, reject):
                rows.append({**row, "p_holm": float(p_holm), "significant": bool(significant)})
    return pd.DataFrame(rows, columns=["metric", "variant_a", "variant_b", "n", "mean_a", "mean_b", "mean_diff",
                                       "t", "p", "p_holm", "significant"])


if __name__ == "__main__":
    raise SystemExit(main())
