"""The ``predict`` stage: a model folder and FLAIR scans in, native-space WMH masks and volumes out.

Per scan (``<name>`` = the manifest's ``subject[_session]`` or the input file's stem):

1. prepare it exactly as in training (the model's ``prepare`` settings; a
   manifest row's T1, brain mask and normalisation are used as ``prepare`` would)
   into a temporary folder under ``OUT``;
2. segment it on the prepared grid, dispatching on the model's ``kind``:
   ``segmentation-2.5d`` runs each plane's network over the brain box
   (:mod:`wmhkit.nn.planes`), fuses the plane probabilities and thresholds
   them (:mod:`wmhkit.nn.plane_fusion`); ``volume`` (weak-label GP-Unet) and
   ``segmentation-3d`` (its strong-label twin) models are run by
   :func:`wmhkit.infer.volume.predict_gp_unet`;
3. measure the volumes on the prepared grid (:mod:`wmhkit.infer.volumes`; the
   prepared grid is the native one reoriented and cropped, so voxel volumes and
   counts are the native ones);
4. map the maps back onto the exact native grid (:func:`~wmhkit.preprocess.geometry.to_native`)
   and write, atomically, ``OUT/<name>_wmh.nii.gz`` (uint8), ``OUT/<name>_wmhprob.nii.gz``
   (float32) and, for weak-label models, ``OUT/<name>_attention.nii.gz`` (float32), each
   with a JSON sidecar (inputs and their sha256, model hash, parameters, versions,
   device, the scan's volumes).

A Fazekas-grade model (``target.labels: fazekas``) predicts a grade, not a volume:
it writes only the attention map, its ``volumes.csv`` row has ``predicted_grade``
and empty volume cells (there is no mask to measure).

Then ``OUT/volumes.csv`` (one row per scan, sorted by subject and session, fixed
columns :data:`CSV_COLUMNS`, formula-safe cells) and ``OUT/failures.tsv`` are
written. Scans run as tasks on :mod:`wmhkit.cohort.runner` (in-process, or Dask
workers, each loading the model once); each finished scan gets a completion
record (``OUT/records/predict/<name>.json``, :mod:`wmhkit.cohort.records`), and a
scan whose record holds the same inputs, parameters, model hash, device and
versions, and whose outputs still match the recorded hashes, is not recomputed.
One failing scan never stops the others: it gets a row in ``failures.tsv`` and a
traceback in ``OUT/crashes/<name>.txt``.

For weak-label volume models the probability map is the binary segmentation as
float32 (a GP-Unet gives an attention map, written as ``<name>_attention.nii.gz``,
not a calibrated probability) and
``model_volume_ml`` holds the volume the model regresses; ``wmh_ml`` is always the
volume of the written mask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from wmhkit.cohort.cache import process_cached
from wmhkit.cohort.failures import ScanFailure, write_crash_file, write_failures
from wmhkit.cohort.lock import output_lock
from wmhkit.cohort.records import commit_record, completed_result, discard_record, expected_record, record_path
from wmhkit.cohort.runner import DEFAULT_MEMORY_LIMIT, ComputeOptions, run_tasks
from wmhkit.errors import InputError, OutputError
from wmhkit.nn.plane_fusion import binarise, check_fusion_rule, check_threshold, fuse_probabilities
from wmhkit.infer.model_folder import (
    KIND_2_5D, MODEL_YAML, LoadedModel, ModelSpec, load_model, model_hash, read_model_spec,
    resolve_device,
)
from wmhkit.nn.planes import DEFAULT_BATCH_SIZE, PRECISIONS, predict_plane
from wmhkit.infer.volumes import DEFAULT_PV_DISTANCE_MM, VOLUME_COLUMNS, estimate_ventricles, wmh_volumes
from wmhkit.io.atomic import resolve_output
from wmhkit.io.image import Image
from wmhkit.io.manifest import is_valid_id, read_manifest
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.io.provenance import sidecar_path, write_sidecar
from wmhkit.preprocess.geometry import to_native
from wmhkit.preprocess.pipeline import PrepareOptions, row_normalisation, prepare_scan
from wmhkit.stats.tables import write_csv

if TYPE_CHECKING:
    from wmhkit.infer.volume import GpUnetPrediction

log = logging.getLogger(__name__)

STEP = "predict"
VOLUMES_CSV = "volumes.csv"
FAILURES_TSV = "failures.tsv"
#: Per-scan scratch folders (prepared images) inside the output folder.
SCRATCH_PREFIX = ".prepare-"
#: Columns of ``volumes.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = ("subject", "session", *VOLUME_COLUMNS, "model_volume_ml", "predicted_grade")
#: Output file suffixes per map role.
OUTPUT_SUFFIXES: dict[str, str] = {"wmh": "_wmh.nii.gz", "wmh_prob": "_wmhprob.nii.gz", "attention": "_attention.nii.gz"}
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: Torch intra-op threads per scan on CPU, whatever ``threads_per_worker`` is (that sizes the
#: ITK/OpenMP pools of preparation): outputs are then bit-identical with any number of workers
#: and threads; use more workers, not threads, for inference speed.
CPU_THREADS_PER_SCAN = 1


@dataclass(frozen=True)
class ScanInput:
    """One scan to segment.

    Attributes
    ----------
    name
        Output file prefix (manifest ``subject[_session]`` or the file stem).
    subject, session
        Identifiers written to ``volumes.csv`` (session may be "").
    flair
        Native FLAIR file.
    t1, brain_mask
        Optional T1 and brain mask (on the FLAIR grid), as in a manifest row.
    normalisation
        Intensity normalisation; None for the model's ``prepare`` default.
    """

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

    ``threshold`` and ``fusion`` None mean the model's own (``model.yaml``).
    """

    threshold: float | None = None
    fusion: str | None = None
    pv_distance_mm: float = DEFAULT_PV_DISTANCE_MM
    #: Arithmetic of the 2.5D networks: ``float32`` or ``bfloat16`` (about 2.5× faster on
    #: CPUs with bfloat16 instructions; masks agree with float32 to Dice ≥ 0.998 in BENCHMARKS.md).
    precision: str = "float32"

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
            "threshold": threshold, "pv_distance_mm": float(self.pv_distance_mm),
            "prepare": spec.prepare.to_dict(), "precision": self.precision,
        }


