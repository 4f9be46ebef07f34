"""Build the bundled starter model: data, training and export into ``src/wmhkit/models/starter``.

Usage::

    python benchmarks/build_starter.py --real-data ../shared/data/real --work /tmp/starter

Steps (each is skipped when its output already exists, so an interrupted build
resumes; ``wmhkit train --resume`` continues an interrupted training run):

1. ``WORK/lesion-library``: the Lesjak 2018 consensus masks in MNI space, *without*
   the three annotated patients (07, 19, 26), so that no phantom lesion is shaped like
   a real test mask.
2. ``WORK/raw/phantoms``: ``wmhkit synth`` at 1 mm, ``--phantoms`` subjects over all
   five scanner profiles (A–E), lesions drawn from that library.
3. ``WORK/raw/real``: a copy of the real scans (a manifest may not point outside its
   folder; the data never enter the repository): the three annotated Lesjak scans
   (FLAIR, T1, consensus as gold), the eleven raw clinical Lesjak FLAIRs (with T1 where
   present) and the two 3D FLAIRs of ``unannotated-other``. One raw manifest lists
   phantoms and real scans.
4. ``wmhkit prepare`` of every scan into ``WORK/prepared``; then ``wmhkit bronze``
   (``--bronze-methods``, default outlier, growth and tophat: t1hypo scores Dice 0.06 on the
   annotated real scans, BENCHMARKS.md) and ``wmhkit silver`` (STAPLE) into ``WORK`` on every
   real scan and the first ``--label-phantoms`` phantoms (default none: on 2 shared cores the
   labels of 15 more 1 mm scans cost about 20 minutes, and the phantoms have their truth).
5. ``WORK/train.tsv``: every prepared scan with its labels; the bronze and silver cells of the
   annotated Lesjak scans are left empty, so their only label in training is the expert gold
   (they are the real-data test scans of ``bench_real.py``).
6. ``wmhkit train starter --manifest WORK/train.tsv --out WORK/run``.
7. Copy ``WORK/run/model`` (``model.yaml``, ``weights/``, ``provenance.json``) into
   ``src/wmhkit/models/starter/`` (``MODEL_CARD.md`` there is kept).

Runs under whatever priority it is started with; on a shared machine start it as
``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/build_starter.py ...``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from wmhkit.bronze.stage import rebased_row
from wmhkit.cli import main as wmhkit_main
from wmhkit.io.manifest import (
    read_manifest,
    write_manifest,
)
from wmhkit.synth.cohort import DATASET_NAME as PHANTOM_DATASET

REPO = Path(__file__).resolve().parents[1]
STARTER_DIR = REPO / "src" / "wmhkit" / "models" / "starter"
#: Lesjak patients with expert masks: kept out of the phantoms' lesion library.
ANNOTATED_PATIENTS = ("patient07", "patient19", "patient26")
ANNOTATED_DATASET = "lesjak2018-annotated"
#: Files copied from the model run folder into the package (the model folder contract).
MODEL_FILES = ("model.yaml", "provenance.json")

log = logging.getLogger("build_starter")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-data", type=Path, required=True, help="the shared real-data folder (../shared/data/real)")
    parser.add_argument("--work", type=Path, required=True, help="work folder (created; holds copies of the data)")
    parser.add_argument("--phantoms", type=int, default=15, help="1 mm phantom subjects, spread over scanners A–E")
    parser.add_argument("--seed", type=int, default=0, help="phantom cohort seed")
    parser.add_argument("--bronze-methods", default="outlier,growth,tophat",
                        help="bronze methods (t1hypo, the weakest on the real scans, is left out by default)")
    parser.add_argument("--label-phantoms", type=int, default=0,
                        help="phantoms that also get bronze and silver labels (every real scan does)")
    parser.add_argument("--config", default="starter", help="training config (shipped name or YAML file)")
    parser.add_argument("--data-only", action="store_true", help="stop after building the training manifest")
    parser.add_argument("--no-install", action="store_true", help="train but do not copy the model into the package")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    work = args.work.resolve()
    train_manifest = build_training_manifest(args.real_data.resolve(), work, args.phantoms, args.seed,
                                             args.bronze_methods, args.label_phantoms)
    if args.data_only:
        return 0
    run = work / "run"
    command = ["train", args.config, "--manifest", str(train_manifest), "--out", str(run), "--no-progress"]
    if (run / "run.json").exists():
        command.append("--resume")
    _run(command, "train")
    if not args.no_install:
        install_model(run / "model", STARTER_DIR)
    return 0


def build_training_manifest(real_data: Path, work: Path, n_phantoms: int, seed: int, bronze_methods: str,
                            label_phantoms: int) -> Path:
    """Steps 1–5 of the module docstring; return ``WORK/train.tsv``."""
    raw, prepared = work / "raw", work / "prepared"
    library = lesion_library(real_data, work / "lesion-library")
    phantoms = raw / "phantoms" / "manifest.tsv"
    if not phantoms.exists():
        _run(["synth", "--out", str(phantoms.parent), "--subjects", str(n_phantoms), "--seed", str(seed),
              "--lesion-library", str(library)], "synth")
    raw_manifest = raw / "manifest.tsv"
    if not raw_manifest.exists():
        real_rows = copy_real_scans(real_data, raw / "real")
        write_manifest(pd.DataFrame(phantom_rows(phantoms) + real_rows).fillna(""), raw_manifest)
    prepared_manifest = prepared / "manifest.tsv"
    if not prepared_manifest.exists():
        _run(["prepare", str(raw_manifest), "--out", str(prepared)], "prepare", allow_failures=True)
    labelled_manifest = work / "manifest.tsv"
    if not (work / "bronze.done").exists():
        to_label = scans_to_label(prepared_manifest, prepared / "to-label.tsv", label_phantoms)
        _run(["bronze", str(to_label), "--out", str(work), "--methods", bronze_methods], "bronze",
             allow_failures=True)
        (work / "bronze.done").write_text("done\n")
    if not (work / "silver.done").exists():
        _run(["silver", str(labelled_manifest), "--out", str(work)], "silver", allow_failures=True)
        (work / "silver.done").write_text("done\n")
    return training_manifest(prepared_manifest, labelled_manifest, work / "train.tsv")


def scans_to_label(prepared_manifest: Path, out: Path, label_phantoms: int) -> Path:
    """The prepared rows that get bronze and silver labels: every real scan and the first ``label_phantoms`` phantoms."""
    table = read_manifest(prepared_manifest).table
    phantom = table["dataset"] == PHANTOM_DATASET
    keep = ~phantom | (phantom.cumsum() <= label_phantoms)
    return write_manifest(table[keep].reset_index(drop=True), out)


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
    """The phantom manifest's rows with their paths made relative to ``raw/``."""
    manifest = read_manifest(manifest_path)
    keep = ["subject", "dataset", "scanner", "stage", "age", "sex", "flair", "t1", "gold", "fat_suppressed"]
    rows = []
    for row in manifest.rows():
        record = {column: row.get(column, "") for column in keep}
        for column in ("flair", "t1", "gold"):
            if record[column]:
                record[column] = f"phantoms/{record[column]}"
        rows.append(record)
    return rows


