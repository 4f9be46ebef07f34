"""Build the bundled starter model as M3SL, with its baseline twin and leave-one-out validation.

Usage (about 2.5 h on 2 CPU cores; rerun the same command to resume after a kill)::

    OMP_NUM_THREADS=1 nice python benchmarks/build_starter.py --real-data ../shared/data/real --work WORK

Steps (each skipped when its output exists, so an interrupted build resumes; the
training runs resume from their checkpoints):

1. ``WORK/lesion-library``: the Lesjak 2018 consensus masks in MNI space *without*
   the three annotated patients (07, 19, 26), so that no phantom lesion is shaped like
   a real test mask.
2. ``WORK/raw/phantoms``: ``wmhkit synth --scanners R`` (domain randomisation: a
   scanner drawn per subject, 3D or 2D with 0.45–1.2 mm in-plane and 2–8 mm slices,
   its own contrast, noise, bias, storage, skull on or off) at 1 mm, lesions partly from
   that library, true brain masks given.
3. ``WORK/raw/variants``: each annotated Lesjak scan re-acquired at four clinical
   resolutions other than the two of ``bench_clinical.py`` (0.7×0.7×5, 1×1×3, 0.5×0.5×7
   and 0.9×0.9×4 mm; whole head or stripped, five storages), with its gold mask.
   ``WORK/raw/transplants``: ``--transplants`` scans per annotated patient with the
   lesions of a library patient transplanted into its real FLAIR
   (:func:`wmhkit.synth.transplant.transplant_lesions`: real anatomy and scanner texture,
   real lesion shapes and loads of 0.3–52 mL, gold = host consensus ∪ transplanted
   lesions), every other one re-acquired like the variants.
4. ``WORK/raw/manifest.tsv``: phantoms (gold = truth), the three annotated Lesjak scans,
   their variants and transplants (gold = expert consensus), the 23 NiChart FLAIRs of adults aged
   69–96 (no gold; their DLWMLS masks as the external bronze rater ``external_dlwmls``,
   agreement with a tool, never gold). Real files are read where they are (absolute paths).
5. ``wmhkit prepare`` at the model's working grid: 1 mm isotropic (``--working-spacing-mm
   1,1,1``; thick slices are resampled too, so every plane's network sees 1 mm pixels).
6. ``wmhkit bronze`` (``--bronze-methods`` plus the imported DLWMLS masks) and ``wmhkit
   silver`` (STAPLE over every rater) on the NiChart scans.
7. ``WORK/train-all.tsv`` and one ``WORK/train-without-<patient>.tsv`` per annotated
   patient (that patient's scan, its variants and the transplants into it lose their gold).
8. Training (configs ``starter-pretrain``, ``starter``, ``starter-baseline`` in
   ``src/wmhkit/configs``): ``WORK/runs/pretrain`` = the M3SL bronze and silver stages on
   the NiChart scans (no annotated scan is in them); then the gold stage twice on every
   scan with gold: ``m3sl-all`` from the pretrained weights (``init: model``) and
   ``baseline-all`` from random weights, the same gold data and budget; and for each
   annotated patient ``<twin>-<patient>`` without that patient's gold (``--loo-twins``,
   ``--loo-epochs``). Two runs go side by side (``--jobs``), one thread each; logs in
   ``WORK/runs/<run>.log``.
9. ``WORK/evaluation/loo.tsv``: each left-out model on its patient's expert mask and on the
   two clinical degradations of ``bench_clinical.py`` (``lesjak-variants``, whole head and
   stripped), native grid (Dice, HD95, AVD, lesion F1, volumes).
10. ``WORK/evaluation/final.tsv``: ``m3sl-all`` and ``baseline-all`` on the 23 NiChart scans
   (against DLWMLS: agreement with a tool) and on 10 phantoms of the fixed profiles A–E,
   which no model trained on.
11. ``WORK/evaluation/summary.md``: the table of the model card and the paired M3SL − baseline
   difference over the real scans both were scored on; the twin with the higher mean there
   is copied into ``src/wmhkit/models/starter`` (``MODEL_CARD.md`` there is kept), unless
   ``--no-install``.

Data: Lesjak Ž. et al., Neuroinformatics 16:51–63 (2018), CC-BY 4.0; NiChart demo data
(SBIA, see its LICENSE.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from wmhkit.bronze.stage import rebased_row
from wmhkit.cli import main as wmhkit_main
from wmhkit.demo.models import fitted_pad_shape
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_mask
from wmhkit.models.folder import write_model_folder
from wmhkit.synth.degrade import (
    STORAGES,
    ClinicalAcquisition,
    clinical_variant,
    save_stored_image,
)
from wmhkit.synth.head import draw_head
from wmhkit.synth.lesions import lesion_library_files
from wmhkit.synth.transplant import transplant_lesions
from wmhkit.train.config import resolve_config_path

REPO = Path(__file__).resolve().parents[1]
STARTER_DIR = REPO / "src" / "wmhkit" / "models" / "starter"
#: Lesjak patients with expert masks: kept out of the phantoms' lesion library.
ANNOTATED_PATIENTS = ("patient07", "patient19", "patient26")
ANNOTATED_DATASET = "lesjak2018-annotated"
ANNOTATED_SCANS = tuple(f"lesjak-{patient}" for patient in ANNOTATED_PATIENTS)
VARIANT_DATASET = "lesjak2018-train-variants"
TRANSPLANT_DATASET = "lesjak2018-transplants"
#: Training re-acquisitions of the annotated scans: name → (voxel size in mm, whole head).
TRAIN_VARIANTS: dict[str, tuple[tuple[float, float, float], bool]] = {
    "0.7x0.7x5-head": ((0.7, 0.7, 5.0), True),
    "1x1x3-stripped": ((1.0, 1.0, 3.0), False),
    "0.5x0.5x7-stripped": ((0.5, 0.5, 7.0), False),
    "0.9x0.9x4-head": ((0.9, 0.9, 4.0), True),
}
#: The two models trained on every training set: M3SL (from the pretrained weights) and its baseline twin.
TWINS = ("m3sl", "baseline")
#: Fused-probability thresholds compared by :func:`loo_thresholds`.
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: Test phantoms of the fixed profiles A–E (never trained on) scored by :func:`evaluate_final`.
PHANTOM_TESTS = 10
#: ``trained_on`` of the shipped model (written into every predict sidecar).
TRAINED_ON = ("wmhkit starter: M3SL bronze and silver stages on 23 NiChart FLAIRs of older adults, gold stage on "
              "48 domain-randomised phantoms and 3 Lesjak 2018 MS scans with 12 clinical re-acquisitions and 18 "
              "lesion transplants; see MODEL_CARD.md")
#: Prepare options of every training scan: the working grid the shipped model declares.
PREPARE_ARGS = ["--working-spacing-mm", "1,1,1", "--thick-slice-mm", "100"]

log = logging.getLogger("build_starter")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-data", type=Path, required=True, help="the shared real-data folder (../shared/data/real)")
    parser.add_argument("--work", type=Path, required=True, help="work folder (created)")
    parser.add_argument("--phantoms", type=int, default=48, help="1 mm domain-randomised phantom subjects")
    parser.add_argument("--seed", type=int, default=0, help="phantom cohort and variant seed")
    parser.add_argument("--transplants", type=int, default=6,
                        help="scans per annotated patient with a library patient's lesions transplanted into it")
    parser.add_argument("--bronze-methods", default="outlier,growth,lpa", help="wmhkit's bronze methods")
    parser.add_argument("--jobs", type=int, default=2, help="training runs side by side (one thread each)")
    parser.add_argument("--workers", type=int, default=2, help="prepare/bronze worker processes")
    parser.add_argument("--loo-epochs", type=int, default=6, help="gold epochs of the leave-one-out runs")
    parser.add_argument("--loo-twins", default="m3sl,baseline",
                        help="twins trained and scored leave-one-out (comma-separated; m3sl alone halves the time)")
    parser.add_argument("--m3sl-gold-freeze", type=int, default=None,
                        help="conv layers frozen in the M3SL twin's gold stage (default: the starter config's)")
    parser.add_argument("--skip-loo", action="store_true", help="train and install the final twins only")
    parser.add_argument("--no-install", action="store_true", help="do not copy the chosen model into the package")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    real_data, work = args.real_data.resolve(), args.work.resolve()
    manifests = build_training_manifests(real_data, work, args)
    loo_twins = [] if args.skip_loo else [t for t in args.loo_twins.split(",") if t]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # pretraining runs beside the baseline twin
        pretrain = pool.submit(train, work, "pretrain", "starter-pretrain", manifests["all"])
        runs = [("baseline", "all"), ("m3sl", "all")] + [(t, p) for t in TWINS if t in loo_twins
                                                         for p in ANNOTATED_PATIENTS]
        futures = {f"{twin}-{name}": pool.submit(_train_twin, work, twin, name, manifests[name], pretrain,
                                                 args.loo_epochs, args.m3sl_gold_freeze) for twin, name in runs}
        models = {name: future.result() for name, future in futures.items()}
    sys.path.insert(0, str(Path(__file__).parent))  # bench_clinical: the scoring of the real validation
    if loo_twins:
        evaluate_loo(real_data, work, models, loo_twins)
    evaluate_final(real_data, work, models, args.seed)
    text, chosen = summarise(real_data, work)
    print(text)
    if not args.no_install:
        install_model(models[f"{chosen}-all"], STARTER_DIR, work)
    return 0


# ------------------------------------------------------------------------------------------- data


def build_training_manifests(real_data: Path, work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Steps 1–7 of the module docstring: ``{"all": WORK/train-all.tsv, "<patient>": WORK/train-without-<patient>.tsv}``."""
    raw, prepared = work / "raw", work / "prepared"
    library = lesion_library(real_data, work / "lesion-library")
    phantoms = raw / "phantoms" / "manifest.tsv"
    if not phantoms.exists():
        _run(["synth", "--out", str(phantoms.parent), "--subjects", str(args.phantoms), "--seed", str(args.seed),
              "--scanners", "R", "--lesion-library", str(library), "--with-brain-mask"], "synth")
    raw_manifest = raw / "manifest.tsv"
    if not raw_manifest.exists():
        rows = (phantom_rows(phantoms) + annotated_rows(real_data, raw / "variants", args.seed)
                + transplant_rows(real_data, library, raw / "transplants", args.seed, args.transplants)
                + nichart_rows(real_data))
        write_manifest(pd.DataFrame(rows).fillna(""), raw_manifest)
    prepared_manifest = prepared / "manifest.tsv"
    if not (prepared / "prepare.done").exists():
        _run(["prepare", str(raw_manifest), "--out", str(prepared), "--workers", str(args.workers), *PREPARE_ARGS],
             "prepare", allow_failures=True)
        (prepared / "prepare.done").write_text("done\n")
    if not (work / "bronze.done").exists():
        table = read_manifest(prepared_manifest).table
        to_label = write_manifest(table[table["dataset"] == "nichart"].reset_index(drop=True),
                                  prepared / "to-label.tsv")
        _run(["bronze", str(to_label), "--out", str(work), "--methods", args.bronze_methods,
              "--workers", str(args.workers)], "bronze", allow_failures=True)
        (work / "bronze.done").write_text("done\n")
    if not (work / "silver.done").exists():
        _run(["silver", str(work / "manifest.tsv"), "--out", str(work)], "silver", allow_failures=True)
        (work / "silver.done").write_text("done\n")
    full = training_manifest(prepared_manifest, work / "manifest.tsv", work / "train-all.tsv")
    manifests = {"all": full}
    table = read_manifest(full).table
    for patient in ANNOTATED_PATIENTS:
        held_out = table["source_patient"] == patient
        without = table.copy()
        without.loc[held_out, "gold"] = ""
        manifests[patient] = write_manifest(without, work / f"train-without-{patient}.tsv")
    return manifests