@dataclass(frozen=True)
class ScanPrediction:
    """Maps of one scan on its prepared grid, and the regressed volume or grade of a GP-Unet model.

    ``wmh_prob`` and ``wmh`` are None for a model that predicts only a grade (Fazekas),
    which gives its ``attention`` map and ``grade``.
    """

    wmh_prob: Image | None
    wmh: Image | None
    attention: Image | None = None
    model_volume_ml: float | None = None
    grade: int | None = None


@dataclass(frozen=True)
class PredictResult:
    """Outcome of a predict run.

    Attributes
    ----------
    volumes
        ``OUT/volumes.csv``.
    outputs
        Scan name → map role (``wmh``, ``wmh_prob``, ``attention``) → file.
    failures
        Scans that failed (also in ``OUT/failures.tsv``).
    """

    volumes: Path
    outputs: dict[str, dict[str, Path]]
    failures: list[ScanFailure]


Segmenter = Callable[[Mapping[str, Image]], ScanPrediction]


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
        NIfTI nor TSV, a file stem that is not a safe name, or two inputs with the
        same name (ignoring case).
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
    scans = []
    for path in paths:
        stem = _nifti_stem(path)
        if stem is None:
            raise InputError(path, "not a NIfTI file (.nii or .nii.gz) or a manifest (.tsv)", "pass FLAIR NIfTI files")
        if not is_valid_id(stem):
            raise InputError(path, f"file name {stem!r} is not a safe output name (letters, digits, '.', '_', '-')",
                             "rename the file or list it in a manifest with a subject ID")
        scans.append(ScanInput(stem, stem, "", path))
    _check_unique_names(scans)
    return scans


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
    workers: int = 1,
    scheduler: str | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads_per_worker: int | None = None,
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
    workers, scheduler, memory_limit, threads_per_worker
        Where the scans run (:class:`wmhkit.cohort.runner.ComputeOptions`): in this
        process (one worker; the model is loaded before any scan), on ``workers``
        local Dask processes of ``memory_limit`` each, or on a running Dask
        ``scheduler``; each worker loads the model once. ``threads_per_worker``
        sizes the ITK (preparation) and OpenMP/BLAS pools; torch stays on
        :data:`CPU_THREADS_PER_SCAN` thread per scan. Outputs do not depend on them.

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
    compute = ComputeOptions(workers=workers, scheduler=scheduler, memory_limit=memory_limit,
                             threads_per_worker=threads_per_worker)
    spec = read_model_spec(model_dir)
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
    context = _RunContext(Path(model_dir), out_dir, spec.prepare, parameters, model_record, _device_record(target),
                          spec, target, batch_size)
    if not compute.uses_dask:
        _cached_segmenter(context)  # an unloadable model is refused before any scan
    with output_lock(out_dir, step="predict"):
        _remove_scratch(out_dir)
        outcomes = run_tasks(functools.partial(predict_task, context), [(scan.name, scan) for scan in scans],
                             compute, step="predict")
        rows: list[dict[str, Any]] = []
        outputs: dict[str, dict[str, Path]] = {}
        failures: list[ScanFailure] = []
        for scan, outcome in zip(scans, outcomes):
            crash_file = resolve_output(out_dir, f"crashes/{scan.name}.txt")
            if outcome.failure is not None:
                log.error("%s: %s", scan.name, outcome.failure.error)
                write_crash_file(crash_file, {"predict": outcome.failure})
                failures.append(ScanFailure(scan.subject, scan.session, outcome.failure.error, crash_file))
                continue
            crash_file.unlink(missing_ok=True)
            outputs[scan.name], row = outcome.value
            rows.append(row)
        write_failures(failures, out_dir / FAILURES_TSV)
        volumes = _write_volumes(rows, out_dir, context)
    log.info("predicted %d of %d scans into %s", len(outputs), len(scans), out_dir)
    return PredictResult(volumes, outputs, failures)


