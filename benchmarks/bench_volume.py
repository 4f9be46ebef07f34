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

``--segmentation-models`` adds voxel-wise 2.5D segmenters trained by ``wmhkit train``
(M3SL, baseline: ``RUN/model`` folders, named in the tables after ``RUN``, seed 0),
scored on the same two scan sets without training: their predicted volume is the
volume of the mask ``wmhkit predict`` computes on the prepared grid
(:func:`wmhkit.infer.volume.score_segmentation_scans`). Their ``in-domain`` set is
the test split that ``train_volume`` assigns for the first config, ``volume-cpu``
when ``--configs`` is given no names; the prepared scans are used as they are, so
the model should have been trained on scans prepared with the same settings (a
warning says when the manifest's recorded settings differ from the model's).

Usage::

    python benchmarks/bench_volume.py --out /tmp/bench-volume                       # synthesise + prepare 100 phantoms
    python benchmarks/bench_volume.py --prepared PREP/manifest.tsv --out /tmp/bv --seeds 0 1 2
    python benchmarks/bench_volume.py --prepared PREP/manifest.tsv --out /tmp/bv-seg --configs \
        --segmentation-models RUN/runs/m3sl-cpu/model RUN/runs/baseline-cpu/model   # segmenters only

Writes ``OUT/predictions.csv``, ``OUT/agreement.{csv,md}``, ``OUT/confounders.{csv,md}``,
``OUT/confounder_r2.{csv,md}`` (R² per seed), ``OUT/summary.{csv,md}`` (mean ± SD over
seeds of the agreement metrics and the confounder R²) and ``OUT/timing.csv``; prints the
per-seed and summary tables as markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import torch

from wmhkit.infer.volume import predict_scans, score_segmentation_scans, segmentation_scorer
from wmhkit.io.image import Image
from wmhkit.io.manifest import Manifest, read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.models.folder import load_model
from wmhkit.models.predict_gp_unet import VolumeModel, load_volume_model, predict_volume
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.stats.tables import write_csv, write_tables
from wmhkit.stats.volume_models import agreement_table, confounder_table, seed_summary
from wmhkit.synth.cohort import synthesize_cohort
from wmhkit.train.config import resolve_config_path
from wmhkit.train.export import prepare_parameters
from wmhkit.train.volume import assign_splits, select_scans, train_volume
from wmhkit.train.volume_config import VolumeConfig, load_volume_config

