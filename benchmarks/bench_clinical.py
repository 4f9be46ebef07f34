"""Clinical validation set: brain extraction and segmentation on clinical-like and real clinical FLAIRs.

Usage::

    nice -n 10 python benchmarks/bench_clinical.py --out /tmp/bench_clinical \
        [--shared ../shared/data/real] [--model src/wmhkit/models/starter ...] \
        [--brain-extractor hdbet|template] [--subset all] [--limit N] [--seed 0]

Scans (``--subset``; ``all`` by default):

* ``lesjak-variants``: the three annotated Lesjak 2018 scans (1 mm, skull-stripped,
  MNI space) re-acquired as clinical 2D FLAIRs by :mod:`wmhkit.synth.degrade`: Gaussian
  slice profile (FWHM = slice thickness), 0.9×0.9×6.5 mm and 0.45×0.45×8 mm, each with
  a synthetic head (phantom head model, Rician background noise) and without
  (skull-stripped, background exactly 0): 3 × 2 × 2 = 12 variants. Storage
  orientation cycles over LPS / LAS / oblique (LAS rotated 10–15° about x and up
  to ±5° about z, data resampled so the world content is unchanged) and the
  intensity storage over :data:`wmhkit.synth.degrade.STORAGES` (float32, int16 with
  a fractional slope holding [0, 1], uint8, uint16 up to 65535, int16 with an
  intercept), so every resolution × head cell holds all three orientations. The
  expert mask is moved with the same slice profile (fraction ≥ 0.5). Written once
  (deterministic by ``--seed``) to ``OUT/variants`` with a wmhkit ``manifest.tsv``.
* ``annotated``: the three annotated originals (expert consensus masks).
* ``raw``: the eleven raw clinical Lesjak FLAIRs (2D, skull on, LPS, uint16) and the
  two FLAIRs in ``unannotated-other`` (no reference mask).
* ``nichart``: the 23 NiChart whole-head FLAIRs of older adults, with the DLWMLS
  masks as reference: *agreement with a tool, not truth*.
* ``real``: annotated + raw + nichart, the 39 shared real scans.

Per scan: ``prepare`` (:func:`wmhkit.preprocess.pipeline.prepare_scan`, the default
prepare settings plus ``--brain-extractor``) into ``OUT/work/<scan>/prepared``; the
brain-extraction method and brain volume (from the prepared sidecar's
``brain_mask_source`` / ``brain_volume_ml`` when it has them, else the native mask),
success or the error, the fraction of reference lesion voxels inside the brain mask
(on the native grid, the prepared mask mapped back with
:func:`wmhkit.preprocess.geometry.to_native`) and seconds. Then for each ``--model``:
``predict`` (:func:`wmhkit.infer.predict.predict_scans`) and Dice / HD95 / AVD /
lesion F1 (:func:`wmhkit.metrics.segmentation.segmentation_metrics`, METRICS.md)
against the reference on the scan's own grid, the predicted and reference volumes
and seconds. By default predict is given the brain mask that prepare just computed
(with the same extractor), so brain extraction is not run twice per scan; pass
``--predict-extracts`` to have predict extract the brain itself, as a user's run does.

Outputs: ``OUT/brain.tsv`` (one row per scan), ``OUT/segmentation.tsv`` (one row per
scan and model), ``OUT/summary.json`` and ``OUT/summary.md`` (means per group, success
rate, minimum lesion-voxel fraction), QC overlays ``OUT/qc/<scan>.png`` (brain mask,
reference and model masks on the native FLAIR). Resumable: a scan whose rows exist is
skipped (delete its rows, or ``OUT/work/<scan>``, to redo it). One failing scan never
stops the others. Set ``nice -n 10`` on a shared machine; wall times are then upper bounds.

Data: Lesjak Ž. et al., Neuroinformatics 16:51–63 (2018), CC-BY 4.0; NiChart demo
dataset, Section of Biomedical Image Analysis, University of Pennsylvania (SBIA licence);
NiiVue demo images (BSD-2-Clause); py_synthsr demo data (Apache-2.0).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from wmhkit.errors import GeometryError
from wmhkit.infer.predict import predict_scans
from wmhkit.io.atomic import write_text_atomic
from wmhkit.io.image import Image, check_same_grid
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_mask
from wmhkit.io.provenance import sidecar_path
from wmhkit.metrics.segmentation import (
    METRIC_COLUMNS,
    segmentation_metrics,
    wmh_from_gold,
)
from wmhkit.preprocess.geometry import to_native
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_scan
from wmhkit.qc.overlay import save_overlay_png
from wmhkit.synth.degrade import (
    STORAGES,
    ClinicalAcquisition,
    clinical_variant,
    save_stored_image,
)
from wmhkit.synth.head import draw_head

log = logging.getLogger("bench_clinical")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data" / "real"
GROUPS: tuple[str, ...] = ("lesjak-variants", "lesjak-annotated", "lesjak-raw", "other-raw", "nichart")
SUBSETS: dict[str, tuple[str, ...]] = {
    "lesjak-variants": ("lesjak-variants",),
    "annotated": ("lesjak-annotated",),
    "raw": ("lesjak-raw", "other-raw"),
    "nichart": ("nichart",),
    "real": ("lesjak-annotated", "lesjak-raw", "other-raw", "nichart"),
    "all": GROUPS,
}
#: Clinical resolutions of the Lesjak variants: name → voxel size (mm).
RESOLUTIONS: dict[str, tuple[float, float, float]] = {"0.9x0.9x6.5": (0.9, 0.9, 6.5), "0.45x0.45x8": (0.45, 0.45, 8.0)}
#: Storage layouts cycled across variants: (name, axis directions, oblique).
LAYOUTS: tuple[tuple[str, str, bool], ...] = (("LPS", "LPS", False), ("LAS", "LAS", False), ("oblique", "LAS", True))
STORAGE_CYCLE: tuple[str, ...] = ("int16-unit", "float32", "uint8", "uint16", "int16-offset")
#: Field of view beyond the brain (mm): room for the synthetic head, or a tight skull-stripped box.
HEAD_MARGIN_MM = 25.0
STRIPPED_MARGIN_MM = 10.0
#: Rician noise of the whole-head variants (Gaussian sigma as a fraction of the brain's median).
HEAD_NOISE = 0.02
#: Atrophy level handed to the phantom head model (sets the CSF shell under the skull).
HEAD_ATROPHY = 0.3
VARIANT_DATASET = "lesjak2018-clinical"
BRAIN_COLUMNS: tuple[str, ...] = (
    "scan", "group", "reference", "shape", "spacing_mm", "ok", "error", "brain_method", "brain_extractor",
    "brain_ml", "lesion_fraction_in_brain", "reference_ml", "prepare_s",
)
SEGMENTATION_COLUMNS: tuple[str, ...] = ("scan", "group", "reference", "model", "ok", "error", *METRIC_COLUMNS,
                                         "predict_s")


@dataclass(frozen=True)
class Scan:
    """One scan of the validation set.

    Attributes
    ----------
    scan_id
        Safe name (manifest ID), used for output folders.
    group
        One of :data:`GROUPS`.
    flair
        Native FLAIR file.
    reference
        Lesion mask on the FLAIR grid, or None.
    reference_kind
        ``"expert"`` (consensus), ``"dlwmls"`` (a tool's mask: agreement, not truth) or ``""``.
    """

    scan_id: str
    group: str
    flair: Path
    reference: Path | None = None
    reference_kind: str = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; rerun to resume)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help=f"the shared real-data folder (default {DEFAULT_SHARED})")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="model folder to score (repeatable), e.g. src/wmhkit/models/starter")
    parser.add_argument("--brain-extractor", default=None,
                        help="prepare's brain extractor (e.g. hdbet, template); default: prepare's own default")
    parser.add_argument("--subset", choices=sorted(SUBSETS), default="all", help="which scans (default all)")
    parser.add_argument("--limit", type=int, default=None, help="at most N scans per group (a quick run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degraded variants")
    parser.add_argument("--predict-extracts", action="store_true",
                        help="let predict extract the brain itself instead of reusing prepare's mask")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    if not args.shared.is_dir():
        raise SystemExit(f"--shared {args.shared} is not a folder: point it at the shared real data (data/real)")
    for model in args.model:
        if not (model / "model.yaml").is_file():
            raise SystemExit(f"--model {model}: no model.yaml there; pass a wmhkit model folder")
    options = prepare_options(args.brain_extractor)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    groups = SUBSETS[args.subset]
    scans = collect_scans(args.shared, groups, out, args.seed, args.limit)
    log.info("%d scans: %s", len(scans), ", ".join(f"{g} {sum(s.group == g for s in scans)}" for g in groups))
    brain_rows = _read_rows(out / "brain.tsv", BRAIN_COLUMNS)
    segmentation_rows = _read_rows(out / "segmentation.tsv", SEGMENTATION_COLUMNS)
    models = {_model_name(path, args.model): path.resolve() for path in args.model}
    for number, scan in enumerate(scans, start=1):
        done = {row["model"] for row in segmentation_rows if row["scan"] == scan.scan_id}
        if any(row["scan"] == scan.scan_id for row in brain_rows) and done >= set(models):
            continue
        log.info("[%d/%d] %s (%s)", number, len(scans), scan.scan_id, scan.group)
        brain_row, brain_mask = extract_brain(scan, out / "work" / scan.scan_id, options, brain_rows)
        brain_rows = [row for row in brain_rows if row["scan"] != scan.scan_id] + [brain_row]
        masks: dict[str, Image] = {}
        for name, model in models.items():
            if name in done:
                continue
            row, mask = run_model(scan, name, model, out / "work" / scan.scan_id,
                                  None if args.predict_extracts else brain_mask)
            segmentation_rows.append(row)
            if mask is not None:
                masks[name] = mask
        _write_rows(brain_rows, BRAIN_COLUMNS, out / "brain.tsv")
        _write_rows(segmentation_rows, SEGMENTATION_COLUMNS, out / "segmentation.tsv")
        try:
            save_qc(scan, brain_row, brain_mask, masks, out / "qc" / f"{scan.scan_id}.png")
        except Exception as exc:  # noqa: BLE001 - a QC picture never stops the set
            log.error("%s: QC overlay failed: %s", scan.scan_id, exc)
    summary = summarise(brain_rows, segmentation_rows, scans, args, options)
    write_text_atomic(out / "summary.json", json.dumps(_json_ready(summary), indent=2) + "\n")
    markdown = summary_markdown(summary)
    write_text_atomic(out / "summary.md", markdown)
    print(markdown)
    return 0


def prepare_options(brain_extractor: str | None) -> PrepareOptions:
    """Default prepare settings with ``brain_extractor`` when given (a clear exit when prepare has no such setting)."""
    if brain_extractor is None:
        return PrepareOptions()
    try:
        return PrepareOptions(brain_extractor=brain_extractor)  # type: ignore[call-arg]
    except TypeError:
        raise SystemExit("--brain-extractor: this wmhkit's prepare has no brain_extractor setting; "
                         "leave the option out (prepare's own method is used)") from None
    except ValueError as exc:
        raise SystemExit(f"--brain-extractor {brain_extractor}: {exc}") from None


# ---------------------------------------------------------------------------------------------- the scans


def collect_scans(shared: Path, groups: tuple[str, ...], out: Path, seed: int, limit: int | None) -> list[Scan]:
    """The scans of ``groups`` in a fixed order (building the variants when asked), at most ``limit`` per group."""
    lesjak = shared / "lesjak2018"
    annotated = sorted(p for p in (lesjak / "annotated").glob("patient*") if (p / "consensus.nii.gz").is_file())
    scans: list[Scan] = []
    for group in groups:
        if group == "lesjak-variants":
            found = build_variants(annotated, out / "variants", seed, limit)
        elif group == "lesjak-annotated":
            found = [Scan(f"lesjak-{p.name}", group, p / "FLAIR.nii.gz", p / "consensus.nii.gz", "expert")
                     for p in annotated]
        elif group == "lesjak-raw":
            found = [Scan(f"lesjak-{p.parent.name}", group, p)
                     for p in sorted((lesjak / "unannotated").glob("*/FLAIR.nii.gz"))]
        elif group == "other-raw":
            found = [Scan(p.name.removesuffix("-FLAIR.nii.gz"), group, p)
                     for p in sorted((shared / "unannotated-other").glob("*-FLAIR.nii.gz"))]
        else:
            subjects = sorted((shared / "nichart-demo").glob("Subj*/FLAIR.nii.gz"),
                              key=lambda p: int(p.parent.name.removeprefix("Subj")))
            found = [Scan(f"nichart-{p.parent.name}", group, p, p.parent / "dlwmls.nii.gz", "dlwmls")
                     for p in subjects]
        if not found:
            log.warning("%s: no scans found under %s", group, shared)
        scans += found[:limit]
    return scans


def build_variants(patients: list[Path], folder: Path, seed: int, limit: int | None) -> list[Scan]:
    """Write the degraded variants of the annotated scans (missing ones only; the first ``limit``) and their manifest.

    The design is patient × resolution × {head, stripped}; variant ``i`` takes
    layout ``LAYOUTS[i % 3]`` and storage ``STORAGE_CYCLE[i % 5]`` and draws its
    obliquity, head and noise from ``default_rng([seed, i])``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    design = [(patient, resolution, head) for patient in patients for resolution in RESOLUTIONS for head in (True, False)]
    for index, (patient, resolution, head) in enumerate(design[:limit]):
        layout, orientation, oblique = LAYOUTS[index % len(LAYOUTS)]
        storage = STORAGES[STORAGE_CYCLE[index % len(STORAGE_CYCLE)]]
        scan_id = f"lesjak-{patient.name}-{resolution}-{'head' if head else 'stripped'}"
        rows.append({
            "subject": scan_id, "dataset": VARIANT_DATASET,
            "scanner": f"{resolution}-{layout}-{storage.name}-{'head' if head else 'stripped'}",
            "flair": f"{scan_id}_FLAIR.nii.gz", "gold": f"{scan_id}_gold.nii.gz",
            "source": f"lesjak2018/annotated/{patient.name}", "resolution_mm": resolution, "layout": layout,
            "storage": storage.name, "head": "yes" if head else "no",
        })
        flair_path, gold_path = folder / rows[-1]["flair"], folder / rows[-1]["gold"]
        if flair_path.is_file() and gold_path.is_file():
            continue
        started = time.perf_counter()
        rng = np.random.default_rng([seed, index])
        tilt = (float(rng.uniform(10.0, 15.0)), 0.0, float(rng.uniform(-5.0, 5.0))) if oblique else (0.0, 0.0, 0.0)
        flair = load_image(patient / "FLAIR.nii.gz")
        gold = load_mask(patient / "consensus.nii.gz", allowed_labels=(0, 1, 2))
        acquisition = ClinicalAcquisition(RESOLUTIONS[resolution], orientation, tilt,
                                          HEAD_MARGIN_MM if head else STRIPPED_MARGIN_MM)
        image, moved = clinical_variant(flair, gold, acquisition, head=draw_head(HEAD_ATROPHY, rng) if head else None,
                                        noise=HEAD_NOISE if head else 0.0, rng=rng)
        save_stored_image(image, flair_path, storage)
        save_mask(moved, gold_path)
        log.info("variant %s: %s voxels, tilt %s deg, %s, %.0f s", scan_id, image.shape,
                 tuple(round(t, 1) for t in tilt), storage.name, time.perf_counter() - started)
    write_manifest(pd.DataFrame(rows), folder / "manifest.tsv")
    manifest = read_manifest(folder / "manifest.tsv")
    return [Scan(manifest.scan_id(row), "lesjak-variants", manifest.path(row, "flair"), manifest.path(row, "gold"),
                 "expert") for row in manifest.rows()]


# ------------------------------------------------------------------------------------------- per scan


def extract_brain(scan: Scan, work: Path, options: PrepareOptions,
                  brain_rows: list[dict[str, Any]]) -> tuple[dict[str, Any], Image | None]:
    """Prepare ``scan`` and report its brain mask; reuse a finished one (``work/brain_mask.nii.gz``).

    Returns the ``brain.tsv`` row and the native-grid brain mask (None when prepare failed).
    """
    mask_path = work / "brain_mask.nii.gz"
    previous = [row for row in brain_rows if row["scan"] == scan.scan_id]
    if previous:
        row = previous[0]
        return row, (load_mask(mask_path) if _is_true(row["ok"]) and mask_path.is_file() else None)
    flair = load_image(scan.flair)
    row: dict[str, Any] = {
        "scan": scan.scan_id, "group": scan.group, "reference": scan.reference_kind,
        "shape": "x".join(map(str, flair.shape)), "spacing_mm": "x".join(f"{s:.3g}" for s in flair.spacing_mm),
    }
    if work.exists():
        shutil.rmtree(work)  # a half-finished earlier attempt
    started = time.perf_counter()
    try:
        prepared = prepare_scan(scan.flair, work / "prepared", options=options)
        native = to_native(load_mask(prepared.outputs["brain_mask"]), prepared.geometry)
        brain = native.with_array((native.array > 0).astype(np.uint8))
    except Exception as exc:  # noqa: BLE001 - one failing scan never stops the set
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}", prepare_s=time.perf_counter() - started)
        log.error("%s: prepare failed: %s", scan.scan_id, row["error"])
        _write_crash(work, traceback.format_exc())
        return row, None
    seconds = time.perf_counter() - started
    save_mask(brain, mask_path)
    sidecar = json.loads(sidecar_path(prepared.outputs["brain_mask"]).read_text(encoding="utf-8"))
    native_ml = float(brain.array.sum()) * brain.voxel_volume_ml
    row.update(
        ok=True, error="", brain_method=sidecar.get("brain_mask_source", prepared.brain_mask_source),
        brain_extractor=(sidecar.get("parameters") or {}).get("brain_extractor", ""),
        brain_ml=float(sidecar.get("brain_volume_ml", native_ml)), prepare_s=seconds,
    )
    if scan.reference is not None:
        try:
            wmh = _reference_wmh(scan, flair)
        except GeometryError as exc:
            row["error"] = f"reference not usable: {exc}"
            log.error("%s: %s", scan.scan_id, row["error"])
        else:
            row["reference_ml"] = float(wmh.sum()) * flair.voxel_volume_ml
            row["lesion_fraction_in_brain"] = (float((wmh & (brain.array > 0)).sum()) / float(wmh.sum())
                                               if wmh.any() else math.nan)
    log.info("%s: brain %.0f mL (%s) in %.1f s, lesion voxels inside %.4f", scan.scan_id, row["brain_ml"],
             row["brain_method"], seconds, row.get("lesion_fraction_in_brain", math.nan))
    return row, brain


