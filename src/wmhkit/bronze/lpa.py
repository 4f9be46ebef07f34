"""Lesion probability from a logistic model of FLAIR intensity and a spatial lesion prior (LST-LPA-like).

Follows the lesion prediction algorithm (LPA) of the LST toolbox for SPM: Schmidt P.,
"Bayesian inference for structured additive regression models for large-scale
problems with applications to medical imaging", PhD thesis, LMU München (2017),
chapter 6. LPA models each voxel's lesion probability by a logistic regression on
the bias-corrected FLAIR intensity, a spatial covariate (a lesion belief map in
MNI space) and their interaction, fitted on annotated scans. This version keeps
that structure with covariates that do not depend on the intensity storage of a
scan:

``z``
    denoised FLAIR in robust sds above normal-appearing WM: ``(FLAIR − m) / s`` with
    the WM levels ``m``, ``s`` of :func:`~wmhkit.bronze.growth.normal_levels` (T1
    tissue model when there is a T1) measured on the same denoised FLAIR, clipped to
    [−10, 30]. Denoising (Gaussian, sd ``smoothing_mm``, in-plane on thick slices)
    makes ``z`` comparable between scans: a lesion spans several voxels, noise is
    voxel-wise, and real scans are noisier voxel to voxel than the phantoms the
    coefficients come from (see :mod:`wmhkit.bronze.tophat`);
``local``
    ``z`` minus its local mean: Gaussian-weighted over the brain (normalised
    convolution, sd ``neighbourhood_mm``, in-plane only when slices are
    ≥ :data:`THICK_SLICE_MM`), of ``z`` clipped to [−3, 3] so a lesion does not
    raise its own background;
``logit_prior``
    logit of the lesion prior registered to the scan (:func:`registered_prior`),
    floored at :data:`PRIOR_FLOOR`;
``z_prior``
    ``z`` × prior / (prior's maximum): brightness counts more where lesions are common;
``z_above_2``, ``z_above_4``
    ``max(z − 2, 0)`` and ``max(z − 4, 0)``: hinges that let the log-odds rise
    faster once a voxel is clearly brighter than normal WM (a straight line in ``z``
    cannot);
``edge``
    ``exp(−depth / 3 mm)``, depth being the distance to the outside of the brain
    mask: near the edge lie the cortex and partial-volumed CSF, never WMH.

``P(lesion) = σ(β₀ + β·features)`` inside the brain mask, 0 outside. The mask is
``P > threshold`` (0.1, where the pooled Dice on the fitting phantoms peaks: 0.48 /
0.54 / 0.57 / 0.57 / 0.50 at 0.03 / 0.05 / 0.1 / 0.2 / 0.5, printed by ``fit_lpa.py``;
the probability is calibrated to the phantoms' lesion prevalence of a few per mille,
so a lesion needs far less than even odds to be the best guess for overlap; LST-LPA
itself binarises at 0.5), deeper than
``edge_margin_mm`` into the brain mask (the brain-mask edge is partial-volumed
cortex and CSF, never WMH in a prepared scan), and 26-connected clusters of at
least ``min_lesion_mm3``.

The prior (``wmhkit/data/lpa_prior.nii.gz``, on nilearn's MNI ICBM152 2009a grid at
3 mm) blends the lesion frequency of the Lesjak et al. (2018) consensus masks of 27
MS patients (the three annotated patients 07, 19, 26 left out) with the phantom
lesion model's frequency (:mod:`wmhkit.synth.lesions`: periventricular caps and
bands, deep WM foci), both smoothed; the coefficients
(``wmhkit/data/lpa_coefficients.json``) are fitted on phantoms only. Both are built
by ``benchmarks/fit_lpa.py`` (its docstring gives the commands). The MNI T1
template is registered to each prepared FLAIR by an affine transform
(:func:`wmhkit.bronze.atlas.mni_transform`, shared with the tissue priors) and the prior follows it.

Known limit: fitted on phantoms, the probability is too low on real scans. On the
three annotated Lesjak scans the mask holds 12–35 % of the gold volume; a threshold
chosen on two of them and applied to the third (leave one scan out, 0.02–0.03)
would raise its Dice from 0.32 to 0.46 (``benchmarks/bench_labels.py``). The shipped
threshold is not tuned on those scans.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.growth import normal_levels
from wmhkit.bronze.register import resample_onto
from wmhkit.bronze.tissue import remove_small_clusters
from wmhkit.errors import InputError
from wmhkit.io.image import Image

#: Package data folder of the prior and the coefficients.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PRIOR_FILE = "lpa_prior.nii.gz"
COEFFICIENTS_FILE = "lpa_coefficients.json"
#: Feature names, in the order of the coefficients.
FEATURES: tuple[str, ...] = ("z", "local", "logit_prior", "z_prior", "z_above_2", "z_above_4", "edge")
#: Smallest prior probability (log-odds stay finite where no lesion was ever seen).
PRIOR_FLOOR = 1e-4
#: Slices at least this thick (mm) get in-plane neighbourhoods.
THICK_SLICE_MM = 3.0


@dataclass(frozen=True)
class LpaParameters:
    """Parameters of :func:`segment_lpa` (see the module docstring); distances in mm, volume in mm³."""

    threshold: float = 0.1
    smoothing_mm: float = 1.0
    neighbourhood_mm: float = 8.0
    edge_decay_mm: float = 3.0
    edge_margin_mm: float = 2.0
    min_lesion_mm3: float = 10.0


@dataclass(frozen=True)
class LpaModel:
    """Fitted logistic model: intercept and one coefficient per :data:`FEATURES` entry."""

    intercept: float
    coefficients: tuple[float, ...]

    def probability(self, features: np.ndarray) -> np.ndarray:
        """σ(intercept + features · coefficients) for features of shape ``(n, len(FEATURES))``."""
        eta = self.intercept + features @ np.asarray(self.coefficients)
        return (0.5 * (1.0 + np.tanh(0.5 * eta))).astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_model(path: Path = DATA_DIR / COEFFICIENTS_FILE) -> LpaModel:
    """The fitted coefficients from package data.

    Raises
    ------
    InputError
        When the file is missing or does not name :data:`FEATURES` (rebuild it with benchmarks/fit_lpa.py).
    """
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
        coefficients = tuple(float(stored["coefficients"][name]) for name in FEATURES)
        return LpaModel(float(stored["intercept"]), coefficients)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(path, f"cannot read the LPA coefficients ({exc})",
                         "reinstall wmhkit, or rebuild them with benchmarks/fit_lpa.py fit") from exc


@functools.lru_cache(maxsize=1)
def load_prior(path: Path = DATA_DIR / PRIOR_FILE) -> Image:
    """The lesion prior on its MNI grid (package data)."""
    try:
        stored = nib.load(str(path))
        return Image(np.asarray(stored.get_fdata(), np.float32), stored.affine)
    except (OSError, nib.filebasedimages.ImageFileError) as exc:
        raise InputError(path, f"cannot read the LPA lesion prior ({exc})",
                         "reinstall wmhkit, or rebuild it with benchmarks/fit_lpa.py prior") from exc


def registered_prior(scan: ScanContext) -> np.ndarray:
    """The lesion prior on ``scan``'s grid (float32 ``(X, Y, Z)``, 0 outside the template's field of view),
    through the scan's :attr:`~wmhkit.bronze.context.ScanContext.mni_transform` (cached on the scan)."""
    return scan.cached("lpa_prior", lambda: resample_onto(load_prior(), scan.flair, scan.mni_transform).array)