TRAIN_SCANNERS = ("A", "B", "C")
UNSEEN_SCANNERS = ("D", "E")
log = logging.getLogger("bench_volume")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, help="prepared manifest (default: synthesise and prepare a cohort)")
    parser.add_argument("--n-subjects", type=int, default=100)
    parser.add_argument("--resolution-mm", type=float, default=2.0)
    parser.add_argument("--configs", nargs="*", default=["volume-cpu", "strong-cpu", "fazekas-cpu"],
                        help="volume configs to train (none: only score --segmentation-models)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override the configs' epochs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (0: the configs')")
    parser.add_argument("--segmentation-models", nargs="+", type=Path, default=[], metavar="DIR",
                        help="2.5D model folders of wmhkit train (RUN/model) to score on the same scans")
    args = parser.parse_args(argv)
    if not args.configs and not args.segmentation_models:
        parser.error("give at least one of --configs NAME and --segmentation-models DIR")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    manifest = args.prepared or _make_cohort(args.out / "cohort", args.n_subjects, args.resolution_mm)
    table = read_manifest(manifest)
    unseen = [table.scan_id(r) for r in table.rows() if r["scanner"] in UNSEEN_SCANNERS]

    predictions, timing = [], []
    for name in args.configs:
        config = _config(name, args)
        run_dir = args.out / "runs" / config.name
        wall, cpu = time.perf_counter(), time.process_time()
        result = train_volume(config, run_dir, manifest=manifest, resume=(run_dir / "config.yaml").exists())
        timing.append({"config": config.name, "what": f"train {len(config.seeds)} seed(s)",
                       "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
        in_domain = [s for s, role in result.splits.items() if role == "test"]
        for seed in result.seeds:
            model = load_volume_model(seed.model_dir)
            predictions += _score_sets(functools.partial(predict_scans, model, manifest), config.name, seed.seed,
                                       {"in-domain": in_domain, "unseen": unseen})
            if config.labels != "fazekas":
                timing.append({"config": config.name, "what": "inference s/scan",
                               **_inference_time(_volume_segmenter(model), table, unseen[:5])})
    if args.segmentation_models:
        if args.threads:
            torch.set_num_threads(args.threads)
        in_domain = _test_split(table, _config(args.configs[0] if args.configs else "volume-cpu", args))
        for folder in args.segmentation_models:
            segmenter, name = load_model(folder), folder.resolve().parent.name
            _check_preparation(segmenter.spec.prepare, table, name)
            predictions += _score_sets(functools.partial(score_segmentation_scans, segmenter, manifest), name, 0,
                                       {"in-domain": in_domain, "unseen": unseen})
            timing.append({"config": name, "what": "inference s/scan",
                           **_inference_time(segmentation_scorer(segmenter).predict, table, unseen[:5])})

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


def _config(name: str, args: argparse.Namespace) -> VolumeConfig:
    """The named config as this benchmark trains it: scanners A–C, ``--seeds``, and ``--epochs``/``--threads``."""
    overrides = {"seeds": tuple(args.seeds), "scanners": TRAIN_SCANNERS}
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.threads:
        overrides["threads"] = args.threads
    return dataclasses.replace(load_volume_config(resolve_config_path(name)), **overrides)


def _test_split(table: Manifest, config: VolumeConfig) -> list[str]:
    """The scans :func:`train_volume` holds out as ``test`` for ``config`` (its split is deterministic)."""
    return [scan for scan, role in assign_splits(select_scans(table, config), config).items() if role == "test"]


def _score_sets(score: Callable[..., pd.DataFrame], model: str, seed: int,
                scan_sets: dict[str, list[str]]) -> list[pd.DataFrame]:
    """``score(scan_ids=...)`` (the per-scan rows of one model) on each scan set, labelled with model, seed and set."""
    frames = []
    for set_name, scan_ids in scan_sets.items():
        frame = score(scan_ids=scan_ids)
        frame.insert(0, "set", set_name)
        frame.insert(0, "seed", seed)
        frame.insert(0, "model", model)
        frames.append(frame)
    return frames


def _check_preparation(options: PrepareOptions, table: Manifest, name: str) -> None:
    """Warn when the manifest's scans were prepared otherwise than the model's training scans (QC images aside)."""
    record = prepare_parameters(table)
    prepared = None if record is None else dataclasses.replace(PrepareOptions.from_dict(record), qc_png=False)
    if prepared != dataclasses.replace(options, qc_png=False):
        log.warning("%s was trained on scans prepared with %s, the manifest's were prepared with %s",
                    name, options.to_dict(), record)


def _volume_segmenter(model: VolumeModel) -> Callable[[Mapping[str, Image]], object]:
    """:func:`predict_volume` (network, attention, segmentation) on a prepared scan's images by role."""
    return lambda images: predict_volume(model, images["flair"], images["brain_mask"])


def _inference_time(segment: Callable[[Mapping[str, Image]], object], table: Manifest,
                    scan_ids: list[str]) -> dict[str, float]:
    """Mean wall and CPU seconds of ``segment`` (images by role → prediction) per prepared scan."""
    rows = [r for r in table.rows() if table.scan_id(r) in set(scan_ids)]
    images = [{"flair": load_image(table.path(r, "flair")), "brain_mask": load_mask(table.path(r, "brain_mask"))}
              | ({"t1": load_image(table.path(r, "t1"))} if table.path(r, "t1") else {}) for r in rows]
    wall, cpu = time.perf_counter(), time.process_time()
    for scan in images:
        segment(scan)
    return {"wall_s": (time.perf_counter() - wall) / len(images), "cpu_s": (time.process_time() - cpu) / len(images)}


if __name__ == "__main__":
    raise SystemExit(main())