def run_model(scan: Scan, name: str, model: Path, work: Path,
              brain_mask: Image | None) -> tuple[dict[str, Any], Image | None]:
    """``predict`` one scan with one model and score it against the reference (if any)."""
    row: dict[str, Any] = {"scan": scan.scan_id, "group": scan.group, "reference": scan.reference_kind, "model": name}
    inputs = work / f"predict-{name}-input"
    if inputs.exists():
        shutil.rmtree(inputs)
    inputs.mkdir(parents=True)
    shutil.copyfile(scan.flair, inputs / "flair.nii.gz")  # a manifest may not point outside its folder
    record = {"subject": scan.scan_id, "flair": "flair.nii.gz"}
    if brain_mask is not None:
        save_mask(brain_mask, inputs / "brain_mask.nii.gz")
        record["brain_mask"] = "brain_mask.nii.gz"
    manifest = write_manifest(pd.DataFrame([record]), inputs / "manifest.tsv")
    started = time.perf_counter()
    try:
        result = predict_scans(model, [manifest], work / f"predict-{name}")
        if result.failures:
            raise RuntimeError(result.failures[0].error)
        mask = load_mask(result.outputs[scan.scan_id]["wmh"])
        row.update(score(scan, mask))
    except Exception as exc:  # noqa: BLE001 - one failing scan never stops the set
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}", predict_s=time.perf_counter() - started)
        log.error("%s: predict with %s failed: %s", scan.scan_id, name, row["error"])
        return row, None
    finally:
        shutil.rmtree(inputs, ignore_errors=True)
    row.update(ok=True, error="", predict_s=time.perf_counter() - started)
    log.info("%s: %s Dice %.3f, %.1f mL predicted (%.1f s)", scan.scan_id, name, row.get("dice", math.nan),
             row["vol_pred_ml"], row["predict_s"])
    return row, mask