def copy_real_scans(real_data: Path, folder: Path) -> list[dict[str, str]]:
    """Copy the real scans under ``folder`` and return their raw-manifest rows (paths relative to its parent)."""
    lesjak = real_data / "lesjak2018"
    rows: list[dict[str, str]] = []
    for patient in sorted((lesjak / "annotated").iterdir()):
        files = {"flair": "FLAIR.nii.gz", "t1": "T1.nii.gz", "gold": "consensus.nii.gz"}
        rows.append(_real_row(patient, folder / "annotated" / patient.name, files,
                              subject=f"lesjak-{patient.name}", dataset=ANNOTATED_DATASET))
    for study in sorted((lesjak / "unannotated").iterdir()):
        patient, session = study.name.split("-", 1)
        rows.append(_real_row(study, folder / "clinical" / study.name, {"flair": "FLAIR.nii.gz", "t1": "T1.nii.gz"},
                              subject=f"lesjak-{patient}", session=session, dataset="lesjak2018-clinical"))
    other = real_data / "unannotated-other"
    for name in ("niivue", "synthsr-demo"):
        if (other / f"{name}-FLAIR.nii.gz").exists():
            rows.append(_real_row(other, folder / "other" / name, {"flair": f"{name}-FLAIR.nii.gz"},
                                  subject=name, dataset=name))
    return rows


def _real_row(source: Path, target: Path, files: dict[str, str], *, subject: str, dataset: str,
              session: str = "") -> dict[str, str]:
    target.mkdir(parents=True, exist_ok=True)
    row = {"subject": subject, "session": session, "dataset": dataset, "scanner": dataset}
    for column, name in files.items():
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
            row[column] = (target / name).relative_to(target.parents[2]).as_posix()
    return row


def training_manifest(prepared_manifest: Path, labelled_manifest: Path, out: Path) -> Path:
    """Every prepared scan, with the bronze and silver labels of the labelled ones (paths relative to ``out``'s folder).

    The annotated real scans' bronze and silver cells are emptied: their only label in
    training is the expert gold.
    """
    prepared = read_manifest(prepared_manifest)
    labelled = read_manifest(labelled_manifest)
    label_columns = [c for c in labelled.table.columns if c.startswith("bronze_") or c == "silver"]
    labels = {labelled.scan_id(row): {c: row[c] for c in label_columns} for row in labelled.rows()}
    rows = []
    for row in prepared.rows():
        record = rebased_row(row, prepared.root, out.parent)  # every cell naming a file, native_* included
        if row.get("dataset") != ANNOTATED_DATASET:
            record.update(labels.get(prepared.scan_id(row), {}))
        rows.append(record)
    table = pd.DataFrame(rows, columns=list(prepared.table.columns) + label_columns).fillna("")
    write_manifest(table, out)
    log.info("training manifest %s: %d scans (%d with gold, %d with silver)", out, len(table),
             int((table["gold"] != "").sum()), int((table["silver"] != "").sum()))
    return out


def install_model(model_dir: Path, package_dir: Path) -> None:
    """Replace the packaged starter model's files by those of ``model_dir`` (the model card stays)."""
    package_dir.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy2(model_dir / name, package_dir / name)
    shutil.rmtree(package_dir / "weights", ignore_errors=True)
    shutil.copytree(model_dir / "weights", package_dir / "weights")
    size_mb = sum(p.stat().st_size for p in (package_dir / "weights").iterdir()) / 1e6
    log.info("installed %s into %s (weights %.2f MB)", model_dir, package_dir, size_mb)


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
