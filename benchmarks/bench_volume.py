"""Weak vs strong labels on phantoms: the GP-Unet volume network against its strong-label twin.

Reproduces the comparison of Werner, Dubost, de Bruijne et al. ("When weak
becomes strong") on a phantom cohort: each config (default ``volume-cpu``,
``strong-cpu``, ``fazekas-cpu``) is trained on scanners A–C only, once per seed,
and scored by ICC(2,1) (95 % CI), Pearson r, Bland–Altman and Dice on

* ``in-domain``: the held-out test split of scanners A–C;
* ``unseen``: every scan of scanners D–E (never seen in training).

The severity variant is scored on grades (``fazekas`` vs predicted grade). Also
measured: wall and CPU time of each training run, and inference seconds per
scan (network + attention + segmentation on a prepared scan).

Usage::

    python benchmarks/bench_volume.py --out /tmp/bench-volume                       # synthesise + prepare 100 phantoms
    python benchmarks/bench_volume.py --prepared PREP/manifest.tsv --out /tmp/bv --seeds 0 1 2

Writes ``OUT/predictions.csv``, ``OUT/agreement.{csv,md}``, ``OUT/confounders.{csv,md}``,
``OUT/confounder_r2.{csv,md}`` (R² per seed), ``OUT/summary.{csv,md}`` (mean ± SD over
seeds of the agreement metrics and the confounder R²) and ``OUT/timing.csv``; prints the
per-seed and summary tables as markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd

from wmhkit.infer.volume import load_volume_model, predict_scans, predict_volume
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.stats.tables import write_csv, write_tables
from wmhkit.stats.volume_models import agreement_table, confounder_table, seed_summary
from wmhkit.synth.cohort import synthesize_cohort
from wmhkit.train.config import resolve_config_path
from wmhkit.train.volume import train_volume
from wmhkit.train.volume_config import load_volume_config

TRAIN_SCANNERS = ("A", "B", "C")
UNSEEN_SCANNERS = ("D", "E")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, help="prepared manifest (default: synthesise and prepare a cohort)")
    parser.add_argument("--n-subjects", type=int, default=100)
    parser.add_argument("--resolution-mm", type=float, default=2.0)
    parser.add_argument("--configs", nargs="+", default=["volume-cpu", "strong-cpu", "fazekas-cpu"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override the configs' epochs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (0: the configs')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    manifest = args.prepared or _make_cohort(args.out / "cohort", args.n_subjects, args.resolution_mm)
    table = read_manifest(manifest)
    unseen = [table.scan_id(r) for r in table.rows() if r["scanner"] in UNSEEN_SCANNERS]

    predictions, timing = [], []
    for name in args.configs:
        config = load_volume_config(resolve_config_path(name))
        overrides = {"seeds": tuple(args.seeds), "scanners": TRAIN_SCANNERS}
        if args.epochs:
            overrides["epochs"] = args.epochs
        if args.threads:
            overrides["threads"] = args.threads
        config = dataclasses.replace(config, **overrides)
        run_dir = args.out / "runs" / config.name
        wall, cpu = time.perf_counter(), time.process_time()
        result = train_volume(config, run_dir, manifest=manifest, resume=(run_dir / "config.yaml").exists())
        timing.append({"config": config.name, "what": f"train {len(config.seeds)} seed(s)",
                       "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
        in_domain = [s for s, role in result.splits.items() if role == "test"]
        for seed in result.seeds:
            model = load_volume_model(seed.model_dir)
            for set_name, scan_ids in (("in-domain", in_domain), ("unseen", unseen)):
                frame = predict_scans(model, manifest, scan_ids=scan_ids)
                frame.insert(0, "set", set_name)
                frame.insert(0, "seed", seed.seed)
                frame.insert(0, "model", config.name)
                predictions.append(frame)
            if config.labels != "fazekas":
                timing.append({"config": config.name, "what": "inference s/scan", **_inference_time(model, table, unseen[:5])})

    scans = pd.concat(predictions, ignore_index=True)
    write_csv(scans, args.out / "predictions.csv")
    write_csv(pd.DataFrame(timing), args.out / "timing.csv")
    agreements, confounders = [], []
    for (model_name, seed), part in scans.groupby(["model", "seed"], sort=False):
        grades = part["volume_ml"].isna().all() or part["predicted_volume_ml"].isna().all()
        reference, predicted = ("fazekas", "predicted_grade") if grades else ("volume_ml", "predicted_volume_ml")
        agreement = agreement_table(part, reference=reference, predicted=predicted)
        agreement.insert(1, "seed", seed)
        agreements.append(agreement)
        if not grades:
            confounder = confounder_table(part, reference=reference, predicted=predicted)
            confounder.insert(1, "seed", seed)
            confounders.append(confounder)
    agreement = pd.concat(agreements, ignore_index=True)
    write_tables(agreement, args.out, "agreement")
    summary = seed_summary(agreement, metrics=SUMMARY_METRICS)
    if confounders:
        confounder = pd.concat(confounders, ignore_index=True)
        write_tables(confounder, args.out, "confounders")
        r2 = confounder_r2(confounder)
        write_tables(r2, args.out, "confounder_r2")
        summary = summary.merge(seed_summary(r2, metrics=("r2_predicted", "r2_with_covariates")).drop(columns="seeds"),
                                on=["model", "set"], how="left")
    write_tables(summary, args.out, "summary")
    columns = ["model", "seed", "set", "n", "icc", "icc_ci_low", "icc_ci_high", "pearson_r", "bias", "loa_low",
               "loa_high", "dice_mean"]
    print(agreement[columns].to_markdown(index=False, floatfmt=".3g"))
    print(summary.to_markdown(index=False, floatfmt=".3g"))
    print(pd.DataFrame(timing).to_markdown(index=False, floatfmt=".1f"))
    return 0


#: Agreement metrics averaged over seeds in ``summary``.
SUMMARY_METRICS = ("icc", "icc_ci_low", "icc_ci_high", "pearson_r", "bias", "loa_low", "loa_high", "dice_mean")


def confounder_r2(confounders: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, seed, set): R² of the reference on the prediction alone and with the covariates."""
    fits = confounders.drop_duplicates(["model", "seed", "set", "fit"]).pivot(
        index=["model", "seed", "set"], columns="fit", values="r2")
    fits = fits.rename(columns={"predicted": "r2_predicted", "predicted+covariates": "r2_with_covariates"})
    return fits.reset_index().rename_axis(columns=None)


def _make_cohort(folder: Path, n_subjects: int, resolution_mm: float) -> Path:
    """Synthesise and prepare a phantom cohort (true brain masks given, no N4: minutes, not hours)."""
    prepared = folder / "prepared" / "manifest.tsv"
    if prepared.is_file():
        return prepared
    raw = synthesize_cohort(folder / "raw", n_subjects, seed=11, resolution_mm=resolution_mm, with_brain_mask=True)
    return prepare_manifest(raw, folder / "prepared", options=PrepareOptions(qc_png=False, n4=False)).manifest


def _inference_time(model, table, scan_ids: list[str]) -> dict[str, float]:
    """Mean wall and CPU seconds of :func:`predict_volume` per prepared scan."""
    rows = [r for r in table.rows() if table.scan_id(r) in set(scan_ids)]
    images = [(load_image(table.path(r, "flair")), load_mask(table.path(r, "brain_mask"))) for r in rows]
    wall, cpu = time.perf_counter(), time.process_time()
    for flair, brain_mask in images:
        predict_volume(model, flair, brain_mask)
    return {"wall_s": (time.perf_counter() - wall) / len(images), "cpu_s": (time.process_time() - cpu) / len(images)}


if __name__ == "__main__":
    raise SystemExit(main())