def score(scan: Scan, mask: Image) -> dict[str, float]:
    """METRICS.md metrics of a native-grid mask against the scan's reference (only the volume without one)."""
    if scan.reference is None:
        return {"vol_pred_ml": float((mask.array > 0).sum()) * mask.voxel_volume_ml}
    reference = load_mask(scan.reference, allowed_labels=(0, 1, 2))
    check_same_grid(mask, reference, scan.reference)
    wmh, other = wmh_from_gold(reference.array)
    return segmentation_metrics((mask.array > 0) & ~other, wmh, mask.affine)


def save_qc(scan: Scan, brain_row: dict[str, Any], brain: Image | None, models: dict[str, Image], path: Path) -> None:
    """Overlay of the brain mask, the reference and the model masks on the native FLAIR."""
    flair = load_image(scan.flair)
    masks: dict[str, Image] = {}
    if brain is not None:
        masks["brain"] = brain
    if scan.reference is not None:
        masks[scan.reference_kind] = load_mask(scan.reference, allowed_labels=(0, 1, 2))
    masks.update(models)
    status = (f"brain {float(brain_row['brain_ml']):.0f} mL ({brain_row['brain_method']})"
              if _is_true(brain_row["ok"]) else "prepare FAILED")
    save_overlay_png(flair, path, masks=masks, title=f"{scan.scan_id} ({scan.group}): {status}")