def predict_manifest(
    model_dir: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    settings: PredictSettings = PredictSettings(),
    workers: int = 1,
    scheduler: str | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads_per_worker: int | None = None,
) -> PredictResult:
    """:func:`predict_scans` over the rows of ``manifest`` (outputs named ``subject[_session]``)."""
    return predict_scans(model_dir, [manifest], out_dir, device=device, batch_size=batch_size, settings=settings,
                         workers=workers, scheduler=scheduler, memory_limit=memory_limit,
                         threads_per_worker=threads_per_worker)


def segment_2_5d(
    model: LoadedModel, prepared: Mapping[str, Image], *, fusion: str, threshold: float, batch_size: int,
    precision: str = "float32",
) -> ScanPrediction:
    """Run every plane's network on a prepared scan, fuse and threshold.

    Parameters
    ----------
    model
        A loaded ``segmentation-2.5d`` model.
    prepared
        Prepared images by role: ``brain_mask`` and the model's ``inputs``.
    fusion, threshold
        Fusion rule and threshold of the fused probability.
    batch_size
        Slices per forward pass.
    precision
        Arithmetic of the forward pass: ``"float32"``, or ``"bfloat16"`` autocast
        (about twice as fast on CPUs with bfloat16 instructions; see
        :func:`~wmhkit.nn.planes.predict_plane`).

    Returns
    -------
    ScanPrediction
        On the prepared grid; 0 outside the brain mask.

    Raises
    ------
    InputError
        When the model needs an input image (a T1) the scan does not have.
    """
    missing = [role for role in model.spec.inputs if role not in prepared]
    if missing:
        raise InputError(None, f"the model needs input image(s) {missing}, which this scan lacks",
                         "add them to the manifest (e.g. a t1 column)")
    brain_mask = prepared["brain_mask"]
    channels = np.stack([prepared[role].array.astype(np.float32) for role in model.spec.inputs])
    plane_probs = []
    for plane in model.spec.planes:
        # Channels-last weights match the channels-last inputs of predict_plane (faster oneDNN convolutions).
        network = model.networks[plane].to(memory_format=torch.channels_last)
        plane_probs.append(predict_plane(network, channels, brain_mask.array, plane,  # type: ignore[arg-type]
                                         size_multiple=model.size_multiple, batch_size=batch_size,
                                         device=model.device, precision=precision))
    wmh_prob = fuse_probabilities(plane_probs, fusion)
    return ScanPrediction(brain_mask.with_array(wmh_prob), brain_mask.with_array(binarise(wmh_prob, threshold)))


@dataclass(frozen=True)
class _RunContext:
    """What every scan's task needs (shipped to Dask workers: small and picklable)."""

    model_dir: Path
    out_dir: Path
    prepare: PrepareOptions
    parameters: dict[str, Any]
    model: dict[str, Any]
    device: dict[str, Any]
    spec: ModelSpec
    target: torch.device
    batch_size: int


def predict_task(context: _RunContext, scan: ScanInput) -> tuple[dict[str, Path], dict[str, Any]]:
    """Segment one scan (or reuse its complete outputs): its output files by role and its ``volumes.csv`` row.

    The model is loaded once per process (:func:`wmhkit.cohort.cache.process_cached`,
    keyed by model hash and device), so a Dask worker loads it for its first scan only.
    """
    segmenter = _cached_segmenter(context)
    with _cpu_threads(context.target, CPU_THREADS_PER_SCAN), \
            tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=context.out_dir) as work_dir:
        return _predict_one(scan, segmenter, context, Path(work_dir))


def _remove_scratch(out_dir: Path) -> None:
    """Delete the ``.prepare-*`` scratch folders a killed run left in ``out_dir``.

    Called with the output lock held: no other run can be using them.
    """
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
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cached_segmenter(context: _RunContext) -> Segmenter:
    return _segmenter(context.model_dir, context.spec, context.target, context.parameters, context.batch_size,
                      model_key=(STEP, context.model["hash"], str(context.target)))


