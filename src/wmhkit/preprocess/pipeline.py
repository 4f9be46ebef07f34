"""The ``prepare`` stage: one scan (:func:`prepare_scan`) or a whole manifest (:func:`prepare_manifest`).

Per scan, in order:

1. Load and validate every input (:func:`wmhkit.io.nifti.load_image` /
   ``load_mask``; gold may hold label 2 = other pathology). Masks must be on the
   FLAIR grid (else :class:`~wmhkit.errors.GeometryError` naming the file); a T1 on
   another grid is resampled onto the FLAIR grid (trilinear, world coordinates).
2. Reorient everything to canonical RAS+ storage order (permutations and flips
   only, exactly invertible), and put the FLAIR's air at 0 when its storage has an
   offset or a negative padding (:func:`~wmhkit.preprocess.normalize.remove_intensity_offset`).
3. N4 bias correction of the FLAIR, fitted inside the given brain mask, or else a
   rough Otsu head mask.
4. Brain mask: the given one, or :func:`~wmhkit.preprocess.brain_extraction.extract_brain`
   (the non-background region of a skull-stripped scan, else ``options.brain_extractor``,
   HD-BET by default, with a fallback) on the *bias-corrected*, RAS+ reoriented FLAIR.
   RAS+ because HD-BET was trained in that orientation; corrected first because the
   template method's refinement thresholds intensities: a bias gradient pushes tissue
   on its dark side below the threshold, while N4 itself needs no brain mask (the
   head mask suffices).
4b. When the model declares a working spacing (``PrepareOptions.working_spacing_mm``),
   resample the bias-corrected FLAIR and T1 (linear, anti-aliased when downsampling),
   the brain mask and the labels (nearest neighbour) onto the working grid
   (:func:`~wmhkit.preprocess.resample.working_grid`: thick slices keep their spacing).
   After N4 and the brain mask, not before: both work at the native resolution
   (brain extraction resamples internally, N4 shrinks), the native brain mask stays
   exact, and intensities are interpolated once, before the normalisation fixes
   their range on the grid the networks see.
5. Normalise FLAIR (and T1) inside the brain: the 0th and 98th percentiles map
   linearly to 0 and 1 with the bright tail kept above 1, not clipped (or min–max
   to [0, 1] per dataset); zero outside the brain.
6. Crop to the brain box plus a margin (or a fixed shape centred on it, zero
   padded), and write ``flair``, ``brain_mask``, ``t1`` and every label image of the
   row into ``OUT/<scan_id>/``, each with a provenance sidecar holding the
   :class:`~wmhkit.preprocess.geometry.NativeGeometry` record that maps any
   prepared-grid image back to the exact native grid
   (:func:`~wmhkit.preprocess.geometry.to_native`).

Nothing is written for a scan until all its outputs are computed. In a manifest
run one failing scan never stops the others: it is listed in ``OUT/failures.tsv``
with a traceback in ``OUT/crashes/<scan_id>.txt``, and left out of the new manifest.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wmhkit.cohort.records import expected_record
from wmhkit.cohort.runner import ComputeOptions, TaskOutcome
from wmhkit.cohort.stage import ComputeArguments, ScanStage, StageResult, StageScan, run_stage
from wmhkit.errors import ManifestError, MaskError, OutputError
from wmhkit.io.atomic import resolve_output
from wmhkit.io.image import Image, check_same_grid
from wmhkit.io.manifest import Manifest, is_path_column, read_manifest, relative_path, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.io.provenance import sidecar_path, write_sidecar
from wmhkit.preprocess.bias import N4Settings, n4_bias_correct
from wmhkit.preprocess.brain_extraction import DEFAULT_BRAIN_EXTRACTOR, check_brain_extractor, extract_brain
from wmhkit.preprocess.checks import check_flair
from wmhkit.preprocess.crop import brain_box, crop, fixed_shape_box
from wmhkit.preprocess.geometry import SIDECAR_KEY, NativeGeometry, native_geometry
from wmhkit.preprocess.normalize import (
    DEFAULT_PERCENTILES, NORMALISATIONS, intensity_range, remove_intensity_offset, rescale_to_unit,
)
from wmhkit.preprocess.orientation import reorient, to_canonical
from wmhkit.preprocess.resample import resample_linear, resample_to_grid, working_grid
from wmhkit.qc.overlay import save_overlay_png

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

#: A scan whose largest/smallest voxel spacing exceeds this ratio is flagged anisotropic.
ANISOTROPY_RATIO = 2.0
#: Label values accepted per mask role (gold: MICCAI label 2 = other pathology, kept).
GOLD_LABELS: tuple[int, ...] = (0, 1, 2)
BINARY_LABELS: tuple[int, ...] = (0, 1)
#: Manifest cells read as "true" in the ``fat_suppressed`` column.
_TRUE_CELLS = frozenset({"1", "true", "yes", "y"})
#: Brain-mask overlay written per scan (``PrepareOptions.qc_png``).
QC_PNG = "qc_brain_mask.png"


@dataclass(frozen=True)
class PrepareOptions:
    """Settings of the prepare stage (all recorded in every sidecar).

    Attributes
    ----------
    normalisation
        Default intensity normalisation, ``"percentile"`` or ``"minmax"``.
    dataset_normalisation
        Per-``dataset`` override, e.g. ``{"siteB": "minmax"}`` for a fat-suppressed site.
    percentiles
        Lower/upper percentile mapped to 0/1 by ``"percentile"``.
    n4
        Run N4 bias correction.
    n4_settings
        N4 shrink factor and iteration schedule.
    crop_margin_mm
        Margin around the brain box (mm).
    fixed_shape
        When set, the prepared grid has exactly this shape (centred on the brain
        box, zero padded); else the brain box plus margin.
    qc_png
        Write a brain-mask overlay PNG per scan.
    brain_extractor
        Brain extraction method when no brain mask is given, a name registered in
        :data:`~wmhkit.preprocess.brain_extraction.BRAIN_EXTRACTORS` (``hdbet`` or
        ``template``); the other one is the fallback. A record without this key (a
        model folder written before it existed) loads as ``hdbet``: the extractor
        only decides which voxels are brain, not what the network learnt, and the
        template method is what failed on whole-head clinical scans.
    working_spacing_mm
        Spacing (mm) along the RAS axes that the networks work at (nnU-Net's target
        spacing); None keeps the native voxels.
    thick_slice_mm
        An axis whose native spacing is at least this (mm) is a thick-slice axis: it
        keeps its native spacing on the working grid, and a model's
        ``thick_slice_planes`` rule applies to it.
    """

    normalisation: str = "percentile"
    dataset_normalisation: Mapping[str, str] = field(default_factory=dict)
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    n4: bool = True
    n4_settings: N4Settings = N4Settings()
    crop_margin_mm: float = 10.0
    fixed_shape: tuple[int, int, int] | None = None
    qc_png: bool = True
    brain_extractor: str = DEFAULT_BRAIN_EXTRACTOR
    working_spacing_mm: tuple[float, float, float] | None = None
    thick_slice_mm: float = 3.0

    def __post_init__(self) -> None:
        for method in (self.normalisation, *self.dataset_normalisation.values()):
            if method not in NORMALISATIONS:
                raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {method!r}")
        if self.fixed_shape is not None and (len(self.fixed_shape) != 3 or min(self.fixed_shape) < 1):
            raise ValueError(f"fixed_shape must be three positive sizes, got {self.fixed_shape}")
        check_brain_extractor(self.brain_extractor)
        if self.working_spacing_mm is not None and (
            len(self.working_spacing_mm) != 3 or not all(float(s) > 0 for s in self.working_spacing_mm)
        ):
            raise ValueError(f"working_spacing_mm must be three positive spacings (mm), got {self.working_spacing_mm}")
        if not float(self.thick_slice_mm) > 0:
            raise ValueError(f"thick_slice_mm must be positive, got {self.thick_slice_mm}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for sidecars."""
        record = dataclasses.asdict(self)
        record["dataset_normalisation"] = dict(sorted(self.dataset_normalisation.items()))
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "PrepareOptions":
        """Rebuild options from their :meth:`to_dict` form (e.g. a model folder's ``prepare`` entry).

        Raises
        ------
        TypeError, ValueError
            For unknown keys or invalid values.
        """
        values = dict(record)
        if "n4_settings" in values:
            n4 = dict(values["n4_settings"])
            if "iterations" in n4:
                n4["iterations"] = tuple(n4["iterations"])
            values["n4_settings"] = N4Settings(**n4)
        if "percentiles" in values:
            values["percentiles"] = tuple(values["percentiles"])
        if values.get("fixed_shape") is not None:
            values["fixed_shape"] = tuple(values["fixed_shape"])
        if values.get("working_spacing_mm") is not None:
            values["working_spacing_mm"] = tuple(float(s) for s in values["working_spacing_mm"])
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown prepare settings {unknown}; known: {sorted(f.name for f in dataclasses.fields(cls))}")
        return cls(**values)


