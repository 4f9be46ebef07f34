"""The ``bronze`` stage: classical WMH masks for every scan of a manifest, in each scan's native space.

Input: a manifest written by ``wmhkit prepare`` (its FLAIR sidecars hold the
native-geometry record), or a raw manifest, which is then prepared first into
``OUT/prepared`` with prepare's defaults — one command for users who do not need
other prepare settings.

Per scan, each requested method (:data:`~wmhkit.bronze.methods.METHODS`) runs on
the prepared grid (bias-corrected, brain-masked, canonical; prepare keeps the
bright tail above 1, so lesions brighter than the 98th percentile stay distinct); its mask is
mapped back exactly onto the native FLAIR grid and written as
``OUT/<scan_id>/bronze_<method>.nii.gz`` (uint8, the native FLAIR's affine) with a
provenance sidecar; a method whose mask thresholds a lesion probability (``lpa``)
also writes that map as ``bronze_<method>_prob.nii.gz`` (float32, named in the sidecar).
External tools' outputs named in ``external_<kind>`` columns
(:mod:`wmhkit.bronze.external`) are imported as ``bronze_<kind>``.

Without ``methods`` the :data:`~wmhkit.bronze.methods.DEFAULT_METHODS` run; a
method named explicitly that a scan cannot run (``t1hypo`` without a T1) is a
failure of that scan and method. A T1 whose native grid differs from the
FLAIR's is rigidly registered to the FLAIR first (``register_t1``).

Output: ``OUT/manifest.tsv`` — the input rows with ``bronze_<method>`` columns
added (an empty cell where a method failed or did not apply), its paths
rewritten for ``OUT`` (any folder; see :func:`~wmhkit.io.manifest.relative_path`);
when ``OUT/manifest.tsv`` is the input manifest it is replaced by the updated one. Failures never stop the cohort: one row per failed
(scan, method) in ``OUT/failures.tsv``, tracebacks in ``OUT/crashes/<scan_id>.txt``.

Scans run through :func:`wmhkit.cohort.stage.run_stage` (completion records, reruns); a scan
with a failed method gets no record, so a rerun tries it again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np
import pandas as pd

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.external import EXTERNAL_KINDS, import_external
from wmhkit.bronze.methods import DEFAULT_METHODS, METHODS, bronze_method
from wmhkit.bronze.register import register_rigid
from wmhkit.cohort.failures import ErrorReport, ScanFailure
from wmhkit.cohort.records import expected_record
from wmhkit.cohort.runner import ComputeOptions, TaskOutcome
from wmhkit.cohort.stage import ComputeArguments, ScanStage, StageResult, StageScan, run_stage
from wmhkit.errors import InputError, OutputError
from wmhkit.io.atomic import resolve_output
from wmhkit.io.image import Image
from wmhkit.io.manifest import Manifest, read_manifest, relative_path, write_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.io.provenance import sidecar_path, write_sidecar
from wmhkit.preprocess.brain_extraction import DEFAULT_BRAIN_EXTRACTOR
from wmhkit.preprocess.geometry import SIDECAR_KEY, load_native_geometry, to_native
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

#: Manifest column prefix naming an external tool's output (``external_freesurfer``, ...).
EXTERNAL_PREFIX = "external_"
REGISTER_CHOICES: tuple[str, ...] = ("auto", "always", "never")


@dataclass(frozen=True)
class BronzeOptions:
    """Settings of the bronze stage (recorded in every sidecar).

    Attributes
    ----------
    methods
        Methods to run; None runs every method each scan's inputs allow.
    thresholds
        Probability threshold per external kind (``lst``, ``bianca``); defaults per kind.
    register_t1
        ``auto``: register a T1 whose native grid differs from the FLAIR's;
        ``always`` / ``never``.
    seed
        Seed of the tissue model's fitting subsample.
    """

    methods: tuple[str, ...] | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    register_t1: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.methods is not None:
            if not self.methods:
                raise ValueError("methods is empty; name at least one method or pass None for all")
            for name in self.methods:
                bronze_method(name)
        if self.register_t1 not in REGISTER_CHOICES:
            raise ValueError(f"register_t1 must be one of {REGISTER_CHOICES}, got {self.register_t1!r}")
        for kind in self.thresholds:
            if EXTERNAL_KINDS.get(kind) is None:
                raise ValueError(f"no threshold applies to external kind {kind!r}; thresholds exist for lst and bianca")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for completion records."""
        return {"methods": None if self.methods is None else list(self.methods),
                "thresholds": dict(sorted(self.thresholds.items())), "register_t1": self.register_t1,
                "seed": self.seed}


