"""The ``predict`` stage: a model folder and FLAIR scans in, native-space WMH masks and volumes out.

Per scan (``<name>`` = the manifest's ``subject[_session]``, or the input file's stem,
prefixed by the folders that tell files apart when stems collide: :func:`distinct_names`):

1. prepare it exactly as in training (the model's ``prepare`` settings; a
   manifest row's T1, brain mask and normalisation are used as ``prepare`` would)
   into a temporary folder under ``OUT``;
   (on the model's working grid when its ``prepare`` declares a working spacing);
2. segment it on the prepared grid with the predictor of the model's ``kind``
   (:mod:`wmhkit.models.predictors`);
3. map the maps back onto the exact native grid (:func:`~wmhkit.preprocess.geometry.to_native`:
   exact without a working grid, else linear for probabilities and nearest for masks);
   a 2.5D model's fused probability is thresholded there, inside the brain mask, so
   the mask is the scan's own-grid mask whatever grid the networks ran on;
4. measure the volumes on the native grid (:mod:`wmhkit.infer.volumes`, voxel
   volume from the native affine), and write, atomically, ``OUT/<name>_wmh.nii.gz`` (uint8), ``OUT/<name>_wmhprob.nii.gz``
   (float32) and, for weak-label models, ``OUT/<name>_attention.nii.gz`` (float32), each
   with a JSON sidecar (inputs and their sha256, model hash, parameters, versions,
   device, the scan's volumes and flags), and a QC picture ``OUT/qc/<name>_wmh.png``
   (:func:`write_qc_mosaic`). A write failing midway (a full disk) names the file and
   removes the scan's maps and sidecars written so far, so no mask lacks its sidecar.

A scan that runs but whose volumes should not be trusted is flagged (a warning,
and the ``flags`` column of ``volumes.csv``): voxels coarser than WMH models
resolve, or a T1's contrast instead of a FLAIR's (:mod:`wmhkit.preprocess.checks`).

A Fazekas-grade model (``target.labels: fazekas``) predicts a grade, not a volume:
it writes only the attention map, its ``volumes.csv`` row has ``predicted_grade``
and empty volume cells (there is no mask to measure).

Then ``OUT/volumes.csv`` (one row per scan, sorted by subject and session, fixed
columns :data:`CSV_COLUMNS`, formula-safe cells) and ``OUT/failures.tsv`` are
written. Scans run through :func:`wmhkit.cohort.stage.run_stage` (in-process, or Dask
workers, each loading the model once; completion records hold the model hash and device too,
crash files, reruns).

For weak-label volume models the probability map is the binary segmentation as
float32 (a GP-Unet gives an attention map, written as ``<name>_attention.nii.gz``,
not a calibrated probability) and
``model_volume_ml`` holds the volume the model regresses; ``wmh_ml`` is always the
volume of the written mask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from wmhkit.cohort.cache import process_cached
from wmhkit.cohort.failures import ScanFailure
from wmhkit.cohort.records import expected_record, record_path
from wmhkit.cohort.runner import ComputeOptions, TaskOutcome
from wmhkit.cohort.stage import ComputeArguments, ScanStage, StageScan, run_stage
from wmhkit.errors import InputError, OutputError
from wmhkit.infer.volumes import DEFAULT_PV_DISTANCE_MM, VOLUME_COLUMNS, estimate_ventricles, wmh_volumes
from wmhkit.io.atomic import resolve_output
from wmhkit.io.image import Image
from wmhkit.io.manifest import is_valid_id, read_manifest
from wmhkit.io.nifti import load_image, load_mask, nifti_stem, save_image, save_mask
from wmhkit.io.provenance import sidecar_path, write_sidecar
from wmhkit.models.folder import MODEL_YAML, ModelSpec, model_hash, read_model_spec, resolve_device
from wmhkit.models.predictors import PredictOptions, Predictor, ScanPrediction, load_predictor
from wmhkit.nn.plane_fusion import binarise, check_fusion_rule, check_threshold
from wmhkit.nn.planes import DEFAULT_BATCH_SIZE, PRECISIONS
from wmhkit.preprocess.checks import scan_flags
from wmhkit.preprocess.geometry import NativeGeometry, to_native
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_scan, row_normalisation
from wmhkit.qc.overlay import save_overlay_png
from wmhkit.stats.tables import write_csv
from wmhkit.torch_threads import torch_threads

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

STEP = "predict"
VOLUMES_CSV = "volumes.csv"
#: Per-scan scratch folders (prepared images) inside the output folder.
SCRATCH_PREFIX = ".prepare-"
#: Columns of ``volumes.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "subject", "session", *VOLUME_COLUMNS, "model_volume_ml", "predicted_grade", "flags",
)
#: Folder of ``OUT`` holding one QC mosaic per scan (:func:`write_qc_mosaic`).
QC_FOLDER = "qc"
#: Axial slices in a QC mosaic: those with the most WMH.
QC_SLICES = 6
#: Output file suffixes per map role.
OUTPUT_SUFFIXES: dict[str, str] = {"wmh": "_wmh.nii.gz", "wmh_prob": "_wmhprob.nii.gz", "attention": "_attention.nii.gz"}
#: Torch intra-op threads per scan on CPU, whatever ``threads_per_worker`` is (that sizes the
#: ITK/OpenMP pools of preparation): outputs are then bit-identical with any number of workers
#: and threads; use more workers, not threads, for inference speed.
CPU_THREADS_PER_SCAN = 1


@dataclass(frozen=True)
class ScanInput:
    """One scan to segment: ``name``, the output file prefix (manifest ``subject[_session]`` or the file stem);
    ``subject`` and ``session`` for ``volumes.csv`` (session may be ""); the native ``flair`` file; optional ``t1``
    and ``brain_mask`` (on the FLAIR grid), as in a manifest row; the intensity ``normalisation`` (None: the
    model's ``prepare`` default)."""

    name: str
    subject: str
    session: str
    flair: Path
    t1: Path | None = None
    brain_mask: Path | None = None
    normalisation: str | None = None


@dataclass(frozen=True)
class PredictSettings:
    """Settings of a predict run that determine its outputs (recorded in every sidecar).

    ``threshold``, ``fusion`` and ``brain_extractor`` None mean the model's own (``model.yaml``;
    ``brain_extractor`` overrides its ``prepare`` setting, see
    :mod:`wmhkit.preprocess.brain_extraction`).
    """

    threshold: float | None = None
    fusion: str | None = None
    pv_distance_mm: float = DEFAULT_PV_DISTANCE_MM
    #: Arithmetic of the 2.5D networks: ``float32`` or ``bfloat16`` (faster on CPUs with
    #: bfloat16 instructions, masks close to float32's: see :mod:`wmhkit.nn.planes`).
    precision: str = "float32"
    brain_extractor: str | None = None

    def resolved(self, spec: ModelSpec) -> dict[str, Any]:
        """The parameters actually used with ``spec``: JSON-ready, in a fixed key order."""
        threshold = check_threshold(spec.threshold if self.threshold is None else self.threshold)
        fusion = check_fusion_rule(spec.fusion if self.fusion is None else self.fusion)
        if self.pv_distance_mm < 0:
            raise ValueError(f"pv_distance_mm must be >= 0, got {self.pv_distance_mm}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return {
            "kind": spec.kind, "inputs": list(spec.inputs), "planes": list(spec.planes), "fusion": fusion,
            "thick_slice_planes": spec.thick_slice_planes, "threshold": threshold, "pv_distance_mm": float(self.pv_distance_mm),
            "prepare": spec.prepare.to_dict(), "precision": self.precision,
        }


@dataclass(frozen=True)
class PredictResult:
    """Outcome of a predict run: ``OUT/volumes.csv``, scan name → map role (``wmh``, ``wmh_prob``, ``attention``)
    → file, and the scans that failed (also in ``OUT/failures.tsv``)."""

    volumes: Path
    outputs: dict[str, dict[str, Path]]
    failures: list[ScanFailure]


#: What predicting one scan gives: its output files by role and its ``volumes.csv`` row.
ScanOutputs = tuple[dict[str, Path], dict[str, Any]]


def scan_inputs(
    inputs: Sequence[str | os.PathLike[str]], options: PrepareOptions = PrepareOptions()
) -> list[ScanInput]:
    """The scans named on a command line: NIfTI files, or exactly one ``manifest.tsv``.

    ``options`` (the model's prepare settings) give a manifest row's
    normalisation as :func:`~wmhkit.preprocess.pipeline.prepare_manifest` would.

    Raises
    ------
    InputError
        For no inputs, a manifest mixed with other inputs, a file that is neither
        NIfTI nor TSV, an output name that is not safe, or two inputs that nothing
        tells apart (see :func:`distinct_names`).
    ManifestError
        For an invalid manifest.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError(None, "no input scans given", "pass FLAIR NIfTI files or one manifest.tsv")
    manifests = [p for p in paths if p.name.endswith(".tsv")]
    if manifests:
        if len(paths) != 1:
            raise InputError(manifests[0], "a manifest must be the only input", "pass one manifest.tsv or NIfTI files")
        return manifest_scan_inputs(manifests[0], options)
    stems = []
    for path in paths:
        stem = nifti_stem(path)
        if stem is None:
            raise InputError(path, "not a NIfTI file (.nii or .nii.gz) or a manifest (.tsv)", "pass FLAIR NIfTI files")
        stems.append(stem)
    scans = []
    for path, name in zip(paths, distinct_names(paths, stems)):
        if not is_valid_id(name):
            raise InputError(path, f"output name {name!r} is not a safe name (letters, digits, '.', '_', '-')",
                             "rename the file or list it in a manifest with a subject ID")
        scans.append(ScanInput(name, name, "", path))
    _check_unique_names(scans)
    return scans


def distinct_names(paths: Sequence[Path], stems: Sequence[str]) -> list[str]:
    """Output names for input files: each file's stem, prefixed by folder names when stems collide.

    Files whose stems collide (ignoring case: ``*/FLAIR.nii.gz``) are named after
    their BIDS ``sub-*`` (and ``ses-*``) folders when these tell them apart
    (``sub-01/ses-1/anat/FLAIR.nii.gz`` → ``sub-01_ses-1_FLAIR``), otherwise after
    the nearest parent folders that do, joined by ``_``, leaving out folder levels
    they share (``site-a/scan/FLAIR.nii.gz`` beside ``site-b/scan/FLAIR.nii.gz``
    → ``site-a_FLAIR``); the names used are logged. Files that nothing tells
    apart (the same path twice) keep their stem, and are refused by the clash check.

    Examples
    --------
    >>> distinct_names([Path("/d/sub-01/anat/FLAIR.nii.gz"), Path("/d/sub-02/anat/FLAIR.nii.gz"),
    ...                 Path("/d/x/T2.nii")], ["FLAIR", "FLAIR", "T2"])
    ['sub-01_FLAIR', 'sub-02_FLAIR', 'T2']
    """
    names = list(stems)
    groups: dict[str, list[int]] = {}
    for index, stem in enumerate(stems):
        groups.setdefault(stem.lower(), []).append(index)
    for members in (m for m in groups.values() if len(m) > 1):
        folders = [Path(os.path.abspath(paths[i])).parent.parts[:0:-1] for i in members]  # nearest first, no root
        bids = [_bids_prefix(f) for f in folders]
        options = [["_".join((prefix, stems[i])) for prefix, i in zip(bids, members)]] if all(bids) else []
        for depth in range(1, max(len(f) for f in folders) + 1):
            levels = [f[:depth] + ("",) * (depth - len(f)) for f in folders]
            differing = [d for d in range(depth - 1, -1, -1) if len({level[d] for level in levels}) > 1]
            options.append(["_".join([*(level[d] for d in differing if level[d]), stems[i]])
                            for level, i in zip(levels, members)])
        for candidates in options:
            if len({c.lower() for c in candidates}) == len(members):
                for i, candidate in zip(members, candidates):
                    names[i] = candidate
                log.info("input files share the name %r; output names taken from their folders: %s", stems[members[0]],
                         ", ".join(f"{paths[i]} -> {names[i]}" for i in members))
                break
    return names


def manifest_scan_inputs(
    manifest: str | os.PathLike[str], options: PrepareOptions = PrepareOptions()
) -> list[ScanInput]:
    """One :class:`ScanInput` per manifest row (FLAIR, T1, brain mask, normalisation as ``prepare`` reads them)."""
    table = read_manifest(manifest)
    scans = []
    for index, row in enumerate(table.rows(), start=1):
        normalisation = row_normalisation(table, row, index, options)
        scans.append(ScanInput(
            table.scan_id(row), row["subject"], row.get("session", ""), table.path(row, "flair"),
            t1=table.path(row, "t1"), brain_mask=table.path(row, "brain_mask"), normalisation=normalisation,
        ))
    return scans


def predict_scans(
    model_dir: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    settings: PredictSettings = PredictSettings(),
    **compute: Unpack[ComputeArguments],
) -> PredictResult:
    """Segment every input scan with the model in ``model_dir`` (see the module docstring).

    Parameters
    ----------
    model_dir
        Model folder (``model.yaml``, ``weights/``, ``provenance.json``).
    inputs
        FLAIR NIfTI files, or one ``manifest.tsv``.
    out_dir
        Output folder (created); must not be a folder holding the inputs.
    device
        ``"cpu"`` or ``"cuda[:N]"``.
    batch_size
        Slices per forward pass (memory vs speed; outputs do not depend on it).
    settings
        Threshold, fusion rule and periventricular distance.
    compute
        Where the scans run (:class:`~wmhkit.cohort.stage.ComputeArguments`): in this
        process (one worker; the model is loaded before any scan), on local Dask
        processes or on a running Dask scheduler; each worker loads the model once.
        ``threads_per_worker`` sizes the ITK (preparation) and OpenMP/BLAS pools; torch
        stays on :data:`CPU_THREADS_PER_SCAN` thread per scan. Outputs do not depend on them.

    Returns
    -------
    PredictResult

    Raises
    ------
    InputError
        For an invalid model folder or input list (before any scan is run).
    OutputError
        When ``out_dir`` holds an input file, or another run holds its lock.
    """
    compute_options = ComputeOptions(**compute)
    spec = read_model_spec(model_dir)
    if settings.brain_extractor is not None:  # the run's choice overrides the model's prepare setting
        spec = dataclasses.replace(
            spec, prepare=dataclasses.replace(spec.prepare, brain_extractor=settings.brain_extractor))
    scans = scan_inputs(inputs, spec.prepare)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, scans, inputs)
    try:
        parameters = settings.resolved(spec)
        target = resolve_device(device)
    except ValueError as exc:
        raise InputError(model_dir, str(exc), "choose a valid threshold, fusion rule, distance and device") from exc
    model_record = {
        "hash": model_hash(model_dir), "kind": spec.kind, "network": spec.network,
        "trained_on": spec.record.get("trained_on", ""), "wmhkit_version": spec.record.get("wmhkit_version", ""),
    }
    stage = PredictStage(Path(model_dir), out_dir, spec.prepare, parameters, model_record, _device_record(target),
                         target, batch_size)
    if not compute_options.uses_dask:
        _cached_predictor(stage)  # an unloadable model is refused before any scan

    def write_volumes(outcomes: list[TaskOutcome[ScanOutputs]]) -> tuple[Path, dict[str, dict[str, Path]]]:
        done = {outcome.key: outcome.value for outcome in outcomes if outcome.value is not None}
        return (_write_volumes([row for _, row in done.values()], out_dir, stage),
                {name: paths for name, (paths, _) in done.items()})

    stage_scans = [StageScan(scan.name, scan.subject, scan.session, scan) for scan in scans]
    (volumes, outputs), failures = run_stage(stage, stage_scans, out_dir, compute_options, write_volumes)
    log.info("predicted %d of %d scans into %s", len(outputs), len(scans), out_dir)
    return PredictResult(volumes, outputs, failures)


def predict_manifest(model_dir: str | os.PathLike[str], manifest: str | os.PathLike[str],
                     out_dir: str | os.PathLike[str], **options: Any) -> PredictResult:
    """:func:`predict_scans` over the rows of ``manifest`` (outputs named ``subject[_session]``; ``options`` as there)."""
    return predict_scans(model_dir, [manifest], out_dir, **options)


@dataclass(frozen=True)
class PredictStage(ScanStage[ScanInput, ScanOutputs]):
    """Segment one scan: its output files by role and its ``volumes.csv`` row.

    What every scan's task needs (shipped to Dask workers: small and picklable).
    The model is loaded once per process (:func:`wmhkit.cohort.cache.process_cached`,
    keyed by model hash and device), so a Dask worker loads it for its first scan only.
    """

    model_dir: Path
    out_dir: Path
    prepare: PrepareOptions
    parameters: dict[str, Any]
    model: dict[str, Any]
    device: dict[str, Any]
    target: torch.device
    batch_size: int
    step = STEP

    def record(self, scan: ScanInput) -> Path:
        return record_path(self.out_dir, STEP, scan.name)

    def expected(self, scan: ScanInput, record: Path) -> dict[str, Any]:
        inputs, parameters = _scan_dependencies(self, scan)
        return expected_record(record, step=STEP, inputs=inputs, parameters=parameters | {"device": self.device},
                               model=self.model)

    def compute(self, scan: ScanInput) -> tuple[ScanOutputs, list[Path], dict[str, Any]]:
        predictor = _cached_predictor(self)
        with _cpu_threads(self.target, CPU_THREADS_PER_SCAN), \
                tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=self.out_dir) as work_dir:
            paths, row = _predict_one(scan, predictor, self, Path(work_dir))
        summary = {"outputs": {role: path.name for role, path in sorted(paths.items())}, "volumes": row}
        return (paths, row), [*paths.values(), *(sidecar_path(p) for p in paths.values())], summary

    def restore(self, scan: ScanInput, stored: Mapping[str, Any]) -> ScanOutputs:
        return {role: resolve_output(self.out_dir, name) for role, name in stored["outputs"].items()}, stored["volumes"]

    def clean(self, out_dir: Path) -> None:
        """Delete the ``.prepare-*`` scratch folders a killed run left in ``out_dir``."""
        for scratch in out_dir.glob(f"{SCRATCH_PREFIX}*"):
            if scratch.is_dir() and not scratch.is_symlink():
                log.info("removing %s, left by an interrupted run", scratch.name)
                shutil.rmtree(scratch)


@contextlib.contextmanager
def _cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """Run torch on ``threads`` intra-op threads for a CPU device (restored afterwards).

    CPU kernels may sum in another order with another thread count, so the
    probability maps' last bits would depend on where a scan ran; with a fixed
    count they are the same in-process and on any Dask worker.
    """
    if device.type != "cpu":
        yield
        return
    with torch_threads(threads):
        yield


def _cached_predictor(context: PredictStage) -> Predictor:
    """The model's predictor, loaded once per process (keyed by model hash, device and options)."""
    options = PredictOptions(context.parameters["fusion"], context.parameters["threshold"], context.batch_size,
                             context.parameters["precision"])
    return process_cached((STEP, context.model["hash"], str(context.target), options),
                          lambda: load_predictor(context.model_dir, device=context.target, options=options))


def _scan_dependencies(context: PredictStage, scan: ScanInput) -> tuple[dict[str, Any], dict[str, Any]]:
    """A scan's inputs and parameters (recorded in its sidecars and completion record)."""
    inputs = {"flair": scan.flair, "t1": scan.t1, "brain_mask": scan.brain_mask,
              "model": context.model_dir / MODEL_YAML}
    parameters = context.parameters | {"normalisation": scan.normalisation or context.prepare.normalisation}
    return inputs, parameters


def _predict_one(scan: ScanInput, predictor: Predictor, context: PredictStage,
                 work_dir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    inputs, parameters = _scan_dependencies(context, scan)
    log.info("%s: preparing", scan.name)
    prepared_scan = prepare_scan(
        scan.flair, work_dir / scan.name, t1=scan.t1, brain_mask=scan.brain_mask,
        normalisation=parameters["normalisation"], options=dataclasses.replace(context.prepare, qc_png=False),
    )
    prepared = {"flair": load_image(prepared_scan.outputs["flair"]),
                "brain_mask": load_mask(prepared_scan.outputs["brain_mask"])}
    if "t1" in prepared_scan.outputs:
        prepared["t1"] = load_image(prepared_scan.outputs["t1"])
    log.info("%s: segmenting", scan.name)
    prediction = predictor.predict(prepared)
    native = native_maps(prediction, prepared, prepared_scan.geometry)
    flags = scan_flags(scan.flair, native["flair"].spacing_mm, prepared["flair"], prepared["brain_mask"])
    row = {"subject": scan.subject, "session": scan.session, **_mask_volumes(native, parameters),
           "model_volume_ml": prediction.model_volume_ml, "predicted_grade": prediction.grade,
           "flags": ";".join(flags)}
    paths = {role: resolve_output(context.out_dir, scan.name + OUTPUT_SUFFIXES[role])
             for role in OUTPUT_SUFFIXES if role in native}
    extra = {"model": context.model, "device": context.device, "scan": scan.name, "volumes": row,
             "brain_mask_source": prepared_scan.brain_mask_source,
             "outputs": {role: path.name for role, path in sorted(paths.items())}}
    written: list[Path] = []
    try:  # a scan's maps exist only with their sidecars: a write failing midway (full disk) removes them all
        for role, path in paths.items():
            written.append(path)
            (save_mask if role == "wmh" else save_image)(native[role], path)
        for path in paths.values():
            written.append(sidecar_path(path))
            write_sidecar(path, step=STEP, inputs=inputs, parameters=parameters, extra=extra)
        if "wmh" in native:
            write_qc_mosaic(load_image(scan.flair), native["wmh"], context.out_dir, scan.name, row)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return paths, row


def native_maps(prediction: ScanPrediction, prepared: Mapping[str, Image],
                geometry: NativeGeometry) -> dict[str, Image]:
    """The prediction's maps, the prepared FLAIR and brain mask on the scan's native grid.

    Parameters
    ----------
    prediction
        Maps on the prepared grid.
    prepared
        Prepared images by role (``flair``, ``brain_mask``).
    geometry
        The scan's native-geometry record.

    Returns
    -------
    dict
        ``flair``, ``brain_mask`` and whichever of ``wmh``, ``wmh_prob``, ``attention``
        the prediction has, each on exactly the native shape and affine
        (:func:`~wmhkit.preprocess.geometry.to_native`). When the prediction carries its
        threshold, ``wmh`` is ``wmh_prob >= threshold`` on the native grid inside the
        native brain mask, and ``wmh_prob`` is 0 outside it. Without a working grid
        this is exactly the prepared-grid mask mapped back (the probability is already
        0 outside the brain).
    """
    maps = {"flair": prepared["flair"], "brain_mask": prepared["brain_mask"]}
    if prediction.wmh is not None and prediction.wmh_prob is not None:
        maps |= {"wmh": prediction.wmh, "wmh_prob": prediction.wmh_prob}
    if prediction.attention is not None:
        maps["attention"] = prediction.attention
    native = {role: to_native(image, geometry) for role, image in maps.items()}
    if prediction.threshold is not None and "wmh_prob" in native:
        brain = native["brain_mask"].array > 0
        probability = np.where(brain, native["wmh_prob"].array, np.float32(0.0)).astype(np.float32)
        native["wmh_prob"] = native["wmh_prob"].with_array(probability)
        native["wmh"] = native["brain_mask"].with_array(binarise(probability, prediction.threshold))
    return native


def write_qc_mosaic(flair: Image, wmh: Image, out_dir: Path, name: str, row: Mapping[str, Any]) -> Path:
    """Write ``OUT/qc/<name>_wmh.png``: the :data:`QC_SLICES` axial slices of the native FLAIR
    with the most WMH, the mask's contour, the WMH volume (and any flags) in the title."""
    title = f"{name}: WMH {row['wmh_ml']:.2f} mL" + (f"  [{row['flags']}]" if row.get("flags") else "")
    return save_overlay_png(flair, resolve_output(out_dir, f"{QC_FOLDER}/{name}_wmh.png"), masks={"WMH": wmh},
                            planes=("axial",), n_slices=QC_SLICES, title=title, slices="most")


def _mask_volumes(native: Mapping[str, Image], parameters: Mapping[str, Any]) -> dict[str, float | int | None]:
    """The :data:`~wmhkit.infer.volumes.VOLUME_COLUMNS` of the native-grid mask; all None without a mask."""
    if "wmh" not in native:
        return dict.fromkeys(VOLUME_COLUMNS)
    ventricles = estimate_ventricles(native["flair"], native["brain_mask"])
    volumes = wmh_volumes(native["wmh"], native["brain_mask"], ventricles, pv_distance_mm=parameters["pv_distance_mm"])
    return volumes.as_row()


def _write_volumes(rows: list[dict[str, Any]], out_dir: Path, context: PredictStage) -> Path:
    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    table = table.sort_values(["subject", "session"], kind="stable").reset_index(drop=True)
    for count in ("lesion_count", "predicted_grade"):
        table[count] = table[count].astype("Int64")
    path = write_csv(table, out_dir / VOLUMES_CSV)
    write_sidecar(path, step=STEP, inputs={"model": context.model_dir / MODEL_YAML}, parameters=context.parameters,
                  extra={"model": context.model, "device": context.device})
    return path


def _device_record(device: torch.device) -> dict[str, Any]:
    record: dict[str, Any] = {"type": device.type}
    if device.type == "cuda":
        record |= {"name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    return record


def _check_out_dir(out_dir: Path, scans: Sequence[ScanInput], inputs: Sequence[str | os.PathLike[str]]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} exists and is not a folder; choose a folder for --out")
    resolved = out_dir.resolve()
    folders = {Path(p).resolve().parent for p in inputs}
    folders |= {path.resolve().parent for scan in scans for path in (scan.flair, scan.t1, scan.brain_mask) if path}
    if resolved in folders:
        raise OutputError(f"output folder {out_dir} holds input files; choose another folder so inputs stay untouched")


def _check_unique_names(scans: Sequence[ScanInput]) -> None:
    seen: dict[str, Path] = {}
    for scan in scans:
        key = scan.name.lower()
        if key in seen:
            raise InputError(scan.flair, f"its output name {scan.name!r} clashes with that of {seen[key]}",
                             "rename one of the files or list the scans in a manifest with distinct subject IDs")
        seen[key] = scan.flair


def _bids_prefix(folders: Sequence[str]) -> str:
    """``sub-<label>[_ses-<label>]`` from a file's parent folders (nearest first), or ""."""
    for index, folder in enumerate(folders):
        if folder.startswith("sub-"):
            session = folders[index - 1] if index > 0 and folders[index - 1].startswith("ses-") else ""
            return "_".join(f for f in (folder, session) if f)
    return ""