@dataclass(frozen=True)
class PreparedScan:
    """What :func:`prepare_scan` wrote.

    Attributes
    ----------
    outputs
        Role (``flair``, ``brain_mask``, ``t1``, ``gold``, ``bronze_<m>``, ...) → file.
    geometry
        The record mapping prepared images back to the native grid.
    brain_mask_source
        ``"given"``, or the brain extraction method actually used (``"nonzero"``,
        ``"hdbet"``, ``"template"``, ``"template (fallback from hdbet)"``, ...).
    anisotropic
        True when the native voxels are anisotropic beyond :data:`ANISOTROPY_RATIO`.
    """

    outputs: dict[str, Path]
    geometry: NativeGeometry
    brain_mask_source: str
    anisotropic: bool


def prepare_scan(
    flair: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    t1: str | os.PathLike[str] | None = None,
    brain_mask: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str | os.PathLike[str]] | None = None,
    normalisation: str | None = None,
    options: PrepareOptions = PrepareOptions(),
) -> PreparedScan:
    """Prepare one scan into ``out_dir`` (see the module docstring for the steps).

    Parameters
    ----------
    flair
        Native FLAIR file.
    out_dir
        Folder for this scan's outputs (created); must not hold any of the inputs.
    t1
        Optional T1 (any grid in the same world space).
    brain_mask
        Optional brain mask on the FLAIR grid; computed when absent.
    labels
        Label images on the FLAIR grid by role (``gold`` may hold 0/1/2; other
        roles such as ``silver`` or ``bronze_<method>`` are binary).
    normalisation
        ``"percentile"`` or ``"minmax"``; default ``options.normalisation``.
    options
        Stage settings.

    Returns
    -------
    PreparedScan

    Raises
    ------
    InputError, HeaderError, GeometryError, MaskError
        Naming the offending file.
    OutputError
        When an output would overwrite an input.
    """
    method = normalisation or options.normalisation
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {method!r}")
    flair_path = Path(flair)
    label_paths = {role: Path(path) for role, path in (labels or {}).items()}
    inputs: dict[str, Path] = {"flair": flair_path, **label_paths}
    if t1 is not None:
        inputs["t1"] = Path(t1)
    if brain_mask is not None:
        inputs["brain_mask"] = Path(brain_mask)
    out_dir = Path(out_dir)
    _check_outputs_not_inputs(out_dir, inputs.values())

    native_flair = load_image(flair_path)
    check_flair(native_flair, flair_path, brain_mask_given=brain_mask is not None)
    spacing = native_flair.spacing_mm
    anisotropic = max(spacing) / min(spacing) > ANISOTROPY_RATIO
    if anisotropic:
        log.info("%s: anisotropic voxels %s mm", flair_path, spacing)
    native_labels = {
        role: _load_label(path, native_flair, GOLD_LABELS if role == "gold" else BINARY_LABELS)
        for role, path in sorted(label_paths.items())
    }
    given_mask = None if brain_mask is None else _load_label(Path(brain_mask), native_flair, BINARY_LABELS)
    if given_mask is not None and not given_mask.array.any():
        raise MaskError(brain_mask, "the brain mask is empty", "provide a non-empty brain mask or leave the cell empty")
    native_t1 = None if t1 is None else _load_t1(Path(t1), native_flair)

    canonical_flair, ornt = to_canonical(native_flair)
    labels_canonical = {role: reorient(image, ornt) for role, image in native_labels.items()}
    t1_canonical = None if native_t1 is None else reorient(native_t1, ornt)
    mask_canonical = None if given_mask is None else reorient(given_mask, ornt)

    # N4 and brain extraction need air at 0 whatever the storage (offset, z-scoring, padding).
    canonical_flair = canonical_flair.with_array(remove_intensity_offset(canonical_flair.array))
    if options.n4:
        fit_mask = None if mask_canonical is None else mask_canonical.array
        canonical_flair = n4_bias_correct(canonical_flair, mask=fit_mask, settings=options.n4_settings)
    if mask_canonical is None:
        extraction = extract_brain(canonical_flair, t1=t1_canonical, method=options.brain_extractor, source=flair_path)
        mask_canonical, mask_source = extraction.mask, extraction.method
    else:
        mask_source = "given"
    brain_volume_ml = float(np.count_nonzero(mask_canonical.array)) * mask_canonical.voxel_volume_ml  # native grid
    brain = mask_canonical.array
    working = working_grid(canonical_flair, options.working_spacing_mm, options.thick_slice_mm)
    if working is not None:
        log.info("%s: resampling %s mm voxels to the working spacing %s mm", flair_path, canonical_flair.spacing_mm,
                 tuple(round(float(s), 4) for s in np.linalg.norm(working[1][:3, :3], axis=0)))
        canonical_flair = resample_to_grid(canonical_flair, *working)
        t1_canonical = None if t1_canonical is None else resample_to_grid(t1_canonical, *working)
        mask_canonical = resample_to_grid(mask_canonical, *working, labels=True)
        labels_canonical = {role: resample_to_grid(image, *working, labels=True)
                            for role, image in labels_canonical.items()}
        brain = mask_canonical.array

    low, high = intensity_range(canonical_flair.array, brain, method=method, percentiles=options.percentiles)
    prepared = {"flair": canonical_flair.with_array(rescale_to_unit(canonical_flair.array, brain, low, high))}
    if t1_canonical is not None:
        t1_low, t1_high = intensity_range(t1_canonical.array, brain, method=method, percentiles=options.percentiles)
        prepared["t1"] = t1_canonical.with_array(rescale_to_unit(t1_canonical.array, brain, t1_low, t1_high))
    prepared["brain_mask"] = mask_canonical.with_array(brain.astype(np.uint8))
    prepared.update(labels_canonical)

    box = brain_box(mask_canonical, margin_mm=options.crop_margin_mm)
    if options.fixed_shape is not None:
        box = fixed_shape_box(box, tuple(options.fixed_shape))  # type: ignore[arg-type]
    geometry = native_geometry(native_flair, ornt, box, working)
    cropped = {role: crop(image, box) for role, image in prepared.items()}

    outputs = _write_outputs(cropped, out_dir)
    extra = {
        SIDECAR_KEY: geometry.to_dict(),
        "spacing_mm": list(spacing),
        "prepared_spacing_mm": list(canonical_flair.spacing_mm),
        "anisotropic": anisotropic,
        "brain_mask_source": mask_source,
        "brain_volume_ml": round(brain_volume_ml, 3),
        "normalisation": {"method": method, "flair_range": [low, high]},
        "outputs": {role: path.name for role, path in sorted(outputs.items())},
    }
    parameters = options.to_dict() | {"normalisation": method}
    for path in outputs.values():
        write_sidecar(path, step="prepare", inputs=inputs, parameters=parameters, extra=extra)
    if options.qc_png:
        save_overlay_png(cropped["flair"], out_dir / QC_PNG, masks={"brain_mask": cropped["brain_mask"]})
    return PreparedScan(outputs, geometry, extra["brain_mask_source"], anisotropic)


