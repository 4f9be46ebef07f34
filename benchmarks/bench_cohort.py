"""Cohort throughput of ``prepare`` and ``predict``: in-process vs Dask with 1 and 2 workers, and a rerun.

For each stage (``predict`` only with ``--model``) the same cohort is run

* ``in-process``: ``workers=1``, no Dask, default threads (the default path: ITK
  uses every core);
* ``in-process-1t``: ``workers=1``, no Dask, ``threads_per_worker=1``;
* ``dask-1`` and ``dask-2``: a local Dask cluster of 1 or 2 worker processes with
  one thread each (:func:`wmhkit.cohort.runner.start_local_cluster`; the time
  includes starting the cluster and the workers' imports and model loads);
* ``rerun``: ``in-process`` again on its own finished output folder (every scan skipped).

Torch inference runs one thread per scan in every mode; the child interpreters
start with one OpenMP/BLAS thread. Each run is a fresh child interpreter, so peak
memory is its own: the child's peak RSS for in-process runs, each Dask worker's
(``getrusage`` in the worker) otherwise. Reported: seconds, scans/hour, speed-up
of 2 workers over 1 at one thread each (``in-process-1t`` / ``dask-2``) and over
the default ``in-process`` run, Dask overhead with one worker (``dask-1`` vs
``in-process-1t``), rerun time as % of the first run, peak RSS per worker, and
whether the outputs (``manifest.tsv`` / ``volumes.csv`` and every NIfTI written)
are byte-identical across the runs. Targets (issue 7): speed-up >= 1.7, overhead
<= 10 %, rerun <= 5 %. Timings on a shared machine are inflated: compare on a quiet one.

Usage::

    python benchmarks/bench_cohort.py --scans 40 --resolution-mm 1 --model RUN/model \\
        --work /tmp/bench_cohort --out /tmp/bench_cohort/results.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

MODES: tuple[str, ...] = ("in-process", "in-process-1t", "dask-1", "dask-2", "rerun")
#: Threads per worker (ITK, OpenMP/BLAS) of the ``in-process-1t`` and ``dask-N`` runs.
THREADS_PER_WORKER = 1


def _peak_rss_gib() -> float:
    """Peak RSS of the calling process (GiB); Linux reports ``ru_maxrss`` in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_stage(stage: str, mode: str, manifest: Path, out: Path, model: Path | None, memory_limit: str) -> dict:
    """Run one stage once in this process (``--one`` mode); return seconds and peak memory per worker."""
    from wmhkit.cohort.runner import start_local_cluster

    def call(**compute: object) -> None:
        if stage == "prepare":
            from wmhkit.preprocess.pipeline import prepare_manifest

            prepare_manifest(manifest, out, **compute)
        else:
            from wmhkit.infer.predict import predict_scans

            predict_scans(model, [manifest], out, **compute)

    start = time.perf_counter()
    if mode in ("in-process", "in-process-1t", "rerun"):
        call(**({"threads_per_worker": THREADS_PER_WORKER} if mode == "in-process-1t" else {}))
        return {"seconds": time.perf_counter() - start, "peak_rss_gib": [round(_peak_rss_gib(), 3)]}
    from distributed import Client

    workers = int(mode.split("-")[1])
    with start_local_cluster(workers, memory_limit, threads_per_worker=THREADS_PER_WORKER) as cluster, \
            Client(cluster) as client:
        call(scheduler=cluster.scheduler_address, threads_per_worker=THREADS_PER_WORKER)
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_rss_gib)
    return {"seconds": seconds, "peak_rss_gib": [round(v, 3) for v in peaks.values()]}


