"""The ``silver`` stage: per-scan consensus of the bronze masks of a manifest.

For each scan, the ``bronze_<method>`` masks (all of them, or ``methods``) are
read — on the native FLAIR grid as ``wmhkit bronze`` writes them, or on the
prepared grid — and brought onto the prepared grid (exact reorientation and
crop, no interpolation), where the brain mask is; the consensus is computed
inside the brain (:func:`~wmhkit.fusion.staple.staple` or
:func:`~wmhkit.fusion.majority.majority_vote`) and mapped back onto the native
FLAIR grid:

* ``OUT/<scan_id>/silver.nii.gz`` — uint8 consensus mask (probability > threshold);
* ``OUT/<scan_id>/silver_prob.nii.gz`` — float32 probability (STAPLE posterior,
  or the fraction of raters voting WMH);
* a sidecar per output, holding each rater's sensitivity and specificity;
* ``OUT/raters.tsv`` — subject, session, method, sensitivity, specificity per
  scan; ``OUT/raters_summary.tsv`` — their mean, sd and count per method.

A manifest without prepare sidecars works too when it has a native ``brain_mask``
column: everything then happens on the native grid.

``OUT/manifest.tsv`` is the input manifest with ``silver`` (and the text column
``silver_prob``) filled; ``OUT`` must be the input manifest's folder or a parent
of it (the manifest is replaced by the updated one when it is the same file).
Failed scans get an empty ``silver`` cell, a row in ``OUT/failures.tsv`` and a
traceback in ``OUT/crashes/<scan_id>.txt``; the others complete. Scans run through
:func:`wmhkit.cohort.stage.run_stage` (completion records, reruns).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wmhkit.bronze.stage import rebased_row
from wmhkit.cohort.records import expected_record
from wmhkit.cohort.runner import ComputeOptions, TaskOutcome
from wmhkit.cohort.stage import ComputeArguments, ScanStage, StageResult, StageScan, run_stage
from wmhkit.errors import GeometryError, InputError, MaskError
from wmhkit.fusion.majority import majority_vote
from wmhkit.fusion.staple import MAX_ITERATIONS, THRESHOLD, ConsensusResult, staple, staple_pruned
from wmhkit.io.atomic import resolve_output, write_text_atomic
from wmhkit.io.image import Image
from wmhkit.io.manifest import Manifest, read_manifest, relative_path, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.io.provenance import sidecar_path, write_sidecar
from wmhkit.preprocess.geometry import (
    NativeGeometry,
    load_native_geometry,
    to_native,
    to_prepared,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

FUSION_METHODS: tuple[str, ...] = ("staple", "staple-pruned", "majority")


@dataclass(frozen=True)
class SilverOptions:
    """Settings of the silver stage.

    Attributes
    ----------
    method
        ``staple`` (default), ``staple-pruned`` (STAPLE again without the raters it
        found far less sensitive than the best: :func:`~wmhkit.fusion.staple.staple_pruned`)
        or ``majority``.
    threshold
        Consensus mask = probability > threshold.
    methods
        Bronze methods to fuse; None fuses every ``bronze_<method>`` column filled for the scan.
    max_iterations
        STAPLE EM iteration cap.
    """

    method: str = "staple"
    threshold: float = THRESHOLD
    methods: tuple[str, ...] | None = None
    max_iterations: int = MAX_ITERATIONS

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ValueError(f"fusion method must be one of {FUSION_METHODS}, got {self.method!r}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for completion records."""
        return {"method": self.method, "threshold": self.threshold,
                "methods": None if self.methods is None else list(self.methods), "max_iterations": self.max_iterations}


@dataclass(frozen=True)
class SilverScan:
    """One scan's silver outputs and each rater's estimated performance."""

    mask: Path
    probability: Path
    raters: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class SilverResult(StageResult[SilverScan]):
    """Outcome of :func:`silver_manifest`, with every scan's rater performance (``raters.tsv``)."""

    raters: pd.DataFrame