def lesion_library(real_data: Path, folder: Path) -> Path:
    """Copy the consensus masks of every Lesjak patient except the annotated three into ``folder``."""
    source = real_data / "lesjak2018" / "consensus-masks-mni"
    if not source.is_dir():
        raise SystemExit(f"{source}: not found; pass --real-data pointing at the shared real-data folder")
    folder.mkdir(parents=True, exist_ok=True)
    for mask in sorted(source.glob("patient*.nii.gz")):
        if mask.name.removesuffix(".nii.gz") not in ANNOTATED_PATIENTS and not (folder / mask.name).exists():
            shutil.copy2(mask, folder / mask.name)
    return folder


def phantom_rows(manifest_path: Path) -> list[dict[str, str]]:
    """The phantom manifest's rows with absolute paths."""
    manifest = read_manifest(manifest_path)
    keep = ["subject", "dataset", "scanner", "stage", "age", "sex", "flair", "brain_mask", "gold"]
    rows = []
    for row in manifest.rows():
        record = {column: row.get(column, "") for column in keep}
        for column in ("flair", "brain_mask", "gold"):
            record[column] = str(manifest.path(row, column)) if record[column] else ""
        rows.append(record)
    return rows


def annotated_rows(real_data: Path, folder: Path, seed: int) -> list[dict[str, str]]:
    """The three annotated Lesjak scans and their training variants (written to ``folder`` once)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, patient in enumerate(ANNOTATED_PATIENTS):
        source = real_data / "lesjak2018" / "annotated" / patient
        rows.append({"subject": f"lesjak-{patient}", "dataset": ANNOTATED_DATASET, "scanner": "lesjak-3T-3D",
                     "flair": str(source / "FLAIR.nii.gz"), "gold": str(source / "consensus.nii.gz"),
                     "source_patient": patient})
        for index, name in enumerate(TRAIN_VARIANTS):
            scan_id = f"lesjak-{patient}-{name}"
            flair_path, gold_path = folder / f"{scan_id}_FLAIR.nii.gz", folder / f"{scan_id}_gold.nii.gz"
            if not (flair_path.is_file() and gold_path.is_file()):
                rng = np.random.default_rng([seed, 1000 + number, index])
                _reacquire(*_annotated_scan(source), name, index, rng, flair_path, gold_path,
                           number * len(TRAIN_VARIANTS) + index)
            rows.append({"subject": scan_id, "dataset": VARIANT_DATASET, "scanner": name,
                         "flair": str(flair_path), "gold": str(gold_path), "source_patient": patient})
    return rows


def transplant_rows(real_data: Path, library: Path, folder: Path, seed: int, per_host: int) -> list[dict[str, str]]:
    """``per_host`` scans per annotated patient with the lesions of a library patient transplanted into it
    (:func:`wmhkit.synth.transplant.transplant_lesions`), every other one re-acquired at a training resolution
    (written to ``folder`` once). Each keeps its host as ``source_patient``: it loses its gold when the host is
    left out."""
    folder.mkdir(parents=True, exist_ok=True)
    donors = lesion_library_files(library)
    rows = []
    for number, patient in enumerate(ANNOTATED_PATIENTS):
        source = real_data / "lesjak2018" / "annotated" / patient
        rng = np.random.default_rng([seed, 2000 + number])
        for index, donor in enumerate(rng.choice(donors, size=per_host, replace=False)):
            resolution = list(TRAIN_VARIANTS)[index // 2 % len(TRAIN_VARIANTS)] if index % 2 else "1mm"
            scan_id = f"lesjak-{patient}-with-{Path(donor).name.removesuffix('.nii.gz')}-{resolution}"
            flair_path, gold_path = folder / f"{scan_id}_FLAIR.nii.gz", folder / f"{scan_id}_gold.nii.gz"
            scan_rng = np.random.default_rng([seed, 2000 + number, index])
            if not (flair_path.is_file() and gold_path.is_file()):
                flair, gold = _annotated_scan(source)
                flair, gold, added_ml = transplant_lesions(flair, gold, Path(donor), scan_rng,
                                                           mirror=bool(scan_rng.random() < 0.5))
                if resolution == "1mm":
                    save_mask(gold, gold_path)
                    save_stored_image(flair, flair_path, STORAGES["float32"])
                else:
                    _reacquire(flair, gold, resolution, index, scan_rng, flair_path, gold_path, number + index)
                log.info("transplant %s written (%.1f mL added)", scan_id, added_ml)
            rows.append({"subject": scan_id, "dataset": TRANSPLANT_DATASET, "scanner": resolution,
                         "flair": str(flair_path), "gold": str(gold_path), "source_patient": patient})
    return rows


def _annotated_scan(source: Path) -> tuple:
    """An annotated Lesjak patient's FLAIR and consensus mask."""
    return (load_image(source / "FLAIR.nii.gz"),
            load_mask(source / "consensus.nii.gz", allowed_labels=(0, 1, 2)))


