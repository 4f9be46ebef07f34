"""Hashes of every file the pipeline writes, to prove a refactor left the outputs byte-identical.

On a tiny synthetic cohort (``wmhkit synth``: 4 subjects at 2 mm with their true brain
masks, seed 0) the script runs ``prepare → bronze → silver → train → predict`` through
the CLI of the interpreter running it (``python -m wmhkit``, so ``PYTHONPATH`` chooses
the code under test; every thread pool on one thread: :data:`THREAD_ENVIRONMENT`), then
writes one JSON: output file (relative to ``--work``) → sha256.
``train`` uses a tiny CPU config written here: VGG16 U-Net at width 1/16, the axial
plane only, one silver-label stage of one epoch of 32 slices, ``device: cpu``.

Run it on the code before and after a change, then compare the two JSONs
(``--compare``): the pipeline must write the same files with the same hashes.

What is normalised before hashing (everything else is hashed as written):

* JSON files: keys naming a time, a duration, a host or a process
  (:data:`VOLATILE_KEYS`: ``started``, ``seconds``, ``host`` ...) are dropped, and any
  text holding the work folder's absolute path has it replaced by ``<WORK>``; the
  rest is hashed in a canonical form (sorted keys). In this pipeline that drops the
  per-method ``seconds`` of bronze's completion records and rewrites the absolute
  ``manifest`` path in ``train/run.json``;
* text files (TSV, CSV, YAML, crash files): the work folder's absolute path is
  replaced by ``<WORK>``;
* left out entirely (:data:`SKIPPED`): log files (one timestamp per line), TensorBoard
  event files and output locks.

Usage::

    python benchmarks/check_pipeline_hashes.py --out hashes.json --work /tmp/hash_work
    python benchmarks/check_pipeline_hashes.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib

log = logging.getLogger("check_pipeline_hashes")

#: JSON keys whose values are times, durations, hosts or processes (dropped before hashing).
VOLATILE_KEYS = frozenset({
    "created", "started", "finished", "timestamp", "time", "date", "seconds", "duration", "duration_s",
    "elapsed", "elapsed_s", "wall_s", "host", "hostname", "pid", "epoch_seconds", "train_seconds",
})
#: Files left out of the hashes (glob patterns on the path relative to the work folder).
SKIPPED: tuple[str, ...] = ("*.log", "*/events.out.tfevents.*", "*/.wmhkit.lock")
#: The training config (``pad_shape`` is filled in from the prepared scans).
TRAIN_CONFIG: dict[str, Any] = {
    "name": "hash-check-cpu", "seed": 0, "device": "cpu", "tensorboard": False,
    "network": {"width": 0.0625, "decoder_batch_norm": True}, "init": "random", "planes": ["axial"],
    "data": {"patch_size": 32, "min_lesion_voxels": 1},
    "stages": [{"name": "silver", "labels": "silver", "scans": "all", "epochs": 1, "batch_size": 16,
                "slices_per_epoch": 32, "val_slices": 16, "learning_rate": 1.0e-3, "val_fraction": 0.25}],
}
PATCH = 32
#: One thread per pool: with ITK's default (all cores) the ``lpa`` probability maps of
#: bronze differ between two runs of the same code in their last bits (up to 6e-8).
THREAD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}


def run_pipeline(work: Path, subjects: int, resolution_mm: float) -> None:
    """Run synth → prepare → bronze → silver → train → predict into ``work`` (must be new or empty)."""
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        raise SystemExit(f"{work} is not empty; give a new --work folder")
    _wmhkit("synth", "--out", "synth", "--subjects", str(subjects), "--resolution-mm", str(resolution_mm),
            "--seed", "0", "--with-brain-mask", cwd=work)
    _wmhkit("prepare", "synth/manifest.tsv", "--out", "prepared", cwd=work)
    _wmhkit("bronze", "prepared/manifest.tsv", "--out", "bronze", cwd=work)
    _wmhkit("silver", "bronze/manifest.tsv", "--out", "silver", cwd=work)
    config = json.loads(json.dumps(TRAIN_CONFIG))
    config["data"]["pad_shape"] = _pad_shape(work / "prepared")
    (work / "train.yaml").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    _wmhkit("train", "train.yaml", "--out", "train", "--manifest", "silver/manifest.tsv", "--no-progress", cwd=work)
    _wmhkit("predict", "synth/manifest.tsv", "--model", "train/model", "--out", "predict", "--device", "cpu", cwd=work)


def _wmhkit(*args: str, cwd: Path) -> None:
    env = dict(os.environ, **THREAD_ENVIRONMENT)
    log.info("wmhkit %s", " ".join(args))
    done = subprocess.run([sys.executable, "-m", "wmhkit", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    (cwd / f"{args[0]}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"wmhkit {args[0]} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def _pad_shape(prepared: Path) -> list[int]:
    """The largest prepared FLAIR's shape, rounded up to whole patches, as the training pad shape."""
    shapes = [nib.load(str(path)).shape[:3] for path in sorted(prepared.glob("*/flair.nii.gz"))]
    return [max(PATCH, -(-max(shape[axis] for shape in shapes) // PATCH) * PATCH) for axis in range(3)]


def output_hashes(work: Path) -> dict[str, str]:
    """sha256 of every file under ``work`` (relative posix path → hex digest), normalised as the module says."""
    hashes = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        relative = path.relative_to(work).as_posix()
        if any(fnmatch.fnmatch(relative, pattern) for pattern in SKIPPED):
            continue
        hashes[relative] = hashlib.sha256(_normalised_bytes(path, work)).hexdigest()
    return hashes


def _normalised_bytes(path: Path, work: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".json":
        record = _without_volatile(json.loads(data), str(work.resolve()))
        return json.dumps(record, sort_keys=True).encode("utf-8")
    if path.suffix in (".tsv", ".csv", ".yaml", ".txt", ".md"):
        return data.replace(str(work.resolve()).encode("utf-8"), b"<WORK>")
    return data


def _without_volatile(value: Any, work: str) -> Any:
    if isinstance(value, dict):
        return {key: _without_volatile(item, work) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_without_volatile(item, work) for item in value]
    if isinstance(value, str):
        return value.replace(work, "<WORK>")
    return value


def compare(before: Path, after: Path) -> int:
    """Print the files whose hashes differ, or that only one run wrote; 0 when none."""
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    old, new = old.get("files", old), new.get("files", new)
    differences = [f"only before: {p}" for p in sorted(set(old) - set(new))]
    differences += [f"only after:  {p}" for p in sorted(set(new) - set(old))]
    differences += [f"differs:     {p}" for p in sorted(set(old) & set(new)) if old[p] != new[p]]
    for line in differences:
        print(line)
    print(f"{len(old)} / {len(new)} files, {len(differences)} difference(s)")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file to write the hashes to")
    parser.add_argument("--work", type=Path, help="new folder for the cohort and every stage's outputs")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--resolution-mm", type=float, default=2.0)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.compare:
        return compare(*args.compare)
    if args.out is None or args.work is None:
        parser.error("--out and --work are required (or --compare BEFORE AFTER)")
    run_pipeline(args.work, args.subjects, args.resolution_mm)
    report = {"skipped": list(SKIPPED), "volatile_json_keys": sorted(VOLATILE_KEYS),
              "files": output_hashes(args.work)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(report["files"], indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
