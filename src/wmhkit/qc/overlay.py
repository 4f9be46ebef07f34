"""FLAIR mosaics with mask contours, written as PNG.

The volume is reoriented to the closest canonical (RAS+) axes for display, so
every scan is shown the same way whatever its storage order: axial and coronal
views in neurological convention (the subject's left on the picture's left),
superior / anterior up. Each tile's aspect ratio comes from the voxel spacing,
so 4 mm slices of a 2D FLAIR look as tall as they are.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from wmhkit.errors import GeometryError
from wmhkit.io.atomic import atomic_path
from wmhkit.io.image import Image

#: Contour colours, in the order masks are given.
CONTOUR_COLOURS = ("#ff3030", "#30c0ff", "#ffd000", "#40ff60", "#ff60ff", "#ff9020")
#: Array axis (in RAS+ order) that each plane cuts.
PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Side of one mosaic tile, in inches (at :data:`DPI` dots per inch).
TILE_INCHES = 2.0
DPI = 100


def overlay_png_bytes(
    flair: Image,
    *,
    masks: Mapping[str, Image] | None = None,
    planes: Sequence[str] = ("axial", "coronal", "sagittal"),
    n_slices: int = 6,
    title: str | None = None,
    slices: str = "spread",
) -> bytes:
    """Render a FLAIR mosaic with mask contours and return the PNG bytes.

    Parameters
    ----------
    flair
        Intensity image, shape ``(X, Y, Z)``, any orientation.
    masks
        Label images on the FLAIR grid, by legend name (e.g. ``{"brain": mask}``);
        voxels > 0 are inside. Each gets its own contour colour.
    planes
        Rows of the mosaic, among ``"axial"``, ``"coronal"``, ``"sagittal"``.
    n_slices
        Slices per row (at most the slices there are).
    title
        Optional text above the mosaic.
    slices
        ``"spread"``: evenly spread over the extent of the first mask (or of the
        whole volume when no mask is given); ``"most"``: the slices holding the most
        voxels of the first mask, in anatomical order (spread when it is empty).

    Returns
    -------
    bytes
        A PNG of ``n_slices × TILE_INCHES × DPI`` pixels wide and about
        ``len(planes) × TILE_INCHES × DPI`` high (plus title and legend).

    Raises
    ------
    GeometryError
        When a mask is not on the FLAIR grid.
    ValueError
        For an unknown plane name or ``n_slices < 1``.
    """
    masks = dict(masks or {})
    for name, mask in masks.items():
        if not mask.same_grid(flair):
            raise GeometryError(
                None,
                f"mask {name!r} (shape {mask.shape}) is not on the FLAIR grid (shape {flair.shape})",
                "resample the mask onto the FLAIR grid with nearest-neighbour interpolation",
            )
    unknown = [p for p in planes if p not in PLANE_AXIS]
    if unknown or not planes:
        raise ValueError(f"planes must be among {sorted(PLANE_AXIS)}, got {list(planes)}")
    if n_slices < 1:
        raise ValueError(f"n_slices must be at least 1, got {n_slices}")
    if slices not in ("spread", "most"):
        raise ValueError(f"slices must be 'spread' or 'most', got {slices!r}")

    ornt = nib.orientations.io_orientation(flair.affine)
    volume = nib.orientations.apply_orientation(np.asarray(flair.array, np.float32), ornt)
    spacing = np.asarray(flair.spacing_mm)[np.argsort(ornt[:, 0])]
    labels = {
        name: nib.orientations.apply_orientation(np.asarray(m.array) > 0, ornt) for name, m in masks.items()
    }
    low, high = _display_window(volume)
    extent_source = next(iter(labels.values())) if labels else volume > low

    n_slices = min(n_slices, *(volume.shape[PLANE_AXIS[p]] for p in planes))
    figure = Figure(figsize=(n_slices * TILE_INCHES, len(planes) * TILE_INCHES + 0.6), dpi=DPI)
    figure.patch.set_facecolor("black")
    axes = figure.subplots(len(planes), n_slices, squeeze=False)
    for row, plane in enumerate(planes):
        axis = PLANE_AXIS[plane]
        positions = (_fullest_slices(extent_source, axis, n_slices) if slices == "most" and labels else
                     _slice_positions(extent_source, axis, n_slices))
        for column, index in enumerate(positions):
            ax = axes[row, column]
            _draw_tile(ax, volume, labels, axis, index, spacing, (low, high))
    handles = [
        Line2D([], [], color=CONTOUR_COLOURS[i % len(CONTOUR_COLOURS)], label=name)
        for i, name in enumerate(labels)
    ]
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, labelcolor="white")
    if title:
        figure.suptitle(title, color="white", fontsize=10)
    figure.subplots_adjust(left=0.005, right=0.995, bottom=0.3 / figure.get_figheight() * 2, top=0.93, wspace=0.02, hspace=0.04)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def save_overlay_png(
    flair: Image,
    path: str | os.PathLike[str],
    *,
    masks: Mapping[str, Image] | None = None,
    planes: Sequence[str] = ("axial", "coronal", "sagittal"),
    n_slices: int = 6,
    title: str | None = None,
    slices: str = "spread",
) -> Path:
    """Write the mosaic of :func:`overlay_png_bytes` to ``path`` atomically.

    Returns
    -------
    Path
        The written PNG.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> flair = Image(np.random.default_rng(0).random((20, 20, 10), np.float32), np.diag([1, 1, 3, 1.0]))
    >>> out = save_overlay_png(flair, pathlib.Path(tempfile.mkdtemp()) / "qc.png", n_slices=2)
    >>> out.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    png = overlay_png_bytes(flair, masks=masks, planes=planes, n_slices=n_slices, title=title, slices=slices)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return Path(path)