def _reference_wmh(scan: Scan, flair: Image) -> np.ndarray:
    """The reference's WMH voxels (label 1) on the FLAIR grid; GeometryError when on another grid."""
    reference = load_mask(scan.reference, allowed_labels=(0, 1, 2))
    check_same_grid(flair, reference, scan.reference)
    return wmh_from_gold(reference.array)[0]


def _write_crash(work: Path, text: str) -> None:
    work.mkdir(parents=True, exist_ok=True)
    write_text_atomic(work / "crash.txt", text)


# -------------------------------------------------------------------------------------------- summary


def summarise(brain_rows: list[dict[str, Any]], segmentation_rows: list[dict[str, Any]], scans: list[Scan],
              args: argparse.Namespace, options: PrepareOptions) -> dict[str, Any]:
    """Means per group (and model): success rate, brain volume, minimum lesion-voxel fraction, metrics, seconds.

    Model metrics of the variants are also given per resolution × {head, stripped} cell.
    """
    wanted = {scan.scan_id for scan in scans}
    brain = pd.DataFrame([r for r in brain_rows if r["scan"] in wanted], columns=BRAIN_COLUMNS)
    segmentation = pd.DataFrame([r for r in segmentation_rows if r["scan"] in wanted], columns=SEGMENTATION_COLUMNS)
    for frame in (brain, segmentation):
        frame["ok"] = frame["ok"].map(_is_true)
    groups = []
    for group, rows in brain.groupby("group", sort=False):
        fractions = pd.to_numeric(rows["lesion_fraction_in_brain"], errors="coerce")
        volumes = pd.to_numeric(rows.loc[rows["ok"], "brain_ml"], errors="coerce")
        groups.append({
            "group": group, "scans": len(rows), "extraction_ok": int(rows["ok"].sum()),
            "success_rate": float(rows["ok"].mean()),
            "methods": ", ".join(f"{m} {n}" for m, n in rows.loc[rows["ok"], "brain_method"].value_counts().items()),
            "brain_ml_mean": volumes.mean(), "brain_ml_min": volumes.min(), "brain_ml_max": volumes.max(),
            "lesion_fraction_min": fractions.min(), "lesion_fraction_mean": fractions.mean(),
            "prepare_s_mean": pd.to_numeric(rows["prepare_s"], errors="coerce").mean(),
            "failures": [f"{r['scan']}: {r['error']}" for _, r in rows[~rows["ok"]].iterrows()],
        })
    models = []
    variants = segmentation[segmentation["group"] == "lesjak-variants"]
    by_cell = pd.concat([variants.assign(group=f"lesjak-variants {resolution} {kind}")
                         [variants["scan"].str.contains(f"-{resolution}-{kind}", regex=False)]
                         for resolution in RESOLUTIONS for kind in ("head", "stripped")])
    for (group, model), rows in pd.concat([segmentation, by_cell]).groupby(["group", "model"], sort=False):
        numeric = rows.loc[rows["ok"], ["dice", "hd95_mm", "avd_pct", "lesion_f1", "vol_pred_ml", "vol_gold_ml",
                                        "predict_s"]].apply(pd.to_numeric, errors="coerce")
        models.append({"group": group, "model": model, "reference": rows["reference"].iloc[0], "scans": len(rows),
                       "predict_ok": int(rows["ok"].sum()), **{f"{c}_mean": numeric[c].mean() for c in numeric}})
    real = brain[brain["group"] != "lesjak-variants"]
    return {
        "command": " ".join(sys.argv), "machine": "see the report (wall times under nice -n 10)",
        "prepare_options": options.to_dict(), "models": {_model_name(p, args.model): str(p) for p in args.model},
        "predict_brain_mask": "predict extracts the brain" if args.predict_extracts else "prepare's brain mask given",
        "shared_real_scans": len(real), "shared_real_extraction_ok": int(real["ok"].sum()),
        "variants": int((brain["group"] == "lesjak-variants").sum()),
        "groups": groups, "segmentation": models,
        "per_scan": brain.to_dict(orient="records"), "per_scan_segmentation": segmentation.to_dict(orient="records"),
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """Markdown tables for BENCHMARKS.md."""
    lines = [
        f"Command: `{summary['command']}`", "",
        (f"Shared real scans: {summary['shared_real_extraction_ok']} of {summary['shared_real_scans']} brain "
         f"extractions succeeded; degraded Lesjak variants: {summary['variants']}."), "",
        ("| group | scans | extraction ok | method | brain mL mean (min–max) | lesion voxels in brain: min (mean) "
         "| prepare s |"),
        "|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        lines.append(
            f"| {g['group']} | {g['scans']} | {g['extraction_ok']} ({100 * g['success_rate']:.0f} %) | {g['methods']} | "
            f"{_fmt(g['brain_ml_mean'], 0)} ({_fmt(g['brain_ml_min'], 0)}–{_fmt(g['brain_ml_max'], 0)}) | "
            f"{_fmt(g['lesion_fraction_min'], 4)} ({_fmt(g['lesion_fraction_mean'], 4)}) | {_fmt(g['prepare_s_mean'], 1)} |")
    if summary["segmentation"]:
        lines += ["", ("| group | model | reference | scans (ok) | Dice | HD95 mm | AVD % | lesion F1 | predicted mL "
                       "| reference mL | predict s |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
        for m in summary["segmentation"]:
            reference = {"expert": "expert", "dlwmls": "DLWMLS (agreement)", "": "none"}.get(m["reference"], m["reference"])
            lines.append(
                f"| {m['group']} | {m['model']} | {reference} | {m['scans']} ({m['predict_ok']}) | {_fmt(m['dice_mean'], 3)} | "
                f"{_fmt(m['hd95_mm_mean'], 1)} | {_fmt(m['avd_pct_mean'], 1)} | {_fmt(m['lesion_f1_mean'], 3)} | "
                f"{_fmt(m['vol_pred_ml_mean'], 1)} | {_fmt(m['vol_gold_ml_mean'], 1)} | {_fmt(m['predict_s_mean'], 1)} |")
    failures = [f for g in summary["groups"] for f in g["failures"]]
    if failures:
        lines += ["", "Failed brain extractions:", *(f"- {f}" for f in failures)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- helpers


def _model_name(path: Path, all_paths: list[Path]) -> str:
    """A model's short name: its folder name, with its position when two folders share a name."""
    names = [p.name for p in all_paths]
    return path.name if names.count(path.name) == 1 else f"{path.name}-{all_paths.index(path) + 1}"


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return [{c: row.get(c, "") for c in columns} for row in table.to_dict(orient="records")]


def _write_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], path: Path) -> None:
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=list(columns)).to_csv(buffer, sep="\t", index=False, float_format="%.6g")
    write_text_atomic(path, buffer.getvalue())


def _is_true(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _fmt(value: Any, digits: int) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else f"{number:.{digits}f}"


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


if __name__ == "__main__":
    sys.exit(main())
