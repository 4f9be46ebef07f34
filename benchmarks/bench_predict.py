"""Benchmark ``wmhkit predict`` per 1 mm scan: seconds and peak memory per network width.

Usage::

    python benchmarks/bench_predict.py [--flair FLAIR.nii.gz --brain-mask MASK.nii.gz] \
        [--widths 1.0 0.25 0.0625] [--model TRAINED_MODEL] [--batch-size 8] [--threads 2] \
        [--device cpu] [--out bench-out/predict]

Without ``--flair`` a 1 mm phantom (``wmhkit.synth``, seed 0, true brain mask) is
used. Each width runs in its own process (so peak RSS is that width's) with a
randomly initialised 2.5D VGG16 U-Net model folder (seed 0): speed does not
depend on the weights; ``--model`` runs a trained model folder instead (one
"width"), which makes the accuracy columns meaningful.

Per width, the inference of the three planes plus fusion is timed (wall and CPU
seconds, since on shared cores wall time measures the neighbours) for each
variant, back to back in one process: ``old`` (float32, contiguous memory
format: the path before this benchmark's variants), and
:func:`wmhkit.models.predictors.segment_2_5d` (channels-last networks and inputs)
with ``precision`` ``float32`` and ``bfloat16``. Each variant's
fused probability is compared with ``old`` (max abs difference, Dice of the
masks). Then the whole default ``predict_scans`` run (prepare with the model's
settings, inference, volumes, native mapping, writing) is timed, and the
process's peak RSS (GiB) recorded. Prints one Markdown table per width set and
writes ``results.json``/``results.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wmhkit.infer.predict import predict_scans
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.models.folder import load_model, write_model_folder
from wmhkit.models.predictors import segment_2_5d
from wmhkit.nn.plane_fusion import fuse_probabilities
from wmhkit.nn.planes import predict_plane
from wmhkit.nn.vgg_unet import VGG16UNet
from wmhkit.preprocess.pipeline import prepare_scan

PLANES = ("axial", "sagittal", "coronal")
#: Precisions of the timed segment_2_5d variants.
PRECISIONS = ("float32", "bfloat16")


def write_model(folder: Path, width: float) -> Path:
    """A 2.5D model folder of random-init VGG16 U-Nets of ``width`` (default prepare settings)."""
    torch.manual_seed(0)
    networks = {plane: VGG16UNet(width=width) for plane in PLANES}
    record = {"kind": "segmentation-2.5d", "network": networks["axial"].network_spec(), "planes": list(PLANES),
              "fusion": "mean", "threshold": 0.5, "prepare": {"qc_png": False}, "trained_on": "benchmark (random)"}
    write_model_folder(folder, record, {p: n.state_dict() for p, n in networks.items()}, {"seed": 0})
    return folder


def phantom_scan(out: Path) -> tuple[Path, Path]:
    """A 1 mm phantom FLAIR and its true brain mask."""
    from wmhkit.synth.cohort import synthesize_cohort

    manifest = pd.read_csv(synthesize_cohort(out / "phantom", 1, seed=0, resolution_mm=1.0), sep="\t", dtype=str)
    return out / "phantom" / manifest.loc[0, "flair"], out / "phantom" / manifest.loc[0, "true_brain_mask"]


def old_path(model, prepared: dict, batch_size: int) -> np.ndarray:
    """Fused probability as computed before channels-last and bfloat16: float32, networks in
    contiguous memory format (copies, so the model is untouched)."""
    channels = prepared["flair"].array[None].astype(np.float32)
    return fuse_probabilities([
        predict_plane(copy.deepcopy(model.networks[plane]).to(memory_format=torch.contiguous_format), channels,
                      prepared["brain_mask"].array, plane, size_multiple=model.size_multiple,
                      batch_size=batch_size, device=model.device, precision="float32")
        for plane in model.spec.planes
    ], "mean")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def run_width(width: float, flair: Path, brain_mask: Path, out: Path, batch_size: int, device: str,
              model_dir: Path | None) -> list[dict]:
    """Measure one width (or the trained ``model_dir``) in this process: one row per variant."""
    trained = model_dir is not None
    if model_dir is None:
        model_dir = write_model(out / f"model-w{width:g}", width)
    prepared_scan = prepare_scan(flair, out / f"prepared-w{width:g}", brain_mask=brain_mask,
                                 options=load_model(model_dir).spec.prepare)
    prepared = {"flair": load_image(prepared_scan.outputs["flair"]),
                "brain_mask": load_mask(prepared_scan.outputs["brain_mask"])}
    model = load_model(model_dir, device=device)
    old_path(model, prepared, batch_size)  # warm-up: PyTorch's one-off set-up is not charged to the old path
    timed = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    reference = old_path(model, prepared, batch_size)
    timed["old"] = (time.perf_counter() - start, time.process_time() - cpu_start, reference)
    for precision in PRECISIONS:
        start, cpu_start = time.perf_counter(), time.process_time()
        result = segment_2_5d(model, prepared, fusion="mean", threshold=0.5, batch_size=batch_size,
                              precision=precision)
        timed[f"channels-last {precision}"] = (time.perf_counter() - start, time.process_time() - cpu_start,
                                               result.wmh_prob.array)
    data = out / f"data-w{width:g}"
    data.mkdir(parents=True, exist_ok=True)
    manifest = data / "manifest.tsv"
    (data / "flair.nii.gz").write_bytes(flair.read_bytes())
    (data / "brain.nii.gz").write_bytes(brain_mask.read_bytes())
    manifest.write_text("subject\tflair\tbrain_mask\nscan\tflair.nii.gz\tbrain.nii.gz\n")
    start = time.perf_counter()
    predict_scans(model_dir, [manifest], out / f"predict-w{width:g}", device=device, batch_size=batch_size)
    total_s = time.perf_counter() - start
    common = {"width": model.spec.network.get("width", width), "model": str(model_dir) if trained else "random",
              "box_shape": "x".join(map(str, prepared["flair"].shape)), "predict_total_s": round(total_s, 1),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
              "threads": torch.get_num_threads(), "device": device, "batch_size": batch_size}
    old_wall, old_cpu = timed["old"][:2]
    rows = []
    for name, (wall, cpu, wmh_prob) in timed.items():
        rows.append({**common, "variant": name, "inference_s": round(wall, 2), "inference_cpu_s": round(cpu, 2),
                     "speedup_wall": round(old_wall / wall, 2), "speedup_cpu": round(old_cpu / cpu, 2),
                     "prob_max_abs_diff": float(np.abs(wmh_prob - reference).max()),
                     "mask_dice_vs_old": round(dice(wmh_prob >= 0.5, reference >= 0.5), 5),
                     "mask_voxels": int((wmh_prob >= 0.5).sum())})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flair", type=Path)
    parser.add_argument("--brain-mask", type=Path)
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25, 0.0625])
    parser.add_argument("--model", type=Path, default=None, help="trained model folder (instead of random weights)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench-out/predict"))
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.single:
        print(json.dumps(run_width(args.widths[0], args.flair, args.brain_mask, args.out, args.batch_size,
                                   args.device, args.model)))
        return 0
    flair, brain_mask = (args.flair, args.brain_mask) if args.flair else phantom_scan(args.out)
    rows = []
    for width in args.widths if args.model is None else args.widths[:1]:
        command = [sys.executable, __file__, "--single", "--widths", str(width), "--flair", str(flair),
                   "--brain-mask", str(brain_mask), "--batch-size", str(args.batch_size), "--device", args.device,
                   "--out", str(args.out)]
        command += ["--model", str(args.model)] if args.model is not None else []
        command += ["--threads", str(args.threads)] if args.threads is not None else []
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.extend(json.loads(result.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table.to_csv(args.out / "results.csv", index=False)
    print(f"scan: {flair}")
    print(table.to_markdown(index=False) if hasattr(table, "to_markdown") else table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
