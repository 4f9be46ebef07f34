"""Build the lesion prior and fit the coefficients of the ``lpa`` bronze method (package data).

Usage::

    python benchmarks/fit_lpa.py prior --lesjak-mni ../shared/data/real/lesjak2018/consensus-masks-mni
    python benchmarks/fit_lpa.py fit --phantoms 15 --seed 101 --resolution-mm 2 --work /tmp/lpa_fit

``prior`` writes ``src/wmhkit/data/lpa_prior.nii.gz``: on nilearn's MNI ICBM152 2009a
grid averaged to 3 mm, the mean of (a) the lesion frequency of the Lesjak 2018
consensus masks in MNI space, the annotated patients 07, 19 and 26 left out (they
are the real validation scans), and (b) the phantom lesion model's frequency (the
mean lesion fraction of ``--draws`` lesion draws of :func:`wmhkit.synth.lesions.generate_lesions`
over the clinical stages), each smoothed by a Gaussian of ``--smooth-mm``; stored
as uint8 with a scale factor.

``fit`` synthesises ``--phantoms`` phantoms (a seed other than the benchmarks'),
prepares them with their true brain masks, and fits the logistic model of
:mod:`wmhkit.bronze.lpa` by maximum likelihood (L-BFGS, a small ridge penalty) on
every gold voxel and a random ``--background-fraction`` of the other brain voxels
(weighted by its inverse, so the fit sees the true prevalence); it writes
``src/wmhkit/data/lpa_coefficients.json`` and prints the Dice of the fitted model on
the fitting phantoms at several thresholds. No annotated real scan is used.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage, optimize

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.lpa import (
    COEFFICIENTS_FILE,
    DATA_DIR,
    FEATURES,
    PRIOR_FILE,
    LpaModel,
    LpaParameters,
    lpa_features,
)
from wmhkit.bronze.register import resample_onto
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest
from wmhkit.io.mni import MNI_FILES, block_mean, mni_template_dir
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.synth.cohort import synthesize_cohort
from wmhkit.synth.lesions import (
    STAGE_MEDIAN_BURDEN_ML,
    generate_lesions,
    target_burden_ml,
)
from wmhkit.synth.template import load_template

log = logging.getLogger("fit_lpa")

#: Lesjak patients with annotated scans (validation only: never in the prior).
VALIDATION_PATIENTS = ("07", "19", "26")
PRIOR_SPACING_FACTOR = 3
RIDGE = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prior = commands.add_parser("prior", help="build the lesion prior")
    prior.add_argument("--lesjak-mni", type=Path, required=True, help="folder of patientNN.nii.gz MNI masks")
    prior.add_argument("--draws", type=int, default=60, help="phantom lesion draws")
    prior.add_argument("--smooth-mm", type=float, default=4.0)
    prior.add_argument("--seed", type=int, default=2017)
    fit = commands.add_parser("fit", help="fit the coefficients on phantoms")
    fit.add_argument("--phantoms", type=int, default=15)
    fit.add_argument("--seed", type=int, default=101)
    fit.add_argument("--resolution-mm", type=float, default=2.0)
    fit.add_argument("--background-fraction", type=float, default=0.05)
    fit.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "prior":
        build_prior(args.lesjak_mni, args.draws, args.smooth_mm, args.seed)
    else:
        fit_coefficients(args.work, args.phantoms, args.seed, args.resolution_mm, args.background_fraction)


def build_prior(lesjak_mni: Path, draws: int, smooth_mm: float, seed: int) -> Path:
    """Write the prior (see the module docstring); returns its path."""
    template_nifti = nib.load(str(mni_template_dir([MNI_FILES["t1"]]) / MNI_FILES["t1"]))
    grid = Image(np.zeros(template_nifti.shape[:3], np.float32), template_nifti.affine)
    brain = ndimage.binary_fill_holes(np.asarray(template_nifti.dataobj) > 0)
    files = [p for p in sorted(lesjak_mni.glob("patient*.nii.gz"))
             if re.search(r"patient(\d+)", p.name).group(1) not in VALIDATION_PATIENTS]
    if len(files) < 10:
        raise SystemExit(f"{lesjak_mni}: {len(files)} masks found outside the validation patients; expected 27")
    lesjak = np.zeros(grid.shape, np.float32)
    for path in files:
        mask = load_mask(path)
        lesjak += resample_onto(mask.with_array(mask.array.astype(np.float32)), grid).array
    lesjak /= len(files)
    log.info("Lesjak: %d masks (patients %s left out), peak frequency %.3f", len(files),
             ", ".join(VALIDATION_PATIENTS), lesjak.max())
    template = load_template(2.0)
    rng = np.random.default_rng(seed)
    phantom = np.zeros(template.shape, np.float32)
    stages = sorted(STAGE_MEDIAN_BURDEN_ML)
    for draw in range(draws):
        burden = target_burden_ml(stages[draw % len(stages)], float(rng.uniform(60, 90)), rng)
        phantom += generate_lesions(template, burden, rng).fraction
    phantom /= draws
    phantom_on_grid = resample_onto(Image(phantom, template.affine), grid).array
    log.info("phantom model: %d draws, peak frequency %.3f", draws, phantom_on_grid.max())
    sd = smooth_mm / float(np.linalg.norm(grid.affine[:3, 0]))
    blended = 0.5 * ndimage.gaussian_filter(lesjak, sd) + 0.5 * ndimage.gaussian_filter(phantom_on_grid, sd)
    blended[~brain] = 0.0
    coarse = block_mean(grid.with_array(blended), PRIOR_SPACING_FACTOR)
    peak = float(coarse.array.max())
    stored = nib.Nifti1Image(np.round(coarse.array / peak * 255).astype(np.uint8), coarse.affine)
    stored.header.set_slope_inter(peak / 255.0, 0.0)
    stored.header.set_xyzt_units("mm")
    stored.header["descrip"] = b"wmhkit lpa lesion prior (Lesjak 27 + phantom model)"
    path = DATA_DIR / PRIOR_FILE
    nib.save(stored, str(path))
    log.info("wrote %s (%s, peak %.3f, %d bytes)", path, coarse.shape, peak, path.stat().st_size)
    return path


def fit_coefficients(work: Path, n_phantoms: int, seed: int, resolution_mm: float, background_fraction: float) -> Path:
    """Fit the coefficients on phantoms (see the module docstring); returns the JSON path."""
    prepared_manifest = work / "prepared" / "manifest.tsv"
    if not prepared_manifest.is_file():
        raw = synthesize_cohort(work / "raw", n_phantoms, seed=seed, with_brain_mask=True, resolution_mm=resolution_mm)
        prepared_manifest = prepare_manifest(raw, work / "prepared", options=PrepareOptions(qc_png=False)).manifest
    table = read_manifest(prepared_manifest)
    rng = np.random.default_rng(seed)
    samples, labels, weights, scans = [], [], [], []
    for row in table.rows():
        flair = load_image(table.path(row, "flair"))
        t1 = table.path(row, "t1")
        scan = ScanContext(flair, load_mask(table.path(row, "brain_mask")).array,
                           load_image(t1) if t1 is not None else None)
        gold = load_mask(table.path(row, "gold")).array.astype(bool)[scan.brain_mask]
        features = lpa_features(scan)
        keep = gold | (rng.random(gold.size) < background_fraction)
        samples.append(features[keep])
        labels.append(gold[keep])
        weights.append(np.where(gold[keep], 1.0, 1.0 / background_fraction))
        scans.append((scan, features, gold))
        log.info("%s: %d lesion voxels, %d sampled", table.scan_id(row), int(gold.sum()), int(keep.sum()))
    x, y, w = np.concatenate(samples), np.concatenate(labels).astype(np.float64), np.concatenate(weights)
    centre, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = np.hstack([np.ones((len(x), 1)), (x - centre) / scale])

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = xs @ beta
        log_p = -np.logaddexp(0.0, -eta)
        log_q = -np.logaddexp(0.0, eta)
        value = -np.sum(w * (y * log_p + (1 - y) * log_q)) / w.sum() + RIDGE * np.sum(beta[1:] ** 2)
        p = np.exp(log_p)
        gradient = xs.T @ (w * (p - y)) / w.sum()
        gradient[1:] += 2 * RIDGE * beta[1:]
        return value, gradient

    result = optimize.minimize(loss, np.zeros(xs.shape[1]), jac=True, method="L-BFGS-B")
    coefficients = result.x[1:] / scale
    intercept = float(result.x[0] - np.sum(result.x[1:] * centre / scale))
    model = LpaModel(intercept, tuple(float(c) for c in coefficients))
    stored = {"intercept": round(intercept, 6),
              "coefficients": {name: round(float(c), 6) for name, c in zip(FEATURES, coefficients)},
              "fitted_on": f"{len(scans)} phantoms (wmhkit.synth cohort seed {seed}, {resolution_mm} mm, "
                           f"scanners A-E, prepared with true brain masks); background voxels sampled at "
                           f"{background_fraction} and weighted by its inverse",
              "command": f"python benchmarks/fit_lpa.py fit --phantoms {n_phantoms} --seed {seed} "
                         f"--resolution-mm {resolution_mm} --background-fraction {background_fraction} --work WORK",
              "mean_log_loss": round(float(result.fun), 6)}
    path = DATA_DIR / COEFFICIENTS_FILE
    path.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s: %s", path, stored)
    print("threshold | pooled Dice | mean Dice over the fitting phantoms (voxel-wise, before the edge and size filters)")
    for threshold in (0.03, 0.05, 0.1, 0.2, 0.5):
        dices, overlap, total = [], 0, 0
        for _, features, gold in scans:
            predicted = model.probability(features) > threshold
            overlap, total = overlap + (predicted & gold).sum(), total + predicted.sum() + gold.sum()
            dices.append(2 * (predicted & gold).sum() / max(predicted.sum() + gold.sum(), 1))
        print(f"{threshold:.2f} | {2 * overlap / total:.3f} | {np.mean(dices):.3f}")
    print(f"default LpaParameters threshold: {LpaParameters().threshold}")
    return path


if __name__ == "__main__":
    main()