def silver_scan(
    bronze: dict[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    brain_mask: str | os.PathLike[str],
    flair: str | os.PathLike[str],
    options: SilverOptions = SilverOptions(),
) -> SilverScan:
    """Consensus of one scan's bronze masks (see the module docstring).

    Parameters
    ----------
    bronze
        Method → bronze mask file (0/1, native FLAIR grid or prepared grid).
    out_dir
        Folder for ``silver.nii.gz`` and ``silver_prob.nii.gz``.
    brain_mask
        The scan's brain mask (prepared grid when ``flair`` is prepared, else native).
    flair
        The prepared FLAIR (its sidecar's native-geometry record), or the native FLAIR.
    options
        Stage settings.

    Raises
    ------
    InputError
        Fewer than two bronze masks.
    MaskError
        A mask with values other than 0/1 (e.g. 255), an empty brain mask.
    GeometryError
        A mask on neither the native nor the prepared grid.
    """
    if len(bronze) < 2:
        raise InputError(flair, f"{len(bronze)} bronze mask(s) ({', '.join(bronze) or 'none'}); a consensus needs two or more",
                         "run wmhkit bronze (or add bronze_<method> columns) first")
    flair_path = Path(flair)
    geometry = _geometry(flair_path)
    brain = load_mask(brain_mask)
    if not brain.array.any():
        raise MaskError(brain_mask, "the brain mask is empty", "re-run wmhkit prepare or give a non-empty brain mask")
    native_grid = Image(np.zeros(geometry.shape, np.uint8), geometry.affine) if geometry else load_image(flair_path)
    if geometry is not None and brain.shape != geometry.box.shape:
        raise GeometryError(brain_mask, "brain mask is not on the prepared grid", "re-run wmhkit prepare")
    raters = {name: _on_working_grid(Path(path), native_grid, brain, geometry) for name, path in sorted(bronze.items())}
    fuse = {"staple": staple, "staple-pruned": staple_pruned, "majority": majority_vote}[options.method]
    kwargs = {"threshold": options.threshold, "max_iterations": options.max_iterations} if fuse is not majority_vote else {}
    result: ConsensusResult = fuse(list(raters.values()), brain.array, **kwargs)
    mask = brain.with_array((result.probability > options.threshold).astype(np.uint8))
    probability = brain.with_array(result.probability.astype(np.float32))
    if geometry is not None:
        mask, probability = to_native(mask, geometry), to_native(probability, geometry)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_path = save_mask(mask, resolve_output(out_dir, "silver.nii.gz"))
    prob_path = save_image(probability, resolve_output(out_dir, "silver_prob.nii.gz"))
    performance = {name: (sens, spec) for name, sens, spec in zip(raters, result.sensitivity, result.specificity)}
    fused = dict(zip(raters, result.fused or (True,) * len(raters)))
    extra = {"raters": {name: {"sensitivity": _json_number(s), "specificity": _json_number(p), "fused": fused[name]}
                        for name, (s, p) in performance.items()},
             "volume_ml": round(float(mask.array.sum()) * mask.voxel_volume_ml, 6)}
    parameters = {"method": options.method, "threshold": options.threshold, "max_iterations": options.max_iterations,
                  "restricted_to": "brain_mask"}
    inputs = {f"bronze_{name}": path for name, path in bronze.items()} | {"brain_mask": brain_mask, "flair": flair_path}
    for path in (mask_path, prob_path):
        write_sidecar(path, step="silver", inputs=inputs, parameters=parameters, extra=extra)
    return SilverScan(mask_path, prob_path, performance)


def silver_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    options: SilverOptions = SilverOptions(),
    **compute: Unpack[ComputeArguments],
) -> SilverResult:
    """Run the silver stage over every scan of ``manifest`` (see the module docstring).

    ``compute``: where the scans run (:class:`~wmhkit.cohort.stage.ComputeArguments`).

    Raises
    ------
    OutputError
        When another run holds the lock of ``out_dir``.
    ManifestError
        For an unreadable manifest, or one without any ``bronze_<method>`` column.
    """
    compute_options = ComputeOptions(**compute)
    table = read_manifest(manifest)
    out_dir = Path(out_dir)
    columns = _bronze_columns(table, options.methods)
    scans = [StageScan(table.scan_id(row), row["subject"], row.get("session", ""),
                       _silver_job(table, row, columns, out_dir, options)) for row in table.rows()]

    def write_manifest_rows(outcomes: list[TaskOutcome[SilverScan]]) -> tuple[Path, dict[str, SilverScan], pd.DataFrame]:
        results: dict[str, SilverScan] = {}
        rows, rater_rows = [], []
        for row, outcome in zip(table.rows(), outcomes):
            new_row = rebased_row(row, table.root, out_dir)
            rows.append(new_row)
            if outcome.failure is not None:
                new_row["silver"] = ""
                continue
            result = results[outcome.key] = outcome.value
            new_row["silver"] = relative_path(result.mask, out_dir)
            new_row["silver_prob"] = relative_path(result.probability, out_dir)
            for name, (sensitivity, specificity) in result.raters.items():
                rater_rows.append({"subject": row["subject"], "session": row.get("session", ""), "method": name,
                                   "sensitivity": sensitivity, "specificity": specificity})
        raters = pd.DataFrame(rater_rows, columns=["subject", "session", "method", "sensitivity", "specificity"])
        _write_table(raters, out_dir / "raters.tsv")
        _write_table(summarise_raters(raters), out_dir / "raters_summary.tsv")
        all_columns = list(table.table.columns) + [c for c in ("silver", "silver_prob") if c not in table.table.columns]
        path = write_manifest(pd.DataFrame(rows, columns=all_columns).fillna(""), out_dir / "manifest.tsv")
        return path, results, raters

    (path, results, raters), failures = run_stage(SilverStage(options), scans, out_dir, compute_options,
                                                  write_manifest_rows)
    log.info("silver: %d of %d scan(s); manifest %s", len(results), len(scans), path)
    return SilverResult(path, results, failures, raters)


@dataclass(frozen=True)
class SilverJob:
    """One scan of a manifest run: what :class:`SilverStage` needs (picklable, small)."""

    out_dir: Path
    scan_id: str
    bronze: dict[str, Path]
    brain_mask: Path | None
    flair: Path
    options: SilverOptions