def child(stage: str, mode: str, manifest: Path, out: Path, model: Path | None, memory_limit: str) -> dict:
    """:func:`run_stage` in a fresh interpreter (one thread per BLAS/OpenMP pool)."""
    command = [sys.executable, __file__, "--one", stage, mode, "--cohort", str(manifest), "--run-out", str(out),
               "--memory-limit", memory_limit]
    if model is not None:
        command += ["--model", str(model)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def outputs_digest(out: Path, table: str) -> str:
    """sha256 over ``out/table`` and every NIfTI file under ``out`` (relative names and bytes, sorted)."""
    digest = hashlib.sha256()
    files = [out / table] + sorted(out.rglob("*.nii.gz"))
    for path in files:
        digest.update(path.relative_to(out).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"missing")
    return digest.hexdigest()


def cohort_manifest(args: argparse.Namespace) -> Path:
    """The given ``--cohort`` manifest, or a phantom cohort synthesized into ``WORK/cohort``."""
    if args.cohort is not None:
        return args.cohort
    from wmhkit.synth.cohort import synthesize_cohort

    target = args.work / "cohort" / "manifest.tsv"
    if not target.is_file():
        synthesize_cohort(args.work / "cohort", args.scans, seed=args.seed, resolution_mm=args.resolution_mm)
    return target


def measure(args: argparse.Namespace) -> dict:
    manifest = cohort_manifest(args)
    n_scans = sum(1 for _ in manifest.open()) - 1
    stages = ["prepare"] + (["predict"] if args.model is not None else [])
    resolution = "given cohort" if args.cohort is not None else f"{args.resolution_mm} mm"
    results: dict = {"scans": n_scans, "resolution": resolution, "memory_limit": args.memory_limit,
                     "cpu_count": os.cpu_count(), "stages": {}}
    for stage in stages:
        runs, digests = {}, {}
        for mode in MODES:
            out = args.work / f"{stage}-{'in-process' if mode == 'rerun' else mode}"
            if mode != "rerun" and out.exists():
                raise SystemExit(f"{out} exists: use an empty --work folder (its results would be reused)")
            runs[mode] = child(stage, mode, manifest, out, args.model, args.memory_limit)
            digests[mode] = outputs_digest(out, "manifest.tsv" if stage == "prepare" else "volumes.csv")
            print(f"{stage} {mode}: {runs[mode]['seconds']:.1f} s", file=sys.stderr)
        seconds = {mode: r["seconds"] for mode, r in runs.items()}
        results["stages"][stage] = {
            "runs": {mode: {"seconds": round(r["seconds"], 2),
                            "scans_per_hour": round(n_scans / r["seconds"] * 3600, 1),
                            "peak_rss_gib_per_worker": r["peak_rss_gib"]} for mode, r in runs.items()},
            "speedup_2_workers_vs_1_worker": round(seconds["in-process-1t"] / seconds["dask-2"], 2),
            "speedup_2_workers_vs_in_process": round(seconds["in-process"] / seconds["dask-2"], 2),
            "dask_overhead_pct": round((seconds["dask-1"] / seconds["in-process-1t"] - 1) * 100, 1),
            "rerun_pct_of_first": round(seconds["rerun"] / seconds["in-process"] * 100, 2),
            "outputs_identical": len(set(digests.values())) == 1,
            "modes_with_other_outputs": sorted(m for m, d in digests.items() if d != digests["in-process-1t"]),
        }
    return results


def markdown(results: dict) -> str:
    lines = [f"Cohort of {results['scans']} scans ({results['resolution']}), {results['cpu_count']} CPUs, "
             f"memory limit {results['memory_limit']} per worker; in-process-1t and dask-N at "
             f"{THREADS_PER_WORKER} thread per worker.", "",
             "| stage | run | seconds | scans/hour | peak RSS per worker (GiB) |", "|---|---|---|---|---|"]
    for stage, summary in results["stages"].items():
        for mode, run in summary["runs"].items():
            peaks = ", ".join(f"{p:.2f}" for p in run["peak_rss_gib_per_worker"])
            lines.append(f"| {stage} | {mode} | {run['seconds']:.1f} | {run['scans_per_hour']:.0f} | {peaks} |")
    lines += ["", "| stage | speed-up 2 vs 1 worker (1 thread each) | speed-up 2 workers vs default in-process "
              "| Dask overhead (dask-1 vs in-process-1t) | rerun % of first | outputs identical |",
              "|---|---|---|---|---|---|"]
    for stage, s in results["stages"].items():
        identical = "yes" if s["outputs_identical"] else f"no (differ: {', '.join(s['modes_with_other_outputs'])})"
        lines.append(f"| {stage} | {s['speedup_2_workers_vs_1_worker']:.2f}x "
                     f"| {s['speedup_2_workers_vs_in_process']:.2f}x | {s['dask_overhead_pct']:+.1f} % "
                     f"| {s['rerun_pct_of_first']:.2f} % | {identical} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=40, help="Phantom scans to synthesize (without --cohort).")
    parser.add_argument("--resolution-mm", type=float, default=1.0, help="Phantom voxel size (mm).")
    parser.add_argument("--seed", type=int, default=0, help="Phantom cohort seed.")
    parser.add_argument("--cohort", type=Path, default=None, help="An existing raw manifest.tsv instead of phantoms.")
    parser.add_argument("--model", type=Path, default=None, help="Model folder; predict is timed only with one.")
    parser.add_argument("--memory-limit", default="4GiB", help="Memory limit per Dask worker.")
    parser.add_argument("--work", type=Path, default=Path("bench_cohort_work"), help="Empty work folder.")
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    parser.add_argument("--one", nargs=2, metavar=("STAGE", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--run-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        stage, mode = args.one
        print(json.dumps(run_stage(stage, mode, args.cohort, args.run_out, args.model, args.memory_limit)))
        return 0
    results = measure(args)
    table = markdown(results)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