def prepare_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    options: PrepareOptions = PrepareOptions(),
    **compute: Unpack[ComputeArguments],
) -> StageResult[PreparedScan]:
    """Prepare every scan of ``manifest`` into ``out_dir`` and write ``out_dir/manifest.tsv``.

    The new manifest keeps every original column and row order (failed scans left
    out); path columns point at the prepared files (relative to the new manifest),
    ``brain_mask`` is filled for every scan, and a ``native_<column>`` column points
    back at each original file. Other columns holding paths to existing files
    (e.g. ``true_brain_mask`` of phantoms) are rewritten relative to the new manifest.

    The normalisation of a row is, in order of precedence: its ``normalisation``
    cell, ``options.dataset_normalisation[dataset]``, ``minmax`` when its
    ``fat_suppressed`` cell is true, else ``options.normalisation``.

    Scans run through :func:`wmhkit.cohort.stage.run_stage` (lock, completion records, reruns), where
    ``compute`` says (:class:`~wmhkit.cohort.stage.ComputeArguments`); the outputs are the same.

    Returns
    -------
    StageResult
        The new manifest, scan → :class:`PreparedScan`, and one :class:`ScanFailure` per scan that failed (also in ``out_dir/failures.tsv``).

    Raises
    ------
    OutputError
        When ``out_dir`` is the manifest's folder (inputs would be overwritten), or
        another run holds its lock.
    ManifestError
        For an unreadable manifest.
    ValueError
        For invalid ``workers``, ``memory_limit`` or ``threads_per_worker``.
    """
    compute_options = ComputeOptions(**compute)
    table = read_manifest(manifest)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} exists and is not a folder; choose a folder for --out")
    if out_dir.resolve() == table.root.resolve():
        raise OutputError(
            f"output folder {out_dir} is the input manifest's folder; choose another folder so inputs stay untouched"
        )
    scans = [StageScan.build(table.scan_id(row), row["subject"], row.get("session", ""),
                             functools.partial(_prepare_job, table, row, index, out_dir, options))
             for index, row in enumerate(table.rows(), start=1)]

    def write_prepared_manifest(outcomes: list[TaskOutcome[PreparedScan]]) -> tuple[Path, dict[str, PreparedScan]]:
        prepared = {o.key: o.value for o in outcomes if o.failure is None}
        rows = [_prepared_row(table, row, prepared[o.key], out_dir)
                for row, o in zip(table.rows(), outcomes) if o.failure is None]
        return write_manifest(_prepared_table(table, rows), out_dir / "manifest.tsv"), prepared

    (manifest_path, prepared), failures = run_stage(PrepareStage(), scans, out_dir, compute_options,
                                                    write_prepared_manifest)
    log.info("prepared %d of %d scans into %s", len(prepared), len(table), out_dir)
    return StageResult(manifest_path, prepared, failures)