@dataclass(frozen=True)
class BronzeScanResult:
    """What :func:`bronze_scan` produced: files, seconds and errors (one-line message and traceback) per method."""

    outputs: dict[str, Path]
    seconds: dict[str, float]
    errors: dict[str, ErrorReport]


def bronze_scan(
    flair: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    brain_mask: str | os.PathLike[str],
    t1: str | os.PathLike[str] | None = None,
    native_flair: str | os.PathLike[str] | None = None,
    native_t1: str | os.PathLike[str] | None = None,
    externals: Mapping[str, str | os.PathLike[str]] | None = None,
    options: BronzeOptions = BronzeOptions(),
) -> BronzeScanResult:
    """Bronze masks of one prepared scan, written in its native space into ``out_dir``.

    Parameters
    ----------
    flair, brain_mask, t1
        The prepared FLAIR (its sidecar holds the native-geometry record), brain
        mask and optional T1 (all on the prepared grid).
    native_flair
        The original FLAIR; with ``native_t1``, its grid decides whether the T1 is registered (``auto``).
    native_t1
        The original T1; its grid decides whether the T1 is registered (``auto``).
    externals
        External kind → tool output file (see :mod:`wmhkit.bronze.external`).
    options
        Stage settings.

    Returns
    -------
    BronzeScanResult
        Methods that failed are in ``errors``, not raised, so the others still run.

    Raises
    ------
    InputError, MaskError, GeometryError
        When the scan itself cannot be read (no method can run).
    """
    out_dir = Path(out_dir)
    flair_path = Path(flair)
    geometry = load_native_geometry(flair_path)
    prepared_flair = load_image(flair_path)
    brain = load_mask(brain_mask)
    if not brain.same_grid(prepared_flair):
        raise InputError(brain_mask, "brain mask is not on the prepared FLAIR's grid", "re-run wmhkit prepare")
    if not brain.array.any():
        raise InputError(brain_mask, "the brain mask is empty", "re-run wmhkit prepare or give a non-empty brain mask")
    methods = _scan_methods(options.methods, has_t1=t1 is not None)
    t1_image, t1_note = (None, None)
    if t1 is not None:  # the FLAIR methods' tissue model uses it too
        t1_image, t1_note = _t1_on_flair(Path(t1), native_t1, native_flair, prepared_flair, brain.array, options)
    scan = ScanContext(prepared_flair, brain.array, t1_image, seed=options.seed)
    inputs = {"flair": flair_path, "brain_mask": Path(brain_mask)}
    if native_flair is not None:
        inputs["native_flair"] = Path(native_flair)
    if t1 is not None:
        inputs["t1"] = Path(t1)
    outputs: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, ErrorReport] = {}
    for name in methods:
        method = METHODS[name]
        start = time.perf_counter()
        try:
            mask = method.run(scan)
            native = to_native(prepared_flair.with_array(mask.astype(np.uint8)), geometry)
            path = _save(native, out_dir, name)
            extra = {"method": method.summary, "tissue_model": _tissue_summary(scan, method.needs_t1),
                     "t1_alignment": t1_note, "volume_ml": round(float(native.array.sum()) * native.voxel_volume_ml, 6)}
            if method.probability is not None:  # beside the mask, not a manifest column (silver fuses masks)
                probability = to_native(prepared_flair.with_array(method.probability(scan, method.parameters)), geometry)
                extra["probability"] = save_image(probability, resolve_output(out_dir, f"bronze_{name}_prob.nii.gz")).name
            write_sidecar(path, step=f"bronze_{name}", inputs=inputs, seed=options.seed,
                          parameters=method.parameter_dict(), extra=extra)
            outputs[name] = path
        except Exception as exc:  # recorded per method; the other methods still run
            log.error("%s: bronze %s failed: %s", flair_path.parent.name, name, exc)
            errors[name] = ErrorReport.from_exception(exc)
        seconds[name] = time.perf_counter() - start
    native_grid = Image(np.zeros(geometry.shape, np.uint8), geometry.affine)
    for kind, path in sorted((externals or {}).items()):
        start = time.perf_counter()
        try:
            imported = import_external(path, native_grid, kind, threshold=options.thresholds.get(kind))
            written = _save(imported, out_dir, kind)
            write_sidecar(written, step=f"bronze_{kind}", inputs={"external": path, "flair": flair_path},
                          parameters={"kind": kind, "threshold": options.thresholds.get(kind, EXTERNAL_KINDS[kind])})
            outputs[kind] = written
        except Exception as exc:  # recorded per external mask
            log.error("%s: importing %s mask %s failed: %s", flair_path.parent.name, kind, path, exc)
            errors[kind] = ErrorReport.from_exception(exc)
        seconds[kind] = time.perf_counter() - start
    return BronzeScanResult(outputs, seconds, errors)