def _reacquire(flair, gold, name: str, index: int, rng: np.random.Generator, flair_path: Path, gold_path: Path,
               storage_index: int) -> None:
    """Write ``flair``/``gold`` re-acquired as training variant ``name`` (:data:`TRAIN_VARIANTS`)."""
    spacing, head = TRAIN_VARIANTS[name]
    storage = list(STORAGES.values())[storage_index % len(STORAGES)]
    orientation = ("LPS", "LAS", "RAS")[index % 3]
    tilt = (float(rng.uniform(-12.0, 12.0)), 0.0, float(rng.uniform(-5.0, 5.0)))
    acquisition = ClinicalAcquisition(spacing, orientation, tilt, 25.0 if head else 10.0)
    image, mask = clinical_variant(flair, gold, acquisition, head=draw_head(0.3, rng) if head else None,
                                   noise=0.02 if head else 0.0, rng=rng)
    save_stored_image(image, flair_path, storage)
    save_mask(mask, gold_path)
    log.info("variant %s written (%s, %s)", flair_path.name, image.shape, storage.name)


def nichart_rows(real_data: Path) -> list[dict[str, str]]:
    """The NiChart demo FLAIRs with their DLWMLS masks as the external rater (no gold)."""
    folder = real_data / "nichart-demo"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not found; pass --real-data pointing at the shared real-data folder")
    subjects = sorted(folder.glob("Subj*"), key=lambda p: int(p.name.removeprefix("Subj")))
    return [{"subject": f"nichart-{s.name}", "dataset": "nichart", "scanner": "nichart",
             "flair": str(s / "FLAIR.nii.gz"), "external_dlwmls": str(s / "dlwmls.nii.gz")} for s in subjects]