@dataclass(frozen=True)
class PrepareJob:
    """One scan of a manifest run: what :class:`PrepareStage` needs (picklable, small)."""

    out_dir: Path
    scan_id: str
    flair: Path
    t1: Path | None
    brain_mask: Path | None
    labels: dict[str, Path]
    normalisation: str
    options: PrepareOptions


class PrepareStage(ScanStage[PrepareJob, PreparedScan]):
    """Prepare one scan of a manifest run into ``out_dir/<scan_id>``."""

    step = "prepare"
    outputs = "prepared outputs"

    def expected(self, job: PrepareJob, record: Path) -> dict[str, Any]:
        inputs = {"flair": job.flair, "t1": job.t1, "brain_mask": job.brain_mask, **job.labels}
        parameters = job.options.to_dict() | {"normalisation": job.normalisation}
        return expected_record(record, step=self.step, inputs=inputs, parameters=parameters)

    def compute(self, job: PrepareJob) -> tuple[PreparedScan, list[Path], dict[str, Any]]:
        scan_dir = resolve_output(job.out_dir, job.scan_id)
        result = prepare_scan(job.flair, scan_dir, t1=job.t1, brain_mask=job.brain_mask, labels=job.labels,
                              normalisation=job.normalisation, options=job.options)
        written = [*result.outputs.values(), *(sidecar_path(p) for p in result.outputs.values())]
        if job.options.qc_png:
            written.append(scan_dir / QC_PNG)
        summary = {"outputs": {role: relative_path(path, job.out_dir) for role, path in sorted(result.outputs.items())},
                   "geometry": result.geometry.to_dict(), "brain_mask_source": result.brain_mask_source,
                   "anisotropic": result.anisotropic}
        return result, written, summary

    def restore(self, job: PrepareJob, stored: Mapping[str, Any]) -> PreparedScan:
        outputs = {role: resolve_output(job.out_dir, relative) for role, relative in stored["outputs"].items()}
        return PreparedScan(outputs, NativeGeometry.from_dict(stored["geometry"]), stored["brain_mask_source"],
                            bool(stored["anisotropic"]))