def neighbourhood_sd_voxels(spacing_mm: tuple[float, float, float], sd_mm: float) -> list[float]:
    """Gaussian sd per axis in voxels: ``sd_mm`` in mm, 0 across slices at least :data:`THICK_SLICE_MM` thick."""
    return [0.0 if (axis == 2 and s >= THICK_SLICE_MM) else sd_mm / s for axis, s in enumerate(spacing_mm)]


def lpa_features(scan: ScanContext, parameters: LpaParameters = LpaParameters()) -> np.ndarray:
    """The :data:`FEATURES` of every brain voxel, float32 ``(n_brain_voxels, len(FEATURES))`` in ``brain_mask`` order."""
    brain = scan.brain_mask
    flair = ndimage.gaussian_filter(scan.flair.array.astype(np.float32),
                                    neighbourhood_sd_voxels(scan.spacing_mm, parameters.smoothing_mm))
    levels = normal_levels(scan, flair=flair)
    z = np.clip((flair - levels.wm_median) / levels.wm_sd, -10.0, 30.0).astype(np.float32)
    sd = neighbourhood_sd_voxels(scan.spacing_mm, parameters.neighbourhood_mm)
    weight = ndimage.gaussian_filter(brain.astype(np.float32), sd)
    background = ndimage.gaussian_filter(np.where(brain, np.clip(z, -3.0, 3.0), 0.0).astype(np.float32), sd)
    local = z - background / np.maximum(weight, 1e-3)
    prior = np.clip(registered_prior(scan), PRIOR_FLOOR, 1.0 - PRIOR_FLOOR)
    peak = float(prior[brain].max())
    z_brain = z[brain]
    columns = (z_brain, local[brain], np.log(prior[brain] / (1.0 - prior[brain])), z_brain * prior[brain] / peak,
               np.maximum(z_brain - 2.0, 0.0), np.maximum(z_brain - 4.0, 0.0),
               np.exp(-scan.depth_mm[brain] / parameters.edge_decay_mm))
    return np.stack(columns, axis=1).astype(np.float32)


def lpa_probability(scan: ScanContext, parameters: LpaParameters = LpaParameters()) -> np.ndarray:
    """Lesion probability map, float32 ``(X, Y, Z)`` on the prepared grid (0 outside the brain; cached on the scan)."""
    def compute() -> np.ndarray:
        probability = np.zeros(scan.flair.shape, np.float32)
        probability[scan.brain_mask] = load_model().probability(lpa_features(scan, parameters))
        return probability

    return scan.cached(("lpa_probability", parameters), compute)


def segment_lpa(scan: ScanContext, parameters: LpaParameters = LpaParameters()) -> np.ndarray:
    """WMH mask (boolean ``(X, Y, Z)`` on the prepared grid) of one prepared scan: the LPA probability above
    ``threshold`` (see the module docstring)."""
    probability = lpa_probability(scan, parameters)
    candidates = (probability > parameters.threshold) & (scan.depth_mm > parameters.edge_margin_mm)
    return remove_small_clusters(candidates, parameters.min_lesion_mm3, scan.spacing_mm)