def training_manifest(prepared_manifest: Path, labelled_manifest: Path, out: Path) -> Path:
    """Every prepared scan with the bronze and silver labels of the labelled ones (``labelled_manifest`` and ``out``
    share a folder; paths relative to it)."""
    prepared = read_manifest(prepared_manifest)
    labelled = read_manifest(labelled_manifest)
    label_columns = [c for c in labelled.table.columns if c.startswith("bronze_") or c == "silver"]
    labels = {labelled.scan_id(row): {c: row[c] for c in label_columns} for row in labelled.rows()}
    rows = []
    for row in prepared.rows():
        record = rebased_row(row, prepared.root, out.parent)
        record.update(labels.get(prepared.scan_id(row), {}))
        rows.append(record)
    table = pd.DataFrame(rows, columns=list(prepared.table.columns) + label_columns).fillna("")
    write_manifest(table, out)
    log.info("training manifest %s: %d scans (%d with gold, %d with silver)", out, len(table),
             int((table["gold"] != "").sum()), int((table["silver"] != "").sum()))
    return out


# --------------------------------------------------------------------------------------- training


def _train_twin(work: Path, twin: str, name: str, manifest: Path, pretrain, loo_epochs: int,
                m3sl_freeze: int | None = None) -> Path:
    """Train twin ``m3sl`` (from the pretrained model, ``pretrain`` a future of its folder; ``m3sl_freeze`` conv
    layers frozen, None: the config's) or ``baseline`` on training set ``name``: the config's gold epochs for
    ``all``, ``loo_epochs`` for a left-out patient."""
    epochs = None if name == "all" else loo_epochs
    if twin == "m3sl":
        return train(work, f"m3sl-{name}", "starter", manifest, init_model=pretrain.result(), epochs=epochs,
                     freeze=m3sl_freeze)
    return train(work, f"baseline-{name}", "starter-baseline", manifest, epochs=epochs)