def _prepare_job(table: Manifest, row: Mapping[str, str], index: int, out_dir: Path,
                 options: PrepareOptions) -> PrepareJob:
    return PrepareJob(out_dir, table.scan_id(dict(row)), table.path(dict(row), "flair"), table.path(dict(row), "t1"),
                      table.path(dict(row), "brain_mask"), _row_labels(table, row),
                      row_normalisation(table, row, index, options), options)


def _load_label(path: Path, flair: Image, allowed: tuple[int, ...]) -> Image:
    label = load_mask(path, allowed_labels=allowed)
    check_same_grid(flair, label, path)
    return label


def _load_t1(path: Path, flair: Image) -> Image:
    t1 = load_image(path)
    if t1.same_grid(flair):
        return t1
    log.info("%s: T1 grid %s differs from the FLAIR grid %s; resampling (trilinear)", path, t1.shape, flair.shape)
    return resample_linear(t1, flair)


def _check_outputs_not_inputs(out_dir: Path, inputs: Any) -> None:
    resolved_inputs = {Path(p).resolve() for p in inputs}
    resolved_out = out_dir.resolve()
    clashes = sorted(str(p) for p in resolved_inputs if p.parent == resolved_out)
    if clashes:
        raise OutputError(f"output folder {out_dir} holds input file(s) {clashes}; choose another output folder")


