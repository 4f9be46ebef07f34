"""Benchmark ``wmhkit predict`` per 1 mm scan: seconds and peak memory per network width.

Usage::

    python benchmarks/bench_predict.py [--flair FLAIR.nii.gz --brain-mask MASK.nii.gz] \
        [--widths 1.0 0.25 0.0625] [--batch-size 8] [--device cpu] [--out bench-out/predict]

Without ``--flair`` a 1 mm phantom (``wmhkit.synth``, seed 0, true brain mask) is
used. Each width runs in its own process (so peak RSS is that width's) with a
randomly initialised 2.5D VGG16 U-Net model folder (seed 0): speed does not
depend on the weights. Reported per width: the prepared (brain box) shape, the
inference seconds of the three planes over the brain box plus fusion
(:func:`wmhkit.infer.predict.segment_2_5d`, the budgeted number; wall and CPU
seconds, since on shared cores wall time measures the neighbours), the seconds of
the whole ``predict_scans`` run (prepare with the model's settings, inference,
volumes, native mapping, writing), and the process's peak RSS (GiB). Prints one
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from wmhkit.infer.model_folder import load_model, save_model_folder
from wmhkit.infer.predict import predict_scans, segment_2_5d
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.nn.vgg_unet import VGG16UNet
from wmhkit.preprocess.pipeline import prepare_scan

PLANES = ("axial", "sagittal", "coronal")


def write_model(folder: Path, width: float) -> Path:
    """A 2.5D model folder of random-init VGG16 U-Nets of ``width`` (default prepare settings)."""
    torch.manual_seed(0)
    networks = {plane: VGG16UNet(width=width) for plane in PLANES}
    record = {"kind": "segmentation-2.5d", "network": networks["axial"].network_spec(), "planes": list(PLANES),
              "fusion": "mean", "threshold": 0.5, "prepare": {"qc_png": False}, "trained_on": "benchmark (random)"}
    save_model_folder(folder, record, {p: n.state_dict() for p, n in networks.items()}, {"seed": 0})
    return folder


def phantom_scan(out: Path) -> tuple[Path, Path]:
    """A 1 mm phantom FLAIR and its true brain mask."""
    from wmhkit.synth.cohort import synthesize_cohort

    manifest = pd.read_csv(synthesize_cohort(out / "phantom", 1, seed=0, resolution_mm=1.0), sep="\t", dtype=str)
    return out / "phantom" / manifest.loc[0, "flair"], out / "phantom" / manifest.loc[0, "true_brain_mask"]


def run_width(width: float, flair: Path, brain_mask: Path, out: Path, batch_size: int, device: str) -> dict:
    """Measure one width in this process."""
    model_dir = write_model(out / f"model-w{width:g}", width)
    prepared_scan = prepare_scan(flair, out / f"prepared-w{width:g}", brain_mask=brain_mask,
                                 options=load_model(model_dir).spec.prepare)
    prepared = {"flair": load_image(prepared_scan.outputs["flair"]),
                "brain_mask": load_mask(prepared_scan.outputs["brain_mask"])}
    model = load_model(model_dir, device=device)
    start, cpu_start = time.perf_counter(), time.process_time()
    segment_2_5d(model, prepared, fusion="mean", threshold=0.5, batch_size=batch_size)
    inference_s, inference_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    data = out / f"data-w{width:g}"
    data.mkdir(parents=True, exist_ok=True)
    manifest = data / "manifest.tsv"
    (data / "flair.nii.gz").write_bytes(flair.read_bytes())
    (data / "brain.nii.gz").write_bytes(brain_mask.read_bytes())
    manifest.write_text("subject\tflair\tbrain_mask\nscan\tflair.nii.gz\tbrain.nii.gz\n")
    start = time.perf_counter()
    predict_scans(model_dir, [manifest], out / f"predict-w{width:g}", device=device, batch_size=batch_size)
    total_s = time.perf_counter() - start
    return {"width": width, "box_shape": "x".join(map(str, prepared["flair"].shape)),
            "inference_s": round(inference_s, 1), "inference_cpu_s": round(inference_cpu_s, 1),
            "predict_total_s": round(total_s, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "threads": torch.get_num_threads(), "device": device, "batch_size": batch_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flair", type=Path)
    parser.add_argument("--brain-mask", type=Path)
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25, 0.0625])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench-out/predict"))
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.single:
        print(json.dumps(run_width(args.widths[0], args.flair, args.brain_mask, args.out, args.batch_size, args.device)))
        return 0
    flair, brain_mask = (args.flair, args.brain_mask) if args.flair else phantom_scan(args.out)
    rows = []
    for width in args.widths:
        command = [sys.executable, __file__, "--single", "--widths", str(width), "--flair", str(flair),
                   "--brain-mask", str(brain_mask), "--batch-size", str(args.batch_size), "--device", args.device,
                   "--out", str(args.out)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    print(f"scan: {flair}")
    print(table.to_markdown(index=False) if hasattr(table, "to_markdown") else table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