def train(work: Path, name: str, config_name: str, manifest: Path, *, init_model: Path | None = None,
          epochs: int | None = None, freeze: int | None = None) -> Path:
    """``wmhkit train`` one run into ``WORK/runs/<name>`` (resumed when it exists); return its model folder.

    ``epochs`` and ``freeze`` override the last stage's epochs (the shorter leave-one-out budget) and frozen
    conv layers.
    """
    run = work / "runs" / name
    if (run / "model" / "model.yaml").is_file():
        return run / "model"
    config = yaml.safe_load(resolve_config_path(config_name).read_text())
    config["name"] = name
    config["data"]["pad_shape"] = list(fitted_pad_shape(manifest, config["data"]["patch_size"]))
    if init_model is not None:
        config.update(init="model", init_model=str(init_model))
    if epochs is not None:
        config["stages"][-1]["epochs"] = epochs
    if freeze is not None:
        config["stages"][-1]["freeze"] = freeze
    config_path = work / "configs" / f"{name}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "wmhkit", "train", str(config_path), "--manifest", str(manifest),
               "--out", str(run), "--no-progress"]
    if (run / "run.json").exists():
        command.append("--resume")
    log.info("train %s: %s (log %s)", name, " ".join(command[3:]), run.with_suffix(".log"))
    started = time.perf_counter()
    run.parent.mkdir(parents=True, exist_ok=True)
    with open(run.with_suffix(".log"), "a") as output:  # one thread per run: --jobs runs share the cores
        code = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    if code != 0:
        raise SystemExit(f"train {name} failed with exit code {code}: see {run.with_suffix('.log')}")
    log.info("train %s: done in %.0f s", name, time.perf_counter() - started)
    return run / "model"