def _write_outputs(cropped: Mapping[str, Image], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for role, image in cropped.items():
        path = resolve_output(out_dir, f"{role}.nii.gz")
        if image.array.dtype == np.uint8:
            save_mask(image, path)
        else:
            save_image(image, path)
        outputs[role] = path
    return outputs


def row_normalisation(table: Manifest, row: Mapping[str, str], index: int, options: PrepareOptions) -> str:
    """The normalisation of manifest row ``index`` (1-based): its ``normalisation`` cell, else the
    dataset override, else ``minmax`` for a fat-suppressed row, else the default (see :func:`prepare_manifest`)."""
    cell = row.get("normalisation", "").strip().lower()
    if cell:
        if cell not in NORMALISATIONS:
            raise ManifestError(table.source, f"normalisation {cell!r} is not one of {NORMALISATIONS}",
                                "use percentile or minmax, or leave the cell empty", row=index)
        return cell
    dataset = row.get("dataset", "")
    if dataset in options.dataset_normalisation:
        return options.dataset_normalisation[dataset]
    if row.get("fat_suppressed", "").strip().lower() in _TRUE_CELLS:
        return "minmax"
    return options.normalisation


def _row_labels(table: Manifest, row: Mapping[str, str]) -> dict[str, Path]:
    roles = [c for c in table.table.columns if is_path_column(c) and c not in ("flair", "t1", "brain_mask")]
    return {role: path for role in roles if (path := table.path(dict(row), role)) is not None}


def _prepared_row(table: Manifest, row: Mapping[str, str], result: PreparedScan, out_dir: Path) -> dict[str, str]:
    new = dict(row)
    for column, cell in row.items():
        if not cell:
            continue
        original = table.root / cell
        if column in result.outputs:
            new[f"native_{column}"] = relative_path(original, out_dir)
        elif not is_path_column(column) and original.is_file():
            new[column] = relative_path(original, out_dir)
    for role, path in result.outputs.items():
        new[role] = relative_path(path, out_dir)
    return new


def _prepared_table(table: Manifest, rows: list[dict[str, str]]) -> pd.DataFrame:
    columns = list(table.table.columns)
    for column in ("brain_mask", *[f"native_{c}" for c in table.table.columns if is_path_column(c)]):
        if column not in columns:
            columns.append(column)
    return pd.DataFrame([{c: row.get(c, "") for c in columns} for row in rows], columns=columns, dtype=str)
