"""Reliability campaigns at a chosen budget: SIGKILLs, injected faults, hostile inputs — was anything lost?

Runs the same cases as ``tests/reliability`` (and the NIfTI fuzzing of
``tests/io/test_nifti_properties.py``), with seeded randomness, and prints a
markdown table (cases per category, kills survived, faults injected, hostile inputs
tried, files lost) and writes it as JSON to ``--out``.

Example::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_reliability.py \\
        --kill-cases 4 --kills-per-case 2 --hostile 300 --out bench_reliability.json
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from unittest import mock

import nibabel as nib
import numpy as np
import pandas as pd
import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load(TESTS / "reliability" / "harness.py", "wmhkit_reliability_harness")
cohorts = _load(TESTS / "reliability" / "cohorts.py", "wmhkit_reliability_cohorts")
properties = _load(TESTS / "reliability" / "test_properties.py", "wmhkit_reliability_properties")
nifti_properties = _load(TESTS / "io" / "test_nifti_properties.py", "wmhkit_nifti_properties")

from wmhkit.cli import main  # noqa: E402 - after the helpers, which import it too
import wmhkit.io.atomic  # noqa: E402


def kill_campaigns(work: Path, cases: int, kills: int, seed: int) -> list[dict]:
    """Kill train, predict and silver ``cases`` times each (``kills`` SIGKILLs per case)."""
    config, train_manifest = cohorts.write_train_inputs(work / "train_inputs")
    raw = cohorts.write_raw_cohort(work / "raw", 3)
    bronzed = cohorts.write_bronzed_cohort(work / "bronzed", 8)
    model = cohorts.write_random_model(work / "model")
    targets = [harness.train_target(config, train_manifest), harness.predict_target(raw, model),
               harness.silver_target(bronzed)]
    rows = []
    for target in targets:
        reference, seconds, reference_out = harness.reference_run(target, work / target.name / "reference")
        results = []
        for case in range(cases):
            folder = work / target.name / f"case{case}"
            result = harness.kill_case(target, folder, reference, seconds, seed + case, kills)
            if target.name == "train":
                for plane in sorted((reference_out / "model" / "weights").glob("*.pt")):
                    if not harness.weights_identical(plane, folder / "run/model/weights" / plane.name):
                        result.differences.append(f"model/weights/{plane.name} (values)")
            results.append(result)
            logging.info("%s case %d: %s", target.name, case, result)
        rows.append({
            "category": f"SIGKILL {target.name}", "cases": cases,
            "kills": sum(r.kills_landed for r in results),
            "kills_mid_write": sum(r.kills_mid_write for r in results),
            "kills_too_late": sum(r.kills_missed for r in results),
            "files_checked": sum(r.files_checked for r in results),
            "earlier_versions": sum(r.earlier_versions for r in results),
            "survived": sum(r.survived for r in results),
            "lost_or_broken": sum(len(r.broken) for r in results),
            "reruns_differing": sum(bool(r.differences) for r in results),
            "hidden_leftovers": sum(len(r.leftovers) for r in results),
            "findings": sorted({f for r in results for f in (*r.broken, *r.differences)})[:10],
            "reference_s": round(seconds, 2),
        })
    return rows


@contextlib.contextmanager
def _fault(kind: str, victim: str) -> Iterator[None]:
    if kind == "ENOSPC":
        real = wmhkit.io.atomic._fsync_file

        def fsync(path: Path) -> None:
            if victim in str(path) and path.parent.name != "crashes":
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path)

        with mock.patch.object(wmhkit.io.atomic, "_fsync_file", fsync):
            yield
    else:
        real_load = nib.load

        def load(path, *args, **kwargs):
            if victim in str(path):
                raise MemoryError(f"cannot allocate {path}")
            return real_load(path, *args, **kwargs)

        with mock.patch.object(nib, "load", load):
            yield


def fault_campaigns(work: Path, rounds: int, seed: int) -> list[dict]:
    """ENOSPC / MemoryError on one scan of predict and silver; the others must finish."""
    rng = np.random.default_rng(seed)
    raw = cohorts.write_raw_cohort(work / "fault_raw", 3)
    bronzed = cohorts.write_bronzed_cohort(work / "fault_bronzed", 4)
    model = cohorts.write_random_model(work / "fault_model")
    rows = []
    for kind in ("ENOSPC", "MemoryError"):
        injected = isolated = 0
        findings = []
        for index in range(rounds):
            for step in ("predict", "silver"):
                n_scans = 3 if step == "predict" else 4
                victim = f"sub-{int(rng.integers(n_scans)):02d}"
                folder = work / f"fault_{kind}_{step}_{index}"
                if step == "predict":
                    out = folder / "out"
                    arguments = ["predict", str(raw), "--model", str(model), "--out", str(out)]
                else:
                    out = folder / "cohort"
                    import shutil

                    shutil.copytree(bronzed.parent, out)
                    arguments = ["silver", str(out / "manifest.tsv"), "--out", str(out)]
                with _fault(kind, victim):
                    code = main(arguments)
                injected += 1
                failed = pd.read_csv(out / "failures.tsv", sep="\t", dtype=str, keep_default_na=False)["subject"]
                temporaries = harness.temporary_files(out)
                broken = []
                for path in harness.final_files(out):
                    try:
                        harness.check_complete(path)
                    except Exception as error:  # noqa: BLE001 - a finding
                        broken.append(f"{path.name}: {error}")
                ok = code == 1 and failed.tolist() == [victim] and not temporaries and not broken
                isolated += ok
                if not ok:
                    findings.append(f"{step} {victim}: exit {code}, failed {failed.tolist()}, "
                                    f"{len(temporaries)} temporaries, broken {broken[:2]}")
        rows.append({"category": f"{kind} on one scan", "cases": injected, "faults_injected": injected,
                     "survived": isolated, "lost_or_broken": injected - isolated, "findings": findings[:10]})
    return rows


def _hostile(name: str, tries: int, case: Callable[[np.random.Generator, Path], None], work: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    leaks = []
    folder = work / f"hostile_{name.split()[0]}"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for _ in range(tries):
        try:
            case(rng, folder)
        except BaseException as error:  # noqa: BLE001 - pytest.fail raises BaseException subclasses
            leaks.append(f"{type(error).__name__}: {str(error)[:160]}")
    return {"category": name, "cases": tries, "hostile_inputs": tries, "survived": tries - len(leaks),
            "lost_or_broken": len(leaks), "findings": leaks[:10], "seconds": round(time.perf_counter() - start, 1)}


def hostile_campaigns(work: Path, tries: int, seed: int, checkpoint: bytes) -> list[dict]:
    dtypes = sorted(nifti_properties.VALID)

    def nifti_bytes(rng, folder):
        edits = [(int(rng.integers(0, 2**20)), int(rng.integers(0, 256))) for _ in range(rng.integers(0, 12))]
        nifti_properties._check_random_bytes(folder, str(rng.choice(dtypes)), str(rng.choice([".nii", ".nii.gz"])),
                                             bool(rng.integers(2)), edits, int(rng.choice([0, rng.integers(0, 700)])))

    def nifti_header(rng, folder):
        fields = {"dim": [int(rng.integers(-1, 8)), *rng.integers(-3, 40, 7).tolist()],
                  "datatype": int(rng.choice([2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 2304, 7, -1])),
                  "scl_slope": float(rng.choice([0.0, 1.0, -2.5, np.nan, np.inf, 1e38])),
                  "pixdim": rng.choice([0.0, 1.0, -1.0, np.nan, 1e30], 8).tolist(),
                  "sform_code": int(rng.integers(-2, 6)), "qform_code": int(rng.integers(-2, 6)),
                  "vox_offset": float(rng.choice([0.0, 348.0, 352.0, 353.5, 2.0**31]))}
        chosen = {k: v for k, v in fields.items() if rng.random() < 0.5}
        nifti_properties._check_random_header(folder, str(rng.choice(dtypes)), str(rng.choice([".nii", ".nii.gz"])),
                                              chosen)

    def bomb(rng, folder):
        properties._check_bomb(folder, rng.integers(1, 4097, 3).tolist(), str(rng.choice(["uint8", "int16", "float32"])),
                               bool(rng.integers(2)))

    def checkpoint_mutation(rng, folder):
        edits = [(int(rng.integers(0, 2**16)), int(rng.integers(0, 256))) for _ in range(rng.integers(1, 9))]
        properties._check_checkpoint(folder, checkpoint, edits, int(rng.choice([0, rng.integers(1, 4000)])))

    alphabet = list("ab01-_./\\ \x00\n\r\tÅ~:") + ["..", "/etc", "C:"]

    def manifest_cells(rng, folder):
        subject = "".join(rng.choice(alphabet, rng.integers(0, 10)))
        flair = "".join(rng.choice(alphabet, rng.integers(0, 14)))
        properties._check_manifest_cells(folder, subject, flair)

    cases = [("NIfTI byte mutations", nifti_bytes), ("NIfTI header fields", nifti_header),
             ("header/gzip bombs (memory-bounded)", bomb), ("checkpoint byte mutations", checkpoint_mutation),
             ("hostile manifest cells", manifest_cells)]
    return [_hostile(name, tries, case, work, seed + index) for index, (name, case) in enumerate(cases)]


def _checkpoint_bytes(folder: Path) -> bytes:
    from wmhkit.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    path = save_checkpoint(folder / "last.pt", model=model, optimizer=torch.optim.Adam(model.parameters()), epoch=2,
                           best_metric=0.5, config_digest="c" * 64)
    return path.read_bytes()


COLUMNS = ["category", "cases", "kills", "kills_mid_write", "faults_injected", "hostile_inputs", "survived",
           "lost_or_broken", "reruns_differing", "hidden_leftovers"]


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |")
    total = {c: sum(r.get(c, 0) for r in rows) for c in COLUMNS[1:]}
    lines.append("| **total** | " + " | ".join(str(total[c]) for c in COLUMNS[1:]) + " |")
    return "\n".join(lines)


def main_cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-cases", type=int, default=3, help="Kill cases per command (train, predict, silver).")
    parser.add_argument("--kills-per-case", type=int, default=2, help="SIGKILLs per case before the final rerun.")
    parser.add_argument("--fault-rounds", type=int, default=2, help="ENOSPC and MemoryError rounds per stage.")
    parser.add_argument("--hostile", type=int, default=200, help="Hostile inputs per hostile-input category.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_reliability.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # as harness.CHILD_ENVIRONMENT does for the children
    nifti_properties.event = lambda *_, **__: None  # hypothesis.event works only inside a hypothesis test
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wmhkit-reliability-") as scratch:
        work = Path(scratch)
        rows = kill_campaigns(work, args.kill_cases, args.kills_per_case, args.seed)
        rows += fault_campaigns(work, args.fault_rounds, args.seed)
        rows += hostile_campaigns(work, args.hostile, args.seed, _checkpoint_bytes(work))
    result = {"arguments": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
              "lost_or_broken": sum(r.get("lost_or_broken", 0) for r in rows),
              "seconds": round(time.perf_counter() - start, 1)}
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(to_markdown(rows))
    for row in rows:
        for finding in row.get("findings", []):
            print(f"- {row['category']}: {finding}")
    print(f"\n{result['lost_or_broken']} file(s)/case(s) lost or broken; {result['seconds']} s; wrote {args.out}")
    return 0 if result["lost_or_broken"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main_cli())