# ------------------------------------------------------------------------------------- validation


def evaluate_loo(real_data: Path, work: Path, models: dict[str, Path], twins=TWINS) -> None:
    """Step 9: score each left-out model of ``twins`` on its patient's scans (``WORK/evaluation/loo-<twin>.tsv``)."""
    score_models(real_data, work / "evaluation", "loo", ("lesjak-annotated", "lesjak-variants"),
                 lambda scan, twin: models[f"{twin}-{_patient(scan.scan_id)}"], twins=twins)


def evaluate_final(real_data: Path, work: Path, models: dict[str, Path], seed: int, twins=TWINS) -> None:
    """Step 10: the final twins on the NiChart scans (against DLWMLS) and on unseen-profile phantoms.

    The phantoms: ``wmhkit synth`` subjects of the fixed profiles A–E (the models trained on
    randomised profiles only) with another seed, their true brain masks given.
    """
    phantoms = work / "evaluation" / "phantoms"
    if not (phantoms / "manifest.tsv").is_file():
        _run(["synth", "--out", str(phantoms), "--subjects", str(PHANTOM_TESTS), "--seed", str(seed + 999),
              "--with-brain-mask"], "synth test phantoms")
    score_models(real_data, work / "evaluation", "final", ("nichart",), lambda scan, twin: models[f"{twin}-all"],
                 twins=twins, extra_scans=phantom_scans(phantoms))


def phantom_scans(folder: Path) -> list:
    """The test phantoms of ``folder/manifest.tsv`` as ``bench_clinical`` scans (truth as reference)."""
    from bench_clinical import Scan

    manifest = read_manifest(folder / "manifest.tsv")
    return [Scan(f"phantom-{row['subject']}-{row['scanner']}", "phantoms-unseen", manifest.path(row, "flair"),
                 manifest.path(row, "gold"), "truth") for row in manifest.rows()]