def _segmenter(model_dir: Path, spec: ModelSpec, device: torch.device, parameters: Mapping[str, Any],
               batch_size: int, *, model_key: tuple[str, ...]) -> Segmenter:
    """The per-scan segmentation function of the model's kind (the dispatch point on ``kind``);
    the network is loaded once per process under ``model_key``."""
    if spec.kind == KIND_2_5D:
        model = process_cached(model_key, lambda: load_model(model_dir, device=device))
        return lambda prepared: segment_2_5d(model, prepared, fusion=parameters["fusion"],
                                             threshold=parameters["threshold"], batch_size=batch_size,
                                             precision=parameters["precision"])
    # KIND_VOLUME and KIND_3D: the GP-Unet models of wmhkit.infer.volume (imported here: it needs their network).
    from wmhkit.infer.volume import load_volume_model, predict_gp_unet

    volume_model = process_cached(model_key, lambda: load_volume_model(model_dir, device=device))
    return lambda prepared: _volume_prediction(
        predict_gp_unet(volume_model, prepared["flair"], prepared["brain_mask"])
    )


def _volume_prediction(result: GpUnetPrediction) -> ScanPrediction:
    """Outputs of :func:`wmhkit.infer.volume.predict_gp_unet`: for a weak-label model its
    map is an attention map (written beside the mask, or alone for a Fazekas model, which
    has no mask), for the strong twin a probability map."""
    voxel_map = result.voxel_map.with_array(result.voxel_map.array.astype(np.float32))
    if result.segmentation is None:
        return ScanPrediction(None, None, voxel_map, grade=result.grade)
    wmh = result.segmentation.with_array((result.segmentation.array > 0).astype(np.uint8))
    if not result.weak:
        return ScanPrediction(voxel_map, wmh)
    return ScanPrediction(wmh.with_array(wmh.array.astype(np.float32)), wmh, voxel_map, float(result.volume_ml),
                          result.grade)


def _predict_one(scan: ScanInput, segmenter: Segmenter, context: _RunContext,
                 work_dir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    inputs = {"flair": scan.flair, "t1": scan.t1, "brain_mask": scan.brain_mask,
              "model": context.model_dir / MODEL_YAML}
    parameters = context.parameters | {"normalisation": scan.normalisation or context.prepare.normalisation}
    record = record_path(context.out_dir, STEP, scan.name)
    expected = expected_record(record, step=STEP, inputs=inputs, parameters=parameters | {"device": context.device},
                               model=context.model)
    stored = completed_result(record, expected)
    if stored is not None:
        log.info("%s: outputs are up to date, not recomputed", scan.name)
        return {role: resolve_output(context.out_dir, name) for role, name in stored["outputs"].items()}, stored["volumes"]
    discard_record(record)
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
    prediction = segmenter(prepared)
    row = {"subject": scan.subject, "session": scan.session, **_mask_volumes(prediction, prepared, parameters),
           "model_volume_ml": prediction.model_volume_ml, "predicted_grade": prediction.grade}
    maps = {} if prediction.wmh is None else {"wmh": prediction.wmh, "wmh_prob": prediction.wmh_prob}
    if prediction.attention is not None:
        maps["attention"] = prediction.attention
    paths = {role: resolve_output(context.out_dir, scan.name + OUTPUT_SUFFIXES[role]) for role in maps}
    native = {role: to_native(image, prepared_scan.geometry) for role, image in maps.items()}
    for role, image in native.items():
        (save_mask if role == "wmh" else save_image)(image, paths[role])
    extra = {"model": context.model, "device": context.device, "scan": scan.name, "volumes": row,
             "outputs": {role: path.name for role, path in sorted(paths.items())}}
    for path in paths.values():
        write_sidecar(path, step=STEP, inputs=inputs, parameters=parameters, extra=extra)
    commit_record(record, expected, [*paths.values(), *(sidecar_path(p) for p in paths.values())],
                  {"outputs": extra["outputs"], "volumes": row})
    return paths, row


def _mask_volumes(prediction: ScanPrediction, prepared: Mapping[str, Image],
                  parameters: Mapping[str, Any]) -> dict[str, float | int | None]:
    """The :data:`~wmhkit.infer.volumes.VOLUME_COLUMNS` of the predicted mask; all None without a mask."""
    if prediction.wmh is None:
        return dict.fromkeys(VOLUME_COLUMNS)
    ventricles = estimate_ventricles(prepared["flair"], prepared["brain_mask"])
    volumes = wmh_volumes(prediction.wmh, prepared["brain_mask"], ventricles, pv_distance_mm=parameters["pv_distance_mm"])
    return volumes.as_row()


def _write_volumes(rows: list[dict[str, Any]], out_dir: Path, context: _RunContext) -> Path:
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


def _nifti_stem(path: Path) -> str | None:
    for suffix in _NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None
