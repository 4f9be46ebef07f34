"""The scoring harness of models on a prepared manifest: one row per scan with labels, predictions and tissue volumes.

:func:`predict_scans` runs a GP-Unet model (:mod:`wmhkit.models.predict_gp_unet`) over a
prepared manifest and returns one row per scan with the reference labels, the
predictions, the Dice of the segmentation against the gold, and ventricle, CSF and
white-matter volumes (from the manifest's ``vent_ml``/``csf_ml``/``wm_ml`` columns when
present, else from :func:`wmhkit.metrics.volume_eval.tissue_volumes`), ready for
:func:`wmhkit.stats.volume_models.volume_model_tables`.
:func:`score_segmentation_scans` gives the same rows for a ``segmentation-2.5d``
model (M3SL, baseline): its mask is the one ``wmhkit predict`` computes on the
prepared grid (:class:`wmhkit.models.predictors.SegmentationPredictor` with the
model's fusion and threshold), and its predicted volume is that mask's voxel count
times the voxel volume, so that voxel-wise segmenters and volume models are scored alike.
:func:`evaluate_volume_models` scores weak-label models, each on its own columns (a volume
model's regressed volume against ``volume_ml``, a Fazekas model's grade against ``fazekas``,
so one evaluation may mix both kinds: :data:`SCORED_COLUMNS`), into agreement tables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wmhkit.errors import InputError
from wmhkit.infer.volumes import estimate_ventricles
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.metrics.segmentation import dice
from wmhkit.metrics.volume_eval import TISSUE_COLUMNS, tissue_volumes
from wmhkit.models.folder import KIND_2_5D, MODEL_YAML, LoadedModel, load_model, read_model_spec
from wmhkit.models.predict_gp_unet import VolumeModel, load_volume_model
from wmhkit.models.predictors import GpUnetPredictor, PredictOptions, Predictor, SegmentationPredictor
from wmhkit.nn.planes import DEFAULT_BATCH_SIZE
from wmhkit.stats.tables import write_csv, write_tables
from wmhkit.stats.volume_models import agreement_table, confounder_table

log = logging.getLogger(__name__)

#: Columns of :func:`predict_scans`, in order.
SCAN_COLUMNS: tuple[str, ...] = (
    "scan_id", "subject", "session", "scanner", "split", "volume_ml", "fazekas", "predicted_volume_ml",
    "segmentation_ml", "predicted_grade", "dice", *TISSUE_COLUMNS,
)


def predict_scans(
    model: VolumeModel | str | os.PathLike[str], manifest: str | os.PathLike[str], *,
    scan_ids: Sequence[str] | None = None, splits: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Run a GP-Unet model over a prepared manifest: one row per scan with :data:`SCAN_COLUMNS`.

    Parameters
    ----------
    model
        A loaded model or a model folder.
    manifest
        Prepared manifest (``wmhkit prepare``), with any of ``volume_ml``, ``fazekas``, ``gold``.
    scan_ids
        Only these scans (default all).
    splits
        scan → split name written to the ``split`` column (default the manifest's ``split`` cell).

    Returns
    -------
    pandas.DataFrame
        Rows in manifest order. Empty cells (NaN) where a label or prediction does not apply.
    """
    model = model if isinstance(model, VolumeModel) else load_volume_model(model)
    return score_scans(GpUnetPredictor(model), manifest, inputs=("flair",), scan_ids=scan_ids, splits=splits)


def segmentation_scorer(
    model: LoadedModel | str | os.PathLike[str], *, batch_size: int = DEFAULT_BATCH_SIZE
) -> SegmentationPredictor:
    """The predictor of a ``segmentation-2.5d`` model with its own fusion and threshold (the mask of
    ``wmhkit predict``), its kind checked before any weights are read; ``batch_size`` (slices per
    forward pass) does not change the mask.

    Raises
    ------
    InputError
        For a model of another kind.
    """
    spec = model.spec if isinstance(model, LoadedModel) else read_model_spec(model)
    if spec.kind != KIND_2_5D:
        folder = model.folder if isinstance(model, LoadedModel) else Path(model)
        raise InputError(folder / MODEL_YAML, f"model kind {spec.kind!r} is not {KIND_2_5D!r}",
                         "score GP-Unet models with predict_scans")
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return SegmentationPredictor(loaded, PredictOptions(batch_size=batch_size))