@dataclass(frozen=True)
class SilverStage(ScanStage[SilverJob, SilverScan]):
    """The silver consensus of one scan of a manifest run into ``out_dir/<scan_id>``; a failed
    scan is listed under its fusion rule (``failures.tsv`` method, crash-file section)."""

    options: SilverOptions
    step = "silver"
    outputs = "silver outputs"
    with_method = True

    @property
    def label(self) -> str:
        return self.options.method

    def expected(self, job: SilverJob, record: Path) -> dict[str, Any]:
        if job.brain_mask is None:
            raise InputError(job.flair, "the scan has no brain mask",
                             "run wmhkit prepare (or bronze), or fill the brain_mask column")
        inputs = {f"bronze_{name}": path for name, path in job.bronze.items()}
        inputs |= {"brain_mask": job.brain_mask, "flair": job.flair}
        return expected_record(record, step=self.step, inputs=inputs, parameters=job.options.to_dict())

    def compute(self, job: SilverJob) -> tuple[SilverScan, list[Path], dict[str, Any]]:
        result = silver_scan(job.bronze, resolve_output(job.out_dir, job.scan_id), brain_mask=job.brain_mask,
                             flair=job.flair, options=job.options)
        written = [result.mask, result.probability, sidecar_path(result.mask), sidecar_path(result.probability)]
        summary = {"mask": relative_path(result.mask, job.out_dir),
                   "probability": relative_path(result.probability, job.out_dir),
                   "raters": {name: [_to_json(s), _to_json(p)] for name, (s, p) in result.raters.items()}}
        return result, written, summary

    def restore(self, job: SilverJob, stored: Mapping[str, Any]) -> SilverScan:
        raters = {name: (_from_json(s), _from_json(p)) for name, (s, p) in stored["raters"].items()}
        return SilverScan(resolve_output(job.out_dir, stored["mask"]),
                          resolve_output(job.out_dir, stored["probability"]), raters)


def _silver_job(table: Manifest, row: Mapping[str, str], columns: Sequence[str], out_dir: Path,
                options: SilverOptions) -> SilverJob:
    row = dict(row)
    bronze = {c[len("bronze_"):]: table.path(row, c) for c in columns if row.get(c, "")}
    return SilverJob(out_dir, table.scan_id(row), bronze, table.path(row, "brain_mask"), table.path(row, "flair"),
                     options)


def _to_json(value: float) -> float | None:
    """A rater statistic for JSON: NaN (undefined) as None, else the exact float."""
    return None if math.isnan(value) else float(value)


def _from_json(value: float | None) -> float:
    return math.nan if value is None else float(value)


def summarise_raters(raters: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and count of each method's sensitivity and specificity over scans (NaNs skipped)."""
    if raters.empty:
        return pd.DataFrame(columns=["method", "n_scans", "sensitivity_mean", "sensitivity_sd",
                                     "specificity_mean", "specificity_sd"])
    grouped = raters.groupby("method", sort=True)
    return pd.DataFrame({
        "n_scans": grouped["sensitivity"].size(),
        "sensitivity_mean": grouped["sensitivity"].mean(), "sensitivity_sd": grouped["sensitivity"].std(),
        "specificity_mean": grouped["specificity"].mean(), "specificity_sd": grouped["specificity"].std(),
    }).reset_index()


def _bronze_columns(table: Manifest, methods: Sequence[str] | None) -> list[str]:
    present = [c for c in table.table.columns if c.startswith("bronze_")]
    if methods is not None:
        missing = [m for m in methods if f"bronze_{m}" not in present]
        if missing:
            raise InputError(table.source, f"no bronze column for method(s) {missing}; present: {present}",
                             "run wmhkit bronze with those methods or drop them from --methods")
        present = [f"bronze_{m}" for m in methods]
    if not present:
        raise InputError(table.source, "the manifest has no bronze_<method> column", "run wmhkit bronze first")
    return present


def _geometry(flair: Path) -> NativeGeometry | None:
    """The prepare record of ``flair``, or None for a native (unprepared) FLAIR."""
    return load_native_geometry(flair) if sidecar_path(flair).is_file() and _has_record(flair) else None


def _has_record(flair: Path) -> bool:
    try:
        load_native_geometry(flair)
    except InputError:
        return False
    return True


def _on_working_grid(path: Path, native_grid: Image, brain: Image, geometry: NativeGeometry | None) -> np.ndarray:
    """A 0/1 bronze mask as a boolean array on the grid of ``brain`` (prepared, or native)."""
    mask = load_mask(path)
    if mask.same_grid(brain, atol_mm=1e-3):
        return mask.array.astype(bool)
    if geometry is not None and mask.same_grid(native_grid, atol_mm=1e-3):
        return to_prepared(mask, geometry).array.astype(bool)
    raise GeometryError(
        path, f"mask grid {mask.shape} is neither the scan's native FLAIR grid {native_grid.shape} "
        f"nor its prepared grid {brain.shape}",
        "import it with wmhkit bronze (external_mask column), which resamples it onto the FLAIR grid",
    )


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    return write_text_atomic(path, frame.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))
