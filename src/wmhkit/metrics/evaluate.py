"""Score predicted WMH masks against gold masks: one pair, or a whole cohort.

A pair is scored on the gold's grid (the gold's geometry is the reference, as in
the MICCAI 2017 challenge). A cohort is given as two files, two folders of NIfTI
files matched by file name, or columns of a manifest; the result is one row per
scan with the metadata of the manifest and the columns of
:data:`~wmhkit.metrics.segmentation.METRIC_COLUMNS`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from wmhkit.errors import GeometryError, InputError, MaskError
from wmhkit.io.image import Image
from wmhkit.io.manifest import Manifest, is_path_column, read_manifest
from wmhkit.io.nifti import NIFTI_SUFFIXES, load_image, load_mask, nifti_stem
from wmhkit.io.sitk import to_sitk
from wmhkit.metrics.segmentation import (
    METRIC_COLUMNS,
    OTHER_PATHOLOGY_LABEL,
    WMH_LABEL,
    positive_prediction,
    segmentation_metrics,
    wmh_from_gold,
)

log = logging.getLogger(__name__)

#: Extra columns when a brain mask is available: intracranial volume (mL) and
#: predicted WMH volume as a percentage of it.
ICV_COLUMNS: tuple[str, ...] = ("icv_ml", "wmh_pct_icv")
#: Gold label values accepted (0 background, 1 WMH, 2 other pathology).
GOLD_LABELS: tuple[int, ...] = (0, WMH_LABEL, OTHER_PATHOLOGY_LABEL)

PathOrImage = str | os.PathLike[str] | Image


def evaluate(
    pred: PathOrImage,
    gold: PathOrImage,
    *,
    resample: bool = False,
    brain_mask: PathOrImage | None = None,
) -> dict[str, float]:
    """Challenge metrics of one predicted mask against its gold mask.

    Parameters
    ----------
    pred
        Prediction (file or :class:`Image`): a mask, label map or probability map;
        voxels with 0.5 ≤ value ≤ 1000 are WMH.
    gold
        Gold labels (file or :class:`Image`) with values 0, 1 (WMH) and 2 (other
        pathology: removed from the prediction, background in the gold).
    resample
        When the prediction is on another grid, resample it onto the gold's grid
        (nearest neighbour, through world coordinates) instead of raising.
    brain_mask
        Optional 0/1 brain mask on the gold's grid; adds ``icv_ml`` and
        ``wmh_pct_icv`` (predicted WMH volume as % of the brain mask volume).

    Returns
    -------
    dict
        Metric name → value, in :data:`METRIC_COLUMNS` order (+ :data:`ICV_COLUMNS`).

    Raises
    ------
    GeometryError
        Prediction or brain mask not on the gold's grid (and ``resample`` false).
    MaskError
        Gold labels outside {0, 1, 2}; an empty brain mask.
    """
    gold_image = _load_gold(gold)
    pred_image = _load_pred_values(pred)
    pred_mask = positive_prediction(pred_image.array)
    if not pred_image.same_grid(gold_image):
        if not resample:
            raise GeometryError(
                _name(pred),
                f"prediction grid (shape {pred_image.shape}) differs from the gold grid "
                f"(shape {gold_image.shape}) of {_name(gold)}",
                "predict on the gold's grid, or pass resample=True (--resample) to resample the "
                "prediction onto it with nearest neighbour",
            )
        pred_mask = resample_nearest(pred_image.with_array(pred_mask.astype(np.uint8)), gold_image).array > 0
    wmh, other_pathology = wmh_from_gold(gold_image.array)
    pred_mask &= ~other_pathology
    metrics = segmentation_metrics(pred_mask, wmh, gold_image.affine)
    if brain_mask is not None:
        metrics.update(_icv_metrics(brain_mask, gold_image, metrics["vol_pred_ml"]))
    return metrics


def resample_nearest(image: Image, reference: Image) -> Image:
    """Resample a label image onto ``reference``'s grid with nearest neighbour (SimpleITK).

    The mapping goes through world coordinates, so images stored in different
    orientations or with different spacings line up; voxels of the reference
    outside ``image``'s field of view become 0.

    Returns
    -------
    Image
        ``image``'s values (dtype kept) on the reference's grid and affine.
    """
    resampled = sitk.Resample(
        to_sitk(image.array, image.affine), to_sitk(np.zeros(reference.shape, np.uint8), reference.affine),
        sitk.Transform(), sitk.sitkNearestNeighbor, 0.0,
    )
    return Image(sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).astype(image.array.dtype), reference.affine)


@dataclass(frozen=True)
class ScanPair:
    """One scan to score: its key (``subject`` or ``subject_session``) and its files."""

    key: str
    pred: Path
    gold: Path
    brain_mask: Path | None = None
    metadata: Mapping[str, str] | None = None


def evaluate_cohort(
    pred: str | os.PathLike[str] | None = None,
    gold: str | os.PathLike[str] | None = None,
    *,
    manifest: str | os.PathLike[str] | Manifest | None = None,
    columns: tuple[str, str] = ("pred", "gold"),
    resample: bool = False,
) -> pd.DataFrame:
    """Score every prediction of a cohort against its gold mask.

    Sources, for each of ``pred`` and ``gold``:

    * a file — both must then be files, giving one row named after the gold file;
    * a folder of ``.nii``/``.nii.gz`` files, matched by file name without suffix
      (to the other folder's names, or to the manifest's ``subject[_session]``);
    * with ``manifest``, a missing ``pred``/``gold`` is read from the manifest
      column ``columns[0]``/``columns[1]``; rows with an empty gold cell are
      not evaluated (no gold available), all other rows must have a prediction.

    The manifest's ``brain_mask`` column (when filled) adds ``icv_ml`` and
    ``wmh_pct_icv``; its non-path columns (subject, session, dataset, scanner,
    stage, age, sex, ...) are copied into the table.

    Returns
    -------
    pandas.DataFrame
        One row per scan sorted by subject and session; columns: ``subject``,
        ``session``, other manifest metadata, then :data:`METRIC_COLUMNS` (+
        :data:`ICV_COLUMNS` when any brain mask was used). NaN marks undefined values.

    Raises
    ------
    InputError
        Predictions and gold masks that do not pair up, listing the unmatched names.
    """
    table = manifest if isinstance(manifest, Manifest) or manifest is None else read_manifest(manifest)
    pairs = match_pairs(pred, gold, manifest=table, columns=columns)
    rows = []
    for pair in pairs:
        log.info("evaluating %s", pair.key)
        metrics = evaluate(pair.pred, pair.gold, resample=resample, brain_mask=pair.brain_mask)
        rows.append({**_metadata(pair), **metrics})
    return _cohort_table(rows, table, columns)


def match_pairs(
    pred: str | os.PathLike[str] | None,
    gold: str | os.PathLike[str] | None,
    *,
    manifest: Manifest | None = None,
    columns: tuple[str, str] = ("pred", "gold"),
) -> list[ScanPair]:
    """Pair prediction and gold files (see :func:`evaluate_cohort` for the rules)."""
    if pred is not None and gold is not None and Path(pred).is_file() and Path(gold).is_file():
        return [ScanPair(key=_stem(Path(gold)), pred=Path(pred), gold=Path(gold))]
    if manifest is None and (pred is None or gold is None):
        raise InputError(None, "no prediction or gold source given",
                         "pass --pred and --gold (files or folders), or a manifest with its columns")
    gold_files = _source_files(gold, manifest, columns[1], role="gold")
    pred_files = _source_files(pred, manifest, columns[0], role="prediction")
    missing_pred = sorted(set(gold_files) - set(pred_files))
    manifest_gold = gold is None
    extra_pred = [] if manifest_gold else sorted(set(pred_files) - set(gold_files))
    if manifest_gold:
        without_gold = sorted(set(pred_files) - set(gold_files))
        if without_gold:
            log.info("%d scan(s) have a prediction but no gold mask and are not evaluated", len(without_gold))
    if missing_pred or extra_pred:
        parts = []
        if missing_pred:
            parts.append(f"gold without prediction: {_listing(missing_pred)}")
        if extra_pred:
            parts.append(f"prediction without gold: {_listing(extra_pred)}")
        raise InputError(
            pred if pred is not None else (manifest.source if manifest else None),
            "predictions and gold masks do not pair up (" + "; ".join(parts) + ")",
            "name each prediction like its gold mask (file name, or subject[_session] of the manifest)",
        )
    if not gold_files:
        raise InputError(gold, "no gold masks found", "point --gold to .nii/.nii.gz files or fill the gold column")
    rows = {manifest.scan_id(row): row for row in manifest.rows()} if manifest is not None else {}
    pairs = []
    for key in sorted(gold_files):
        row = rows.get(key)
        brain = manifest.path(row, "brain_mask") if row is not None and "brain_mask" in row else None
        metadata = {c: v for c, v in row.items() if _is_metadata(c, columns)} if row is not None else None
        pairs.append(ScanPair(key=key, pred=pred_files[key], gold=gold_files[key], brain_mask=brain, metadata=metadata))
    return pairs


def _source_files(
    source: str | os.PathLike[str] | None, manifest: Manifest | None, column: str, *, role: str
) -> dict[str, Path]:
    """Map scan key → file for a folder, or for a manifest column when ``source`` is None."""
    if source is None:
        if manifest is None:
            raise InputError(None, f"no {role} source given", f"pass the {role} folder or a manifest")
        if column not in manifest.table.columns:
            raise InputError(
                manifest.source, f"manifest has no {role} column {column!r}",
                f"name an existing column (columns: {', '.join(manifest.table.columns)})",
            )
        # Relative to the manifest's folder, or absolute / with '..' (data elsewhere on disk), as in every manifest.
        files = {}
        for row in manifest.rows():
            path = manifest.path(row, column)
            if path is not None:
                files[manifest.scan_id(row)] = path
        return files
    folder = Path(source)
    if not folder.is_dir():
        raise InputError(folder, f"{role} source is neither a folder nor (with the other one) a file",
                         "pass two files, two folders, or a folder and a manifest column")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.endswith(NIFTI_SUFFIXES):
            key = _stem(path)
            if key in files:
                raise InputError(path, f"two {role} files share the name {key!r}", "keep one of them")
            files[key] = path
    return files


def _cohort_table(rows: list[dict], manifest: Manifest | None, columns: tuple[str, str]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    if "session" not in table.columns:
        table["session"] = ""
    metric_columns = list(METRIC_COLUMNS)
    if any(column in table.columns for column in ICV_COLUMNS):
        metric_columns += list(ICV_COLUMNS)
    metadata = ["subject", "session"]
    if manifest is not None:
        metadata += [c for c in manifest.table.columns if _is_metadata(c, columns) and c not in metadata]
    table = table.reindex(columns=metadata + metric_columns)
    table[metric_columns] = table[metric_columns].astype(np.float64)
    table[metadata] = table[metadata].fillna("")
    return table.sort_values(["subject", "session"], kind="stable").reset_index(drop=True)


def _is_metadata(column: str, source_columns: tuple[str, str]) -> bool:
    """Manifest columns copied into the metrics table: neither paths nor the pred/gold columns."""
    return not is_path_column(column) and column not in source_columns


def _metadata(pair: ScanPair) -> dict[str, str]:
    if pair.metadata is not None:
        return dict(pair.metadata)
    return {"subject": pair.key, "session": ""}


def _load_gold(gold: PathOrImage) -> Image:
    if isinstance(gold, Image):
        values = np.unique(gold.array)
        unexpected = [v for v in values.tolist() if v not in GOLD_LABELS]
        if unexpected:
            raise MaskError(None, f"gold holds label values {unexpected[:10]}; allowed are {list(GOLD_LABELS)}",
                            "use 0 background, 1 WMH, 2 other pathology")
        return gold
    return load_mask(gold, allowed_labels=GOLD_LABELS)


def _load_pred_values(pred: PathOrImage) -> Image:
    return pred if isinstance(pred, Image) else load_image(pred)


def _icv_metrics(brain_mask: PathOrImage, gold: Image, vol_pred_ml: float) -> dict[str, float]:
    brain = brain_mask if isinstance(brain_mask, Image) else load_mask(brain_mask)
    if not brain.same_grid(gold):
        raise GeometryError(_name(brain_mask), "brain mask is not on the gold's grid",
                            "resample the brain mask onto the gold mask's grid")
    icv_ml = int(np.count_nonzero(brain.array)) * gold.voxel_volume_ml
    if icv_ml == 0:
        raise MaskError(_name(brain_mask), "brain mask is empty", "check the brain extraction for this scan")
    return {"icv_ml": icv_ml, "wmh_pct_icv": vol_pred_ml / icv_ml * 100.0}


def _stem(path: Path) -> str:
    stem = nifti_stem(path)
    return path.stem if stem is None else stem


def _name(source: PathOrImage) -> str | None:
    return None if isinstance(source, Image) else str(source)


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