def score_segmentation_scans(
    model: LoadedModel | str | os.PathLike[str], manifest: str | os.PathLike[str], *,
    scan_ids: Sequence[str] | None = None, splits: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """Run a ``segmentation-2.5d`` model over a prepared manifest: the rows of :func:`predict_scans`.

    ``predicted_volume_ml`` and ``segmentation_ml`` are both the volume of the
    model's mask (:func:`segmentation_scorer`); ``predicted_grade`` is empty.
    The manifest's scans must be prepared as the model's ``prepare`` settings say
    (they are used as they are, not prepared again); it needs a column for each model input.
    """
    predictor = segmentation_scorer(model, batch_size=batch_size)
    return score_scans(predictor, manifest, inputs=predictor.model.spec.inputs, scan_ids=scan_ids, splits=splits)


def score_scans(
    predictor: Predictor, manifest: str | os.PathLike[str], *, inputs: Sequence[str],
    scan_ids: Sequence[str] | None, splits: dict[str, str] | None,
) -> pd.DataFrame:
    """:data:`SCAN_COLUMNS` rows of ``predictor`` on the manifest's scans (images ``inputs`` + flair + brain mask).

    ``predicted_volume_ml`` is the volume a GP-Unet regresses, else that of the mask (voxel count × voxel
    volume, mL), so that voxel-wise segmenters and volume models are scored alike.
    """
    table = read_manifest(manifest)
    wanted = None if scan_ids is None else set(scan_ids)
    rows = []
    for row in table.rows():
        scan_id = table.scan_id(row)
        if wanted is not None and scan_id not in wanted:
            continue
        paths = {role: table.path(row, role) for role in dict.fromkeys(("flair", *inputs))}
        images = {role: load_image(path) for role, path in paths.items() if path is not None}
        images["brain_mask"] = load_mask(table.path(row, "brain_mask"))
        record = {"scan_id": scan_id, "subject": row["subject"], "session": row.get("session", ""),
                  "scanner": row.get("scanner", ""), "split": (splits or {}).get(scan_id, row.get("split", "")),
                  "volume_ml": _number(row.get("volume_ml", "")), "fazekas": _number(row.get("fazekas", ""))}
        prediction = predictor.predict(images)
        segmentation = prediction.wmh
        if prediction.grade is not None:
            record["predicted_grade"] = prediction.grade
        if segmentation is not None:
            record["segmentation_ml"] = float(segmentation.array.sum()) * segmentation.voxel_volume_ml
            record["predicted_volume_ml"] = (record["segmentation_ml"] if prediction.model_volume_ml is None
                                             else prediction.model_volume_ml)
        gold_path = table.path(row, "gold")
        if segmentation is not None and gold_path is not None:
            gold = load_mask(gold_path, allowed_labels=(0, 1, 2)).array
            record["dice"] = dice((segmentation.array > 0) & (gold != 2), gold == 1)
        record.update(_tissue(row, images["flair"], images["brain_mask"]))
        rows.append(record)
    frame = pd.DataFrame(rows)
    for column in SCAN_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    return frame[list(SCAN_COLUMNS)]


#: (reference, predicted) columns scored per model ``labels``; every other label kind is scored on volumes.
SCORED_COLUMNS: dict[str, tuple[str, str]] = {"fazekas": ("fazekas", "predicted_grade")}
_VOLUME_COLUMNS = ("volume_ml", "predicted_volume_ml")


def evaluate_volume_models(models: Mapping[str, Path], manifest: Path, out: Path,
                           scan_sets: Mapping[str, Sequence[str]]) -> list[Path]:
    """Predict every (model, scan set); write ``predictions.csv``, ``agreement.*`` and ``confounders.*`` into ``out``.

    Parameters
    ----------
    models
        Display name → model folder written by ``wmhkit train-volume``.
    manifest
        Prepared manifest holding the reference columns.
    out
        Output folder.
    scan_sets
        Set name (e.g. ``test``) → scan IDs.

    Returns
    -------
    list of Path
        The files written. A table with too few scans in a group (ICC needs 3, the OLS 5)
        is left out with a warning.
    """
    frames: list[pd.DataFrame] = []
    scored: dict[str, tuple[str, str]] = {}
    for name, folder in models.items():
        model = load_volume_model(folder)
        scored[name] = SCORED_COLUMNS.get(model.labels, _VOLUME_COLUMNS)
        for set_name, scan_ids in scan_sets.items():
            frame = predict_scans(model, manifest, scan_ids=list(scan_ids))
            frame.insert(0, "set", set_name)
            frame.insert(0, "model", name)
            frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    written = [write_csv(predictions, out / "predictions.csv")]
    for table_name, build in (("agreement", agreement_table), ("confounders", confounder_table)):
        try:
            parts = [build(predictions[predictions["model"] == name], reference=reference, predicted=predicted)
                     for name, (reference, predicted) in scored.items()]
        except ValueError as exc:  # too few scans in a set for ICC (3) or the OLS (5)
            log.warning("%s table not written: %s", table_name, exc)
            continue
        written.extend(write_tables(pd.concat(parts, ignore_index=True), out, table_name))
    return written


def evaluate_test_split(models: Mapping[str, Path], manifest: Path, splits: Mapping[str, str],
                        out: Path) -> list[Path]:
    """:func:`evaluate_volume_models` on the scans a run held out (role ``test`` in ``splits``, scan → role).

    Returns the files written; none when the run has no test scans.
    """
    test_ids = [scan for scan, role in splits.items() if role == "test"]
    return evaluate_volume_models(models, manifest, out, {"test": test_ids}) if test_ids else []


def _tissue(row: dict[str, str], flair: Image, brain_mask: Image) -> dict[str, float]:
    """Ventricle, CSF and WM volumes from the manifest when it has all three, else measured."""
    given = {column: _number(row.get(column, "")) for column in TISSUE_COLUMNS}
    if all(np.isfinite(v) for v in given.values()):
        return given
    return tissue_volumes(flair, brain_mask, estimate_ventricles(flair, brain_mask))


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return float("nan")