def _display_window(volume: np.ndarray) -> tuple[float, float]:
    """Grey-level window: 1st to 99.5th percentile of the nonzero voxels."""
    values = volume[volume != 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.5])
    return float(low), float(high) if high > low else float(low) + 1.0


def _slice_positions(extent_source: np.ndarray, axis: int, n_slices: int) -> list[int]:
    """``n_slices`` indices along ``axis`` spread over 10–90 % of where ``extent_source`` is set."""
    other = tuple(a for a in range(3) if a != axis)
    present = np.flatnonzero(extent_source.any(axis=other))
    first, last = (present[0], present[-1]) if present.size else (0, extent_source.shape[axis] - 1)
    fractions = np.linspace(0.1, 0.9, n_slices) if n_slices > 1 else np.array([0.5])
    return [int(round(first + f * (last - first))) for f in fractions]


def _fullest_slices(mask: np.ndarray, axis: int, n_slices: int) -> list[int]:
    """The ``n_slices`` indices along ``axis`` where ``mask`` has the most voxels, in order
    (:func:`_slice_positions` when the mask is empty)."""
    counts = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    if not counts.any():
        return _slice_positions(mask, axis, n_slices)
    return sorted(np.argsort(-counts, kind="stable")[:n_slices].tolist())


def _draw_tile(ax, volume, labels, axis, index, spacing, window) -> None:
    """One slice with its mask contours; rows of the picture run superior/anterior up."""
    image_slice = np.take(volume, index, axis=axis).T
    in_plane = [a for a in range(3) if a != axis]
    aspect = spacing[in_plane[1]] / spacing[in_plane[0]]
    ax.imshow(image_slice, cmap="gray", vmin=window[0], vmax=window[1], origin="lower",
              aspect=aspect, interpolation="nearest")
    for i, mask in enumerate(labels.values()):
        mask_slice = np.take(mask, index, axis=axis).T
        if mask_slice.any() and not mask_slice.all():
            ax.contour(mask_slice.astype(np.float32), levels=[0.5], origin="lower",
                       colors=CONTOUR_COLOURS[i % len(CONTOUR_COLOURS)], linewidths=0.9)
    ax.set_axis_off()
