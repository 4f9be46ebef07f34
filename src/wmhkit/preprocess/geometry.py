"""The native-geometry record of a prepared scan, and the exact maps to and from it.

``prepare`` takes a scan from its native grid to a prepared grid by reorientation to
canonical RAS+ order (:mod:`wmhkit.preprocess.orientation`), when the model declares a
working spacing a resampling onto the working grid
(:func:`~wmhkit.preprocess.resample.working_grid`), then a crop/pad box
(:mod:`wmhkit.preprocess.crop`). :class:`NativeGeometry` remembers all three plus the
native shape and affine, serialises to JSON (it lives in the prepared FLAIR's sidecar
under ``"native_geometry"``), and :func:`to_native` maps any image on the prepared grid
(a prediction, a probability map) back to exactly the native shape and affine.
Without a working grid no interpolation is involved, so labels stay labels bit for
bit; with one, maps come back by linear interpolation and labels by nearest neighbour.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from wmhkit.errors import GeometryError, InputError
from wmhkit.io.image import Image
from wmhkit.io.provenance import sidecar_path
from wmhkit.preprocess.crop import VoxelBox, crop, uncrop
from wmhkit.preprocess.orientation import from_canonical, reorient
from wmhkit.preprocess.resample import resample_to_grid

#: Tolerance (mm) when checking that an image lies on the prepared grid of a record.
PREPARED_GRID_ATOL_MM = 1e-3
#: Key of the record in the prepared FLAIR's sidecar.
SIDECAR_KEY = "native_geometry"


@dataclass(frozen=True, eq=False)
class NativeGeometry:
    """How a prepared grid relates to the scan's native grid.

    Attributes
    ----------
    shape
        Native grid shape ``(X, Y, Z)``.
    affine
        Native 4×4 voxel-to-world affine (mm), kept bit-exact.
    ornt
        (3, 2) nibabel orientation taking the native order to canonical RAS+ order.
    box
        Crop/pad box on the canonical grid (the working grid when there is one); its
        shape is the prepared shape.
    working_shape, working_affine
        The working grid the canonical scan was resampled onto (shape and 4×4 affine,
        mm), or None when the networks work on the native voxels.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    ornt: np.ndarray
    box: VoxelBox
    working_shape: tuple[int, int, int] | None = None
    working_affine: np.ndarray | None = None

    @property
    def resampled(self) -> bool:
        """True when the prepared grid is a working grid, not the native voxels."""
        return self.working_affine is not None

    @property
    def canonical_affine(self) -> np.ndarray:
        """Affine of the native grid in canonical (RAS+) storage order."""
        return self.affine @ nib.orientations.inv_ornt_aff(self.ornt, self.shape)

    @property
    def prepared_affine(self) -> np.ndarray:
        """Affine of the prepared grid (canonical order, working spacing if any, shifted to the box origin)."""
        shift = np.eye(4)
        shift[:3, 3] = self.box.start
        grid = self.canonical_affine if self.working_affine is None else self.working_affine
        return grid @ shift

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form. Floats are written with repr precision, so the affine round-trips exactly."""
        record = {
            "shape": list(self.shape),
            "affine": np.asarray(self.affine, dtype=np.float64).tolist(),
            "ornt": np.asarray(self.ornt, dtype=np.float64).tolist(),
            "box": self.box.to_dict(),
        }
        if self.working_shape is not None and self.working_affine is not None:
            record["working_grid"] = {"shape": list(self.working_shape),
                                      "affine": np.asarray(self.working_affine, dtype=np.float64).tolist()}
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "NativeGeometry":
        """Rebuild a record written by :meth:`to_dict` (records without a working grid included)."""
        working = record.get("working_grid")
        return cls(
            tuple(int(s) for s in record["shape"]),  # type: ignore[arg-type]
            np.asarray(record["affine"], dtype=np.float64),
            np.asarray(record["ornt"], dtype=np.float64),
            VoxelBox.from_dict(record["box"]),
            None if working is None else tuple(int(s) for s in working["shape"]),  # type: ignore[arg-type]
            None if working is None else np.asarray(working["affine"], dtype=np.float64),
        )


def native_geometry(
    native: Image, ornt: np.ndarray, box: VoxelBox,
    working: tuple[tuple[int, int, int], np.ndarray] | None = None,
) -> NativeGeometry:
    """The record for ``native`` reoriented by ``ornt``, resampled onto the ``working`` grid
    (``(shape, affine)``, None for none) and cropped to ``box``."""
    working_shape, working_affine = (None, None) if working is None else (tuple(working[0]), working[1].copy())
    return NativeGeometry(native.shape, native.affine.copy(), np.asarray(ornt, dtype=np.float64), box,
                          working_shape, working_affine)  # type: ignore[arg-type]


def _is_label(image: Image) -> bool:
    """Integer and boolean arrays are label images (nearest neighbour); floating ones are maps (linear)."""
    return image.array.dtype.kind in "biu"


def to_prepared(image: Image, geometry: NativeGeometry) -> Image:
    """Map an image on the native grid to the prepared grid (reorient, resample onto the
    working grid if any, then crop/pad). Label (integer) images are resampled by nearest
    neighbour, float maps linearly (:func:`~wmhkit.preprocess.resample.resample_to_grid`).

    Raises
    ------
    GeometryError
        When ``image`` is not on the record's native grid.
    """
    if image.shape != geometry.shape or not np.allclose(
        image.affine, geometry.affine, atol=PREPARED_GRID_ATOL_MM, rtol=0
    ):
        raise GeometryError(None, f"image grid {image.shape} is not the native grid {geometry.shape} of this scan",
                            "resample the image onto the FLAIR grid first")
    canonical = reorient(image, geometry.ornt)
    if geometry.working_shape is not None and geometry.working_affine is not None:
        canonical = resample_to_grid(canonical, geometry.working_shape, geometry.working_affine,
                                     labels=_is_label(image))
    return crop(canonical, geometry.box)


def to_native(image: Image, geometry: NativeGeometry) -> Image:
    """Map an image on the prepared grid back to the scan's native grid.

    Exact (no interpolation) when the prepared grid is the native voxels; when the
    scan was resampled onto a working grid, label (integer) images come back by
    nearest neighbour and float maps (probabilities) by linear interpolation,
    anti-aliased along axes where the native voxels are the coarser
    (:func:`~wmhkit.preprocess.resample.resample_to_grid`), onto exactly the native
    shape and affine.

    Parameters
    ----------
    image
        Image of shape ``geometry.box.shape`` on the prepared grid (any dtype; a
        uint8 label image stays uint8).
    geometry
        The scan's record (see :func:`load_native_geometry`).

    Returns
    -------
    Image
        Array of shape ``geometry.shape`` with affine equal to the native affine;
        voxels outside the prepared box are 0. A resampled float map is float32.

    Raises
    ------
    GeometryError
        When ``image`` is not on the prepared grid of this record.
    """
    if image.shape != geometry.box.shape or not np.allclose(
        image.affine, geometry.prepared_affine, atol=PREPARED_GRID_ATOL_MM, rtol=0
    ):
        raise GeometryError(
            None,
            f"image grid {image.shape} is not the prepared grid {geometry.box.shape} of this scan",
            "pass an image produced on this scan's prepared grid",
        )
    if geometry.resampled:
        native = resample_to_grid(image, geometry.shape, geometry.affine, labels=_is_label(image))
        return Image(native.array, geometry.affine.copy())
    canonical = uncrop(image, geometry.box)
    native = from_canonical(canonical, geometry.ornt)
    if native.shape != geometry.shape:  # would mean a corrupt record, not a user error
        raise GeometryError(None, f"record maps back to {native.shape}, not {geometry.shape}",
                            "re-run wmhkit prepare for this scan")
    return Image(native.array, geometry.affine.copy())


def load_native_geometry(path: str | os.PathLike[str]) -> NativeGeometry:
    """Read the record from a prepared FLAIR's sidecar (pass the ``.json`` or the ``.nii.gz``).

    Raises
    ------
    InputError
        When the sidecar is missing or holds no native-geometry record.
    """
    path = Path(path)
    if not path.name.endswith(".json"):
        path = sidecar_path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the prepare sidecar ({exc})", "re-run wmhkit prepare") from exc
    if SIDECAR_KEY not in record:
        raise InputError(path, f"sidecar has no {SIDECAR_KEY!r} record", "point to a prepared FLAIR's sidecar")
    return NativeGeometry.from_dict(record[SIDECAR_KEY])


def on_prepared_grid(
    label: Image, prepared: Image, geometry: NativeGeometry | None, path: str | os.PathLike[str]
) -> Image:
    """``label`` on the prepared grid of ``prepared``, mapping it there when it is on the native grid.

    Stages that run after ``prepare`` (bronze, silver, external tools) may write
    their masks in the scan's native space; training reads them beside the prepared
    FLAIR through this function.

    Parameters
    ----------
    label
        A label image on the prepared grid or on the scan's native grid.
    prepared
        The prepared FLAIR.
    geometry
        The scan's record (None when the FLAIR has no prepare sidecar: then only the
        prepared grid is accepted).
    path
        The label's file, for error messages.

    Raises
    ------
    GeometryError
        When ``label`` is on neither grid.
    """
    if label.same_grid(prepared, atol_mm=PREPARED_GRID_ATOL_MM):
        return label
    if geometry is not None and label.shape == geometry.shape and np.allclose(
        label.affine, geometry.affine, atol=PREPARED_GRID_ATOL_MM, rtol=0
    ):
        return to_prepared(label, geometry)
    raise GeometryError(
        path, f"label grid {label.shape} is neither the prepared FLAIR grid {prepared.shape} nor the scan's native grid",
        "write the label on the FLAIR's grid (native or prepared) or re-run wmhkit prepare with it",
    )
