"""What a bronze method sees of one prepared scan, with the shared tissue model computed once.

Every method takes a :class:`ScanContext`: the prepared (canonical, cropped,
bias-corrected, normalised: 98th brain percentile = 1, the bright tail kept above it) FLAIR, its brain mask and optionally the T1 on
the same grid. The tissue model, brain depth, ventricles and WM region are
computed on first use and shared by all methods run on the scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import SimpleITK as sitk

from wmhkit.bronze.atlas import mni_transform, tissue_priors
from wmhkit.bronze.tissue import (
    TissueModel,
    brain_depth_mm,
    fit_tissue_model,
    ventricles,
    white_matter_region,
)
from wmhkit.errors import MaskError
from wmhkit.io.image import Image


@dataclass(eq=False)
class ScanContext:
    """One prepared scan and the derived maps the methods share.

    Parameters
    ----------
    flair
        Prepared FLAIR (float, ≥ 0 inside the brain; lesions may exceed 1).
    brain_mask
        Brain mask on the FLAIR grid (any integer/bool array).
    t1
        Prepared T1 on the FLAIR grid, or None.
    seed
        Seed of the tissue model's fitting subsample.

    Raises
    ------
    MaskError
        When the brain mask is empty or not on the FLAIR grid.
    """

    flair: Image
    brain_mask: np.ndarray
    t1: Image | None = None
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.brain_mask = np.asarray(self.brain_mask).astype(bool)
        if self.brain_mask.shape != self.flair.shape:
            raise MaskError(None, f"brain mask shape {self.brain_mask.shape} differs from the FLAIR's {self.flair.shape}",
                            "pass the brain mask of this scan")
        if not self.brain_mask.any():
            raise MaskError(None, "the brain mask is empty", "re-run wmhkit prepare or give a non-empty brain mask")
        if self.t1 is not None and self.t1.shape != self.flair.shape:
            raise MaskError(None, f"T1 shape {self.t1.shape} differs from the FLAIR's {self.flair.shape}",
                            "resample the T1 onto the FLAIR grid (wmhkit prepare does)")

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) from the FLAIR's affine."""
        return self.flair.spacing_mm

    @cached_property
    def tissue(self) -> TissueModel:
        """CSF/GM/WM mixture on (T1, FLAIR) when a T1 exists, else on FLAIR alone with the MNI atlas's
        tissue priors (:func:`wmhkit.bronze.atlas.tissue_priors`)."""
        if self.t1 is not None:
            return fit_tissue_model(self.brain_mask, flair=self.flair.array, t1=self.t1.array, seed=self.seed)
        priors = tissue_priors(self.flair, self.brain_mask, self.mni_transform)
        return fit_tissue_model(self.brain_mask, flair=self.flair.array, seed=self.seed, priors=priors)

    @cached_property
    def mni_transform(self) -> sitk.Transform:
        """The scan's affine registration to MNI space (:func:`wmhkit.bronze.atlas.mni_transform`)."""
        return mni_transform(self.flair, self.brain_mask)

    @cached_property
    def t1_tissue(self) -> TissueModel:
        """CSF/GM/WM mixture on the T1 alone (FreeSurfer-like methods ignore FLAIR).

        Raises
        ------
        ValueError
            When the scan has no T1.
        """
        if self.t1 is None:
            raise ValueError("this scan has no T1")
        return fit_tissue_model(self.brain_mask, t1=self.t1.array, seed=self.seed)

    @cached_property
    def depth_mm(self) -> np.ndarray:
        """Distance (mm) to the outside of the brain mask."""
        return brain_depth_mm(self.brain_mask, self.spacing_mm)

    @cached_property
    def ventricles(self) -> np.ndarray:
        """Deep CSF from :attr:`tissue`."""
        return ventricles(self.tissue, self.brain_mask, self.spacing_mm)

    @cached_property
    def lesion_surroundings(self) -> np.ndarray:
        """Tissue a WMH cluster may be surrounded by: white matter (posterior > 0.5) or ventricle.

        White matter comes from :attr:`t1_tissue` when the scan has a T1, else from
        :attr:`tissue`. T1 separates WM from cortex and deep grey matter well, while
        the FLAIR-driven model does not: on the three annotated Lesjak scans the
        (T1, FLAIR) model's WM shell of true lesions (0.41–0.47 on patient 26) overlapped that of
        FLAIR-bright deep grey matter (0.28–0.41), the T1 model's did not (lesions
        0.56–0.71, deep grey matter ≤ 0.39 on patients 07 and 26).
        """
        model = self.tissue if self.t1 is None else self.t1_tissue
        return (model.posteriors["wm"] > 0.5) | self.ventricles

    def cached(self, key: object, compute: Callable[[], Any]) -> Any:
        """``compute()``, computed on first use for this scan and kept (maps a method derives once per scan)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def wm_region(self, cortex_margin_mm: float, closing_mm: float) -> np.ndarray:
        """:func:`~wmhkit.bronze.tissue.white_matter_region` of :attr:`tissue` (cached per parameters)."""
        key = ("wm_region", cortex_margin_mm, closing_mm)
        if key not in self._cache:
            self._cache[key] = white_matter_region(
                self.tissue, self.brain_mask, self.spacing_mm, closing_mm=closing_mm,
                cortex_margin_mm=cortex_margin_mm, ventricle_mask=self.ventricles,
            )
        return self._cache[key]