def bronze_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    options: BronzeOptions = BronzeOptions(),
    brain_extractor: str = DEFAULT_BRAIN_EXTRACTOR,
    **compute: Unpack[ComputeArguments],
) -> StageResult[BronzeScanResult]:
    """Run the bronze stage over every scan of ``manifest`` (see the module docstring).

    ``brain_extractor`` names the brain extraction of a raw manifest's scans that
    have no brain mask (:mod:`wmhkit.preprocess.brain_extraction`); it does not
    apply to a prepared manifest.

    ``compute``: where the scans run (:class:`~wmhkit.cohort.stage.ComputeArguments`).

    Returns
    -------
    StageResult
        The written manifest, per-scan results and one failure per failed
        (scan, method) — also in ``out_dir/failures.tsv``.

    Raises
    ------
    OutputError
        When ``out_dir`` is the raw manifest's folder, or another run holds its lock.
    ManifestError
        For an unreadable manifest.
    """
    compute_options = ComputeOptions(**compute)
    out_dir = Path(out_dir)
    table = read_manifest(manifest)
    failures: list[ScanFailure] = []
    if not is_prepared(table):
        if Path(os.path.abspath(out_dir)) == Path(os.path.abspath(table.root)):
            raise OutputError(f"output folder {out_dir} is the raw manifest's folder; choose another folder")
        log.info("%s is not prepared; preparing it into %s", manifest, out_dir / "prepared")
        prepared = prepare_manifest(manifest, out_dir / "prepared",
                                    options=PrepareOptions(brain_extractor=brain_extractor), **compute)
        failures += [dataclasses.replace(failure, method="prepare") for failure in prepared.failures]
        table = read_manifest(prepared.manifest)
    externals = [c for c in table.table.columns if c.startswith(EXTERNAL_PREFIX)]
    for column in externals:
        if column[len(EXTERNAL_PREFIX):] not in EXTERNAL_KINDS:
            raise InputError(table.source, f"column {column!r} names no known external kind",
                             f"name it external_<kind> with kind one of {', '.join(EXTERNAL_KINDS)}")
    scans = [StageScan(table.scan_id(row), row["subject"], row.get("session", ""),
                       _bronze_job(table, row, externals, out_dir, options)) for row in table.rows()]

    def write_manifest_rows(outcomes: list[TaskOutcome[BronzeScanResult]]) -> tuple[Path, dict[str, BronzeScanResult]]:
        results: dict[str, BronzeScanResult] = {}
        rows = []
        for row, outcome in zip(table.rows(), outcomes):
            result = outcome.value if outcome.failure is None else BronzeScanResult({}, {}, {"all": outcome.failure})
            results[outcome.key] = result
            new_row = rebased_row(row, table.root, out_dir)
            for name, path in result.outputs.items():
                new_row[f"bronze_{name}"] = relative_path(path, out_dir)
            rows.append(new_row)
        columns = list(table.table.columns)
        columns += sorted({c for r in rows for c in r} - set(columns))
        return write_manifest(pd.DataFrame(rows, columns=columns).fillna(""), out_dir / "manifest.tsv"), results

    (path, results), failures = run_stage(BronzeStage(), scans, out_dir, compute_options, write_manifest_rows,
                                          failures=failures)
    log.info("bronze: %d scan(s), %d failure(s); manifest %s", len(results), len(failures), path)
    return StageResult(path, results, failures)


@dataclass(frozen=True)
class BronzeJob:
    """One scan of a manifest run: what :class:`BronzeStage` needs (picklable, small)."""

    out_dir: Path
    scan_id: str
    flair: Path
    brain_mask: Path
    t1: Path | None
    native_flair: Path | None
    native_t1: Path | None
    externals: dict[str, Path]
    options: BronzeOptions


