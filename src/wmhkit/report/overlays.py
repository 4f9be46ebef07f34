"""Overlay mosaics of a run's scans: FLAIR with gold, bronze, silver and prediction contours.

Mask columns of the run manifest, drawn in this order: ``gold`` (label 1 only;
label 2 "other pathology" is not WMH), ``silver``, ``bronze_<method>`` (sorted),
``pred`` and ``pred_<variant>``. Gold voxels are label 1; every other mask
counts voxels with 0.5 ≤ value ≤ 1000 (binary masks and probability maps
alike). A mask on another grid than the FLAIR is resampled onto it (nearest
neighbour, through world coordinates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wmhkit.errors import WmhkitError
from wmhkit.io.manifest import Manifest
from wmhkit.io.nifti import load_image
from wmhkit.metrics.evaluate import resample_nearest
from wmhkit.metrics.segmentation import positive_prediction, wmh_from_gold
from wmhkit.qc.overlay import overlay_png_bytes
from wmhkit.report.figures import png_data_uri, scan_keys

log = logging.getLogger(__name__)

#: Views of every mosaic (one row each) and slices per row.
OVERLAY_PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
OVERLAY_SLICES = 5
#: Prefix of prediction columns in a run manifest: ``pred_<variant>``.
PRED_PREFIX = "pred_"


@dataclass(frozen=True)
class Overlay:
    """One scan's mosaic: its ID, a caption and the PNG as a data URI."""

    scan_id: str
    caption: str
    image_uri: str


@dataclass(frozen=True)
class OverlayFailure:
    """A scan whose mosaic could not be drawn, and why (one line)."""

    scan_id: str
    error: str


def mask_columns(columns: list[str]) -> list[str]:
    """Mask columns of a run manifest in drawing order.

    Examples
    --------
    >>> mask_columns(["subject", "flair", "pred_m3sl", "bronze_lga", "gold", "pred", "silver", "bronze_b"])
    ['gold', 'silver', 'bronze_b', 'bronze_lga', 'pred', 'pred_m3sl']
    """
    fixed = [c for c in ("gold", "silver") if c in columns]
    bronze = sorted(c for c in columns if c.startswith("bronze_"))
    pred = (["pred"] if "pred" in columns else []) + sorted(c for c in columns if c.startswith(PRED_PREFIX))
    return fixed + bronze + pred


def legend_name(column: str) -> str:
    """``bronze_lga`` → ``bronze lga``, ``pred_m3sl`` → ``pred m3sl``."""
    return column.replace("_", " ", 1)


def choose_scans(
    manifest: Manifest, metrics: pd.DataFrame | None, count: int
) -> tuple[list[dict[str, str]], bool]:
    """Up to ``count`` manifest rows to draw, and whether they were ranked by Dice.

    With a metrics table holding ``dice``, the scored scans are ordered by their
    mean Dice over variants and picked evenly from worst to best, so the report
    shows failures as well as successes; otherwise the first ``count`` rows.
    """
    rows = [row for row in manifest.rows() if row.get("flair", "")]
    if count <= 0 or not rows:
        return [], False
    if metrics is not None and "dice" in metrics.columns and "subject" in metrics.columns:
        keys = scan_keys(metrics)
        mean_dice = pd.to_numeric(metrics["dice"], errors="coerce").groupby(keys).mean()
        scored = [row for row in rows if np.isfinite(mean_dice.get(manifest.scan_id(row), np.nan))]
        if scored:
            scored.sort(key=lambda row: mean_dice[manifest.scan_id(row)])
            picks = np.unique(np.linspace(0, len(scored) - 1, min(count, len(scored))).round().astype(int))
            return [scored[i] for i in picks], True
    return rows[:count], False


def render_overlays(
    manifest: Manifest, rows: list[dict[str, str]], captions: dict[str, str] | None = None
) -> tuple[list[Overlay], list[OverlayFailure]]:
    """Draw the mosaic of every row; a scan that cannot be drawn becomes an :class:`OverlayFailure`."""
    overlays, failures = [], []
    columns = mask_columns(list(manifest.table.columns))
    for row in rows:
        scan_id = manifest.scan_id(row)
        try:
            png = scan_overlay_png(manifest, row, columns)
        except (WmhkitError, ValueError, OSError) as exc:
            log.warning("overlay of %s not drawn: %s", scan_id, exc)
            failures.append(OverlayFailure(scan_id, " ".join(str(exc).split())))
            continue
        caption = (captions or {}).get(scan_id, scan_id)
        overlays.append(Overlay(scan_id, caption, png_data_uri(png)))
    return overlays, failures


def scan_overlay_png(manifest: Manifest, row: dict[str, str], columns: list[str]) -> bytes:
    """PNG mosaic of one manifest row: its FLAIR and the masks of ``columns`` that are filled."""
    flair = load_image(_run_path(manifest, row, "flair"))
    masks = {}
    for column in columns:
        if not row.get(column, ""):
            continue
        values = load_image(_run_path(manifest, row, column))
        inside = wmh_from_gold(values.array)[0] if column == "gold" else positive_prediction(values.array)
        mask = values.with_array(inside.astype(np.uint8))
        if not mask.same_grid(flair):
            mask = resample_nearest(mask, flair)
        masks[legend_name(column)] = mask
    return overlay_png_bytes(flair, masks=masks, planes=OVERLAY_PLANES, n_slices=OVERLAY_SLICES)


def _run_path(manifest: Manifest, row: dict[str, str], column: str) -> Path:
    """The file of ``column`` in ``row``: absolute, or relative to the manifest's folder
    (``pred_<variant>`` columns are not checked by ``read_manifest``, so cells with
    control characters are refused here)."""
    cell = row[column].strip()
    if not cell or any(ord(character) < 32 or ord(character) == 127 for character in cell):
        raise ValueError(f"{column} path {cell!r} is empty or has control characters")
    return manifest.root / cell
