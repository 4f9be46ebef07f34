"""Time and peak memory of ``prepare`` (N4 + computed brain mask included) per scan.

Each scan runs in its own child process so that its peak RSS is its own
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in the child). Prints a Markdown
table of wall-clock and CPU seconds (CPU time is what to compare on a shared,
loaded machine) and peak RSS; budget per 1 mm scan: <= 30 s and <= 3 GiB.

Usage::

    python benchmarks/bench_prepare.py --real-data ../shared/data/real --phantoms 3 --out /tmp/bench_prepare
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from wmhkit.io.nifti import load_image
from wmhkit.preprocess.geometry import to_native
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_scan

BUDGET_SECONDS = 30.0
BUDGET_RSS_GIB = 3.0


def run_one(flair: Path, t1: Path | None, out: Path) -> dict[str, object]:
    """Prepare one scan in this process and return its timing, peak RSS and round-trip check."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = prepare_scan(flair, out, t1=t1, options=PrepareOptions(qc_png=False))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    native = load_image(flair)
    back = to_native(load_image(result.outputs["brain_mask"]), result.geometry)
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "shape": list(native.shape),
        "spacing_mm": [round(s, 2) for s in native.spacing_mm],
        "brain_ml": round(float(back.array.sum()) * native.voxel_volume_ml, 0),
        "round_trip_exact": back.shape == native.shape and bool(np.array_equal(back.affine, native.affine)),
    }


def child(flair: Path, t1: Path | None, out: Path) -> dict[str, object]:
    """Run :func:`run_one` in a fresh interpreter; a failure is reported, not raised."""
    command = [sys.executable, __file__, "--one", str(flair), "--out", str(out)]
    if t1 is not None:
        command += ["--t1", str(t1)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def real_scans(root: Path) -> list[tuple[str, Path, Path | None]]:
    """``(name, flair, t1 or None)`` for every FLAIR under ``root``."""
    scans = []
    for flair in sorted(root.rglob("*FLAIR*.nii.gz")):
        t1 = flair.with_name("T1.nii.gz") if flair.name == "FLAIR.nii.gz" else None
        name = str(flair.relative_to(root).parent / flair.name.replace(".nii.gz", ""))
        scans.append((name, flair, t1 if t1 is not None and t1.is_file() else None))
    return scans


def phantom_scans(out: Path, count: int, seed: int) -> list[tuple[str, Path, Path | None]]:
    """Synthesise ``count`` phantoms and return them as ``(name, flair, t1)``."""
    from wmhkit.io.manifest import read_manifest
    from wmhkit.synth import synthesize_cohort

    manifest = read_manifest(synthesize_cohort(out, count, seed=seed))
    return [(f"phantom {row['subject']} ({row['scanner']}, {row.get('acquisition', '')})",
             manifest.path(row, "flair"), manifest.path(row, "t1")) for row in manifest.rows()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-data", type=Path, help="Folder of real scans (e.g. ../shared/data/real).")
    parser.add_argument("--phantoms", type=int, default=0, help="Number of phantom scans to synthesise.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--t1", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.t1, args.out)))
        return 0
    scans = []
    if args.real_data is not None:
        scans += real_scans(args.real_data)
    if args.phantoms:
        scans += phantom_scans(args.out / "phantoms", args.phantoms, args.seed)
    print("| scan | shape | spacing (mm) | T1 | wall s | CPU s | peak RSS (GiB) | brain (mL) | round trip |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    worst = 0.0
    for index, (name, flair, t1) in enumerate(scans):
        row = child(flair, t1, args.out / "prepared" / f"scan{index:02d}")
        if "error" in row:
            print(f"| {name} | | | {'yes' if t1 else 'no'} | failed: {row['error']} | | | | |", flush=True)
            continue
        worst = max(worst, float(row["seconds"]))
        print(f"| {name} | {tuple(row['shape'])} | {tuple(row['spacing_mm'])} | {'yes' if t1 else 'no'} | "
              f"{row['seconds']} | {row['cpu_seconds']} | {row['peak_rss_gib']} | {row['brain_ml']:.0f} | "
              f"{'exact' if row['round_trip_exact'] else 'MISMATCH'} |", flush=True)
    print(f"\nslowest scan {worst:.1f} s (budget {BUDGET_SECONDS:.0f} s per 1 mm scan, {BUDGET_RSS_GIB:.0f} GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