def score_models(real_data: Path, out: Path, name: str, groups: tuple[str, ...], model_of, twins=TWINS,
                 extra_scans=()) -> None:
    """Predict each scan of ``groups`` (+ ``extra_scans``) with each of ``twins`` (``model_of(scan, twin)``) and
    score it on the native grid into ``out/<name>-<twin>.tsv``.

    Brain masks are extracted once per scan (HD-BET, as ``predict`` does; a phantom's
    true brain mask is used) and reused by every model and rerun; rows are
    written as they come, so a rerun continues, and one process per twin may run at once.
    """
    from bench_clinical import collect_scans, extract_brain, prepare_options, run_model

    options = prepare_options(None)
    scans = [*collect_scans(real_data, groups, out, 0, None), *extra_scans]
    for twin in twins:
        table_path = out / f"{name}-{twin}.tsv"
        rows = pd.read_csv(table_path, sep="\t").to_dict("records") if table_path.is_file() else []
        done = {row["scan"] for row in rows}
        for scan in scans:
            if scan.scan_id in done:
                continue
            work = out / "work" / scan.scan_id
            brain_mask = _brain_mask(scan, work, lambda s, w: extract_brain(s, w, options, [])[1])
            row, _ = run_model(scan, twin, model_of(scan, twin), work, brain_mask)
            rows.append(row)
            pd.DataFrame(rows).to_csv(table_path, sep="\t", index=False)


def summarise(real_data: Path, work: Path) -> tuple[str, str]:
    """Step 11: ``WORK/evaluation/summary.md`` (every figure of the model card, per twin) and the twin to ship:
    the higher mean Dice over the real scans both twins were scored on."""
    from scipy import stats

    from wmhkit.metrics.volume import icc_2_1

    loo, final = (pd.concat([pd.DataFrame(columns=["scan", "group", "model"]),
                             *(pd.read_csv(path, sep="\t") for path in sorted((work / "evaluation").glob(f"{name}-*.tsv")))],
                            ignore_index=True) for name in ("loo", "final"))
    loo["set"] = np.where(loo["group"] == "lesjak-annotated", "Lesjak leave-one-out (3 scans)",
                          "Lesjak leave-one-out, clinical degradations (12 scans)")
    final["set"] = np.where(final["group"] == "nichart", "NiChart vs DLWMLS (23 scans, a tool, not truth)",
                            f"phantoms of unseen profiles A–E ({PHANTOM_TESTS} scans)")
    table = pd.concat([loo, final], ignore_index=True)
    lines = ["| set | twin | Dice | lesion F1 | AVD % | HD95 mm | volume ICC(2,1) [95 % CI] |",
             "|---|---|---|---|---|---|---|"]
    for (name, twin), rows in table.groupby(["set", "model"], sort=False):
        icc = icc_2_1(rows["vol_gold_ml"].to_numpy(), rows["vol_pred_ml"].to_numpy()) if len(rows) > 2 else None
        lines.append(f"| {name} | {twin} | {rows['dice'].mean():.3f} | {rows['lesion_f1'].mean():.3f} | "
                     f"{rows['avd_pct'].median():.0f} (median) | {rows['hd95_mm'].median():.1f} (median) | "
                     + (f"{icc.icc:.2f} [{icc.ci_low:.2f}, {icc.ci_high:.2f}] |" if icc else "– |"))
    real = table[table["group"] != "phantoms-unseen"].pivot_table(index="scan", columns="model", values="dice")
    real = real.dropna()
    difference = real["m3sl"] - real["baseline"]
    test = stats.ttest_rel(real["m3sl"], real["baseline"])
    lines.append("")
    for twin in sorted(set(loo["model"])):
        best, nested = loo_thresholds(real_data, work, twin)
        original = nested["scan"].isin(ANNOTATED_SCANS)
        lines.append(f"{twin}: threshold chosen by nested leave-one-out (each patient's from the other two, of "
                     f"{THRESHOLDS}): Dice {nested.loc[original, 'dice'].mean():.3f} on the 3 scans, "
                     f"{nested.loc[~original, 'dice'].mean():.3f} on their degradations; best over all three: {best}.")
    chosen = "m3sl" if difference.mean() >= 0 else "baseline"
    lines += ["", f"M3SL − baseline Dice over the {len(real)} real scans both were scored on: mean "
              f"{difference.mean():+.3f} (SD {difference.std():.3f}), paired t-test t = {test.statistic:.2f}, "
              f"p = {test.pvalue:.3g}. Shipped: {chosen}."]
    text = "\n".join(lines) + "\n"
    (work / "evaluation" / "summary.md").write_text(text)
    return text, chosen