class BronzeStage(ScanStage[BronzeJob, BronzeScanResult]):
    """Bronze masks of one scan of a manifest run into ``out_dir/<scan_id>``; a completion record
    is committed only when every method succeeded (a failed method is retried by a rerun)."""

    step = "bronze"
    outputs = "bronze masks"
    with_method = True
    label = "all"

    def expected(self, job: BronzeJob, record: Path) -> dict[str, Any]:
        inputs = {"flair": job.flair, "brain_mask": job.brain_mask, "t1": job.t1, "native_flair": job.native_flair,
                  "native_t1": job.native_t1, **{f"external_{kind}": path for kind, path in job.externals.items()}}
        methods = _scan_methods(job.options.methods, has_t1=job.t1 is not None)
        parameters = {"options": job.options.to_dict(),
                      "methods": {name: METHODS[name].parameter_dict() for name in methods}}
        return expected_record(record, step=self.step, inputs=inputs, parameters=parameters)

    def compute(self, job: BronzeJob) -> tuple[BronzeScanResult, list[Path] | None, dict[str, Any]]:
        result = bronze_scan(job.flair, resolve_output(job.out_dir, job.scan_id), brain_mask=job.brain_mask,
                             t1=job.t1, native_flair=job.native_flair, native_t1=job.native_t1,
                             externals=job.externals, options=job.options)
        written = [*result.outputs.values(), *(sidecar_path(p) for p in result.outputs.values())]
        summary = {"outputs": {name: relative_path(p, job.out_dir) for name, p in sorted(result.outputs.items())},
                   "seconds": {name: round(t, 3) for name, t in sorted(result.seconds.items())}}
        return result, None if result.errors else written, summary

    def restore(self, job: BronzeJob, stored: Mapping[str, Any]) -> BronzeScanResult:
        outputs = {name: resolve_output(job.out_dir, relative) for name, relative in stored["outputs"].items()}
        return BronzeScanResult(outputs, {name: float(t) for name, t in stored["seconds"].items()}, {})

    def errors(self, result: BronzeScanResult) -> dict[str, ErrorReport]:
        return result.errors


def _bronze_job(table: Manifest, row: Mapping[str, str], externals: list[str], out_dir: Path,
                options: BronzeOptions) -> BronzeJob:
    return BronzeJob(
        out_dir, table.scan_id(dict(row)), table.path(dict(row), "flair"), table.path(dict(row), "brain_mask"),
        table.path(dict(row), "t1"), _text_path(table.root, row.get("native_flair", "")),
        _text_path(table.root, row.get("native_t1", "")),
        {c[len(EXTERNAL_PREFIX):]: p for c in externals if (p := _text_path(table.root, row.get(c, ""))) is not None},
        options,
    )


def is_prepared(table: Manifest) -> bool:
    """True when every FLAIR of ``table`` has a prepare sidecar with a native-geometry record."""
    for row in table.rows():
        sidecar = sidecar_path(table.path(row, "flair"))
        try:
            if SIDECAR_KEY not in json.loads(sidecar.read_text(encoding="utf-8")):
                return False
        except (OSError, json.JSONDecodeError):
            return False
    return True


def _scan_methods(requested: tuple[str, ...] | None, *, has_t1: bool) -> list[str]:
    if requested is not None:
        return list(requested)
    return [name for name in DEFAULT_METHODS if has_t1 or not METHODS[name].needs_t1]


def _t1_on_flair(
    t1: Path, native_t1: str | os.PathLike[str] | None, native_flair: str | os.PathLike[str] | None,
    flair: Image, brain: np.ndarray, options: BronzeOptions,
) -> tuple[Image, str]:
    """The prepared T1, rigidly registered to the FLAIR when its native grid differed (or always)."""
    image = load_image(t1)
    if not image.same_grid(flair):
        raise InputError(t1, f"prepared T1 grid {image.shape} is not the prepared FLAIR's {flair.shape}",
                         "re-run wmhkit prepare")
    register = options.register_t1 == "always"
    if options.register_t1 == "auto" and native_t1 is not None and native_flair is not None:
        register = not _same_native_grid(Path(native_t1), Path(native_flair))
    if not register:
        return image, "on the FLAIR grid"
    return register_rigid(image, flair, brain), "rigidly registered to the FLAIR (Mattes MI)"


def _same_native_grid(a: Path, b: Path) -> bool:
    """True when two NIfTI headers describe the same grid (headers only, data not read)."""
    first, second = nib.load(str(a)), nib.load(str(b))
    return first.shape[:3] == second.shape[:3] and bool(np.allclose(first.affine, second.affine, atol=1e-3))


def _tissue_summary(scan: ScanContext, t1_only: bool) -> dict:
    model = scan.t1_tissue if t1_only else scan.tissue
    return {"features": list(model.features), "spatial_priors": model.spatial_priors, **model.summary()}


def _save(native: Image, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_mask(native, resolve_output(out_dir, f"bronze_{name}.nii.gz"))


def _text_path(root: Path, cell: str) -> Path | None:
    """A path held in a free-text column (``native_flair``, ``external_*``), relative to ``root``."""
    return (root / cell) if cell else None


def rebased_row(row: Mapping[str, str], old_root: Path, new_root: Path) -> dict[str, str]:
    """``row`` with every cell naming an existing file rewritten relative to ``new_root``."""
    if Path(os.path.abspath(old_root)) == Path(os.path.abspath(new_root)):
        return dict(row)
    rebased = {}
    for column, cell in row.items():
        target = old_root / cell if cell else None
        rebased[column] = relative_path(target, new_root) if target is not None and target.is_file() else cell
    return rebased