def _brain_mask(scan, work: Path, extract):
    """A phantom's true brain mask, else the native-grid mask ``extract(scan, work)`` made before (kept in
    ``work/brain_mask.nii.gz``, the cache of ``bench_clinical.extract_brain``), else a new one."""
    if scan.group == "phantoms-unseen":
        return load_mask(scan.flair.parent / scan.flair.name.replace("_FLAIR", "_brainmask"))
    cached = work / "brain_mask.nii.gz"
    return load_mask(cached) if cached.is_file() else extract(scan, work)


def _patient(scan_id: str) -> str:
    return next(p for p in ANNOTATED_PATIENTS if p in scan_id)


def loo_thresholds(real_data: Path, work: Path, twin: str) -> tuple[float, pd.DataFrame]:
    """The fused-probability threshold by leave-one-out over the annotated patients.

    From the saved native-grid probability maps of ``twin``'s left-out models: for each
    patient, the threshold of :data:`THRESHOLDS` with the best mean Dice on the *other two*
    patients' scans (original and degradations) scores that patient's scans (a nested
    leave-one-out: no scan's mask chooses its own threshold). Returns the threshold with the
    best mean Dice over all three patients (the one to ship) and the per-scan rows
    (``threshold`` = the nested choice).
    """
    from bench_clinical import collect_scans, score

    out = work / "evaluation"
    dice = {}
    scans = collect_scans(real_data, ("lesjak-annotated", "lesjak-variants"), out, 0, None)
    for scan in scans:
        probability = load_image(next((out / "work" / scan.scan_id / f"predict-{twin}").glob("*_wmhprob.nii.gz")))
        dice[scan.scan_id] = {t: score(scan, probability.with_array((probability.array > t).astype(np.uint8)))
                              for t in THRESHOLDS}
    rows = []
    for patient in ANNOTATED_PATIENTS:
        others = [s for s in dice if _patient(s) != patient]
        chosen = max(THRESHOLDS, key=lambda t: np.mean([dice[s][t]["dice"] for s in others]))
        rows += [{"scan": s, "model": twin, "threshold": chosen, **dice[s][chosen]} for s in dice if _patient(s) == patient]
    best = max(THRESHOLDS, key=lambda t: np.mean([dice[s][t]["dice"] for s in dice]))
    return best, pd.DataFrame(rows)


def install_model(model_dir: Path, package_dir: Path, work: Path) -> None:
    """Rewrite ``model_dir`` into the package's starter folder (its ``MODEL_CARD.md`` stays), through the one
    model-folder writer: ``trained_on`` says what the model is (it reaches every user's sidecars) and the build
    machine's paths in the provenance are written relative to ``WORK``."""
    record = yaml.safe_load((model_dir / "model.yaml").read_text())
    record["trained_on"] = TRAINED_ON
    provenance = json.loads((model_dir / "provenance.json").read_text().replace(str(work), "WORK"))
    weights = {p.stem: torch.load(p, map_location="cpu", weights_only=True) for p in (model_dir / "weights").glob("*.pt")}
    shutil.rmtree(package_dir / "weights", ignore_errors=True)
    digest = write_model_folder(package_dir, record, weights, provenance)
    size_mb = sum(p.stat().st_size for p in (package_dir / "weights").iterdir()) / 1e6
    log.info("installed %s into %s (weights %.2f MB, model hash %s)", model_dir, package_dir, size_mb, digest[:12])


def _run(argv: list[str], step: str, *, allow_failures: bool = False) -> None:
    """Run one ``wmhkit`` command in-process; exit code 1 (some scans failed) is accepted where allowed."""
    started = time.perf_counter()
    log.info("%s: wmhkit %s", step, " ".join(argv))
    code = wmhkit_main(argv)
    if code != 0 and not (allow_failures and code == 1):
        raise SystemExit(f"{step}: wmhkit {' '.join(argv)} failed with exit code {code}")
    if code == 1:
        log.warning("%s: some scans failed (see the output folder's failures.tsv)", step)
    log.info("%s: done in %.0f s", step, time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())
