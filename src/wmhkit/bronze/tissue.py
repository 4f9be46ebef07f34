"""Tissue model shared by the bronze segmenters: a Gaussian mixture of CSF, grey and white matter.

Inside the brain mask, the intensities (FLAIR alone, T1 alone, or the (T1, FLAIR)
pair) are modelled as a mixture of three Gaussians with diagonal covariance,
fitted by expectation–maximisation (Dempster et al. 1977) on a fixed, seeded
subsample of brain voxels, then applied to every brain voxel to give per-voxel
posterior probabilities. The classes are named from their means:

* FLAIR alone: CSF < WM < GM (FLAIR suppresses CSF; cortex is brighter than WM);
* with a T1 (alone or with FLAIR): CSF < GM < WM in T1.

With spatial ``priors`` (per-voxel prior probabilities of each class, e.g. the MNI atlas's
registered tissue maps of :mod:`wmhkit.bronze.atlas`, as in SPM's and FSL FAST's
segmentations), the classes are those of the priors and each voxel's prior replaces the
global mixing weights in the EM; the FLAIR-only model of :class:`~wmhkit.bronze.context.ScanContext`
uses them, because FLAIR's GM/WM contrast is too small, and its sign varies between scanners
(WM brighter than cortex on the NiChart FLAIRs), for intensities alone. Two constraints keep
that mixture from explaining the WMH tail with a broad class: GM and WM share one variance, and
CSF (suppressed in FLAIR) takes no voxel brighter than the darker tissue's mean.

WMH voxels are not a class of their own: they are rare, so in FLAIR they join the
bright GM class and in T1 the dark GM class. The methods read them as robust
deviations from a class's FLAIR level, not as a class.

From the posteriors come the regions the methods search in (all distances in mm
from the affine, so thick-slice scans behave like isotropic ones):

* :func:`brain_depth_mm`: distance to the outside of the brain mask (the cortex
  lies in the outer few mm);
* :func:`ventricles`: CSF deep inside the brain;
* :func:`white_matter_region`: WM plus the ventricles, closed and hole-filled so
  that lesions surrounded by WM or lying between WM and a ventricle are inside it,
  minus the outer cortical shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Tissue class names in the order of :attr:`TissueModel.posteriors`.
TISSUES: tuple[str, ...] = ("csf", "gm", "wm")
#: Brain voxels used to fit the mixture (a seeded subsample when the brain is larger).
FIT_SAMPLE_SIZE = 60_000
#: EM stops after this many iterations or when the mean log-likelihood gains < tolerance.
EM_MAX_ITERATIONS = 40
EM_TOLERANCE = 1e-6
#: Lower bound on a class standard deviation, in units of the feature's robust spread.
_MIN_SD_FRACTION = 1e-3


@dataclass(frozen=True, eq=False)
class TissueModel:
    """A fitted tissue mixture and its posteriors on one grid.

    Attributes
    ----------
    features
        Feature names, e.g. ``("flair",)`` or ``("t1", "flair")``.
    means, sds
        Per tissue (``csf``, ``gm``, ``wm``): mean and standard deviation of each
        feature (normalised intensity units), arrays of shape ``(n_features,)``.
    weights
        Mixing proportion of each tissue inside the brain.
    posteriors
        Per tissue: float32 array ``(X, Y, Z)`` of P(tissue | intensities), 0 outside the brain.
    spatial_priors
        True when per-voxel priors named the classes (``fit_tissue_model(priors=...)``).
    """

    features: tuple[str, ...]
    means: Mapping[str, np.ndarray]
    sds: Mapping[str, np.ndarray]
    weights: Mapping[str, float]
    posteriors: Mapping[str, np.ndarray]
    spatial_priors: bool = False

    def mean(self, tissue: str, feature: str) -> float:
        """Mean of ``feature`` in ``tissue``."""
        return float(self.means[tissue][self.features.index(feature)])

    def sd(self, tissue: str, feature: str) -> float:
        """Standard deviation of ``feature`` in ``tissue``."""
        return float(self.sds[tissue][self.features.index(feature)])

    def summary(self) -> dict[str, dict[str, object]]:
        """JSON-ready means, sds and weights per tissue (for sidecars)."""
        return {
            t: {"mean": dict(zip(self.features, np.round(self.means[t], 5).tolist())),
                "sd": dict(zip(self.features, np.round(self.sds[t], 5).tolist())),
                "weight": round(float(self.weights[t]), 5)}
            for t in TISSUES
        }


def fit_tissue_model(
    brain_mask: np.ndarray,
    *,
    flair: np.ndarray | None = None,
    t1: np.ndarray | None = None,
    seed: int = 0,
    priors: Mapping[str, np.ndarray] | None = None,
) -> TissueModel:
    """Fit the CSF/GM/WM mixture to the brain voxels of ``flair`` and/or ``t1``.

    Parameters
    ----------
    brain_mask
        Boolean (or 0/1) array ``(X, Y, Z)``; the model is fitted and applied inside it.
    flair, t1
        Normalised intensity arrays on the same grid; at least one is required.
        With a T1 the classes are named from the T1 (where GM and WM separate best).
    seed
        Seed of the subsample used for fitting (results are deterministic given it).
    priors
        Optional ``csf``, ``gm``, ``wm`` → ``(X, Y, Z)`` prior probabilities (normalised per voxel
        here), FLAIR alone only; they name the classes and weight each voxel's posterior, GM and WM
        share one variance, and no voxel brighter than the darker tissue's mean is CSF (see the
        module docstring).

    Returns
    -------
    TissueModel

    Raises
    ------
    ValueError
        With no image, an empty brain mask, fewer than 100 brain voxels, or priors with a T1.
    """
    brain = np.asarray(brain_mask).astype(bool)
    channels = {name: image for name, image in (("t1", t1), ("flair", flair)) if image is not None}
    if not channels:
        raise ValueError("fit_tissue_model needs a FLAIR, a T1 or both")
    if brain.sum() < 100:
        raise ValueError(f"the brain mask has {int(brain.sum())} voxels; at least 100 are needed for a tissue model")
    features = tuple(channels)
    if priors is not None and features != ("flair",):
        raise ValueError("tissue priors are for the FLAIR-only model; with a T1 the classes are named from the T1")
    values = np.stack([np.asarray(channels[f], dtype=np.float64)[brain] for f in features], axis=1)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(values), FIT_SAMPLE_SIZE, replace=False) if len(values) > FIT_SAMPLE_SIZE else None
    sample = values if chosen is None else values[chosen]
    if priors is None:
        key = 0  # features[0] names the classes: t1 when present, else flair
        means, sds, weights = _fit_em(sample, _initial_means(sample[:, key]))
        order = np.argsort(means[:, key])  # ascending in the naming feature
        names = ("csf", "gm", "wm") if features[0] == "t1" else ("csf", "wm", "gm")
        means, sds, weights = means[order], sds[order], weights[order]
        responsibilities = _responsibilities(values, means, sds, np.log(weights))
    else:
        names = TISSUES
        log_prior = _log_priors(priors, brain)
        fit_log_prior = log_prior if chosen is None else log_prior[chosen]
        means, sds, weights = _fit_em(sample, np.exp(fit_log_prior), log_prior=fit_log_prior)
        responsibilities = _responsibilities(values, means, sds, log_prior, csf_is_dark=True)
    posteriors = {}
    for index, name in enumerate(names):
        volume = np.zeros(brain.shape, np.float32)
        volume[brain] = responsibilities[:, index]
        posteriors[name] = volume
    by_name = {name: index for index, name in enumerate(names)}
    return TissueModel(
        features,
        {t: means[by_name[t]] for t in TISSUES},
        {t: sds[by_name[t]] for t in TISSUES},
        {t: float(weights[by_name[t]]) for t in TISSUES},
        posteriors,
        spatial_priors=priors is not None,
    )


def _initial_means(values: np.ndarray) -> np.ndarray:
    """Class means seeded at the 5th, 45th and 85th percentiles of the naming feature."""
    return np.percentile(values, [5.0, 45.0, 85.0])


def _log_priors(priors: Mapping[str, np.ndarray], brain: np.ndarray) -> np.ndarray:
    """log of the per-voxel priors of :data:`TISSUES` inside ``brain``, normalised to sum to 1: ``(n, 3)``."""
    stacked = np.stack([np.asarray(priors[t], np.float64)[brain] for t in TISSUES], axis=1)
    stacked = np.maximum(stacked, 1e-6)
    return np.log(stacked / stacked.sum(axis=1, keepdims=True))


def _fit_em(sample: np.ndarray, initial: np.ndarray, *,
            log_prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a 3-class diagonal Gaussian mixture on ``sample`` (n, d).

    ``initial``: the class means along the first feature (3,), each voxel starting in the
    nearest class; or, with ``log_prior`` (n, 3) per-voxel log prior probabilities that replace
    the mixing weights, the initial responsibilities (n, 3). Returns the means and sds
    (3, d) and the mean responsibilities (3,).

    Hand-written (about 20 lines) because scikit-learn is not a runtime dependency
    of wmhkit and the mixture needs no more than this.
    """
    if log_prior is None:
        labels = np.argmin(np.abs(sample[:, :1] - initial[None, :]), axis=1)
        resp = np.eye(len(initial))[labels]
    else:
        resp = initial
    spread = np.maximum(np.subtract(*np.percentile(sample, [90, 10], axis=0)), 1e-6)
    floor = spread * _MIN_SD_FRACTION
    previous = -np.inf
    for _ in range(EM_MAX_ITERATIONS):
        totals = resp.sum(axis=0) + 1e-12
        weights = totals / totals.sum()
        means = (resp.T @ sample) / totals[:, None]
        variances = (resp.T @ sample**2) / totals[:, None] - means**2
        if log_prior is not None:  # GM and WM share one variance (pooled): neither becomes a catch-all
            tissue = [TISSUES.index("gm"), TISSUES.index("wm")]
            variances[tissue] = (variances[tissue] * totals[tissue, None]).sum(axis=0) / totals[tissue].sum()
        sds = np.sqrt(np.maximum(variances, floor**2))
        log_joint = _log_joint(sample, means, sds, np.log(weights) if log_prior is None else log_prior)
        if log_prior is not None:
            log_joint = _csf_is_dark(log_joint, sample, means)
        log_norm = np.logaddexp.reduce(log_joint, axis=1)
        resp = np.exp(log_joint - log_norm[:, None])
        likelihood = float(log_norm.mean())
        if likelihood - previous < EM_TOLERANCE:
            break
        previous = likelihood
    return means, sds, weights


def _csf_is_dark(log_joint: np.ndarray, values: np.ndarray, means: np.ndarray) -> np.ndarray:
    """FLAIR suppresses CSF: a voxel brighter than the darker tissue class's mean is not CSF.

    Without this the broad CSF class (partial volume with tissue) becomes the catch-all of the
    bright WMH tail. ``log_joint`` (n, 3) in :data:`TISSUES` order, ``values`` (n, 1) FLAIR.
    """
    tissue_level = min(means[TISSUES.index("gm"), 0], means[TISSUES.index("wm"), 0])
    out = log_joint.copy()
    out[values[:, 0] > tissue_level, TISSUES.index("csf")] = -np.inf
    return out


def _log_joint(values: np.ndarray, means: np.ndarray, sds: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """log(weight_k · N(values | mean_k, diag(sd_k²))), shape (n, k); ``log_weights`` (k,) or per row (n, k)."""
    z = (values[:, None, :] - means[None, :, :]) / sds[None, :, :]
    return np.atleast_2d(log_weights) - 0.5 * (z**2).sum(axis=2) - np.log(sds).sum(axis=1)[None, :] \
        - 0.5 * values.shape[1] * np.log(2 * np.pi)


def _responsibilities(values: np.ndarray, means: np.ndarray, sds: np.ndarray, log_weights: np.ndarray, *,
                      csf_is_dark: bool = False) -> np.ndarray:
    """Posterior class probabilities of every row of ``values`` (float32, shape (n, k)); ``log_weights`` (k,) or
    per row (n, k); ``csf_is_dark`` applies :func:`_csf_is_dark` (the prior model's rule, as in its EM)."""
    out = np.empty((len(values), len(means)), np.float32)
    chunk = 500_000
    for start in range(0, len(values), chunk):
        rows = slice(start, start + chunk)
        log_joint = _log_joint(values[rows], means, sds, log_weights if log_weights.ndim == 1 else log_weights[rows])
        if csf_is_dark:
            log_joint = _csf_is_dark(log_joint, values[rows], means)
        out[rows] = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1)[:, None])
    return out


def brain_depth_mm(brain_mask: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) from each brain voxel centre to the nearest voxel outside the brain; 0 outside."""
    padded = np.pad(np.asarray(brain_mask).astype(bool), 1)  # the grid edge counts as outside
    depth = ndimage.distance_transform_edt(padded, sampling=spacing_mm)[1:-1, 1:-1, 1:-1]
    return depth.astype(np.float32)


def distance_to_mm(mask: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) from each voxel centre to the nearest voxel of ``mask`` (inf when it is empty)."""
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return ndimage.distance_transform_edt(~mask, sampling=spacing_mm).astype(np.float32)


def ventricles(
    tissue: TissueModel, brain_mask: np.ndarray, spacing_mm: tuple[float, float, float], *,
    min_depth_mm: float = 15.0, min_volume_ml: float = 0.5,
) -> np.ndarray:
    """Deep CSF: CSF (posterior > 0.5) components reaching ``min_depth_mm`` into the brain.

    A CSF component counts when it holds at least ``min_volume_ml`` of CSF deeper
    than ``min_depth_mm`` (sulci and the outer CSF are shallow); the whole component
    is returned, so the ventricle walls are included.
    """
    csf = tissue.posteriors["csf"] > 0.5
    depth = brain_depth_mm(brain_mask, spacing_mm)
    deep = csf & (depth > min_depth_mm)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    labels, count = ndimage.label(deep, structure=np.ones((3, 3, 3)))
    if count == 0:
        return np.zeros(csf.shape, bool)
    sizes = np.bincount(labels.ravel())[1:] * voxel_ml
    keep = np.flatnonzero(sizes >= min_volume_ml) + 1
    if keep.size == 0:
        return np.zeros(csf.shape, bool)
    seeds = np.isin(labels, keep)
    return ndimage.binary_propagation(seeds, mask=csf & (depth > min_depth_mm / 3.0))


def close_mm(mask: np.ndarray, radius_mm: float, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Morphological closing by a ball of ``radius_mm`` (through distance transforms, so anisotropy is exact)."""
    if radius_mm <= 0:
        return np.asarray(mask).astype(bool)
    pad = int(np.ceil(radius_mm / min(spacing_mm))) + 1
    padded = np.pad(np.asarray(mask).astype(bool), pad)
    dilated = distance_to_mm(padded, spacing_mm) <= radius_mm
    closed = ndimage.distance_transform_edt(dilated, sampling=spacing_mm) > radius_mm
    return closed[pad:-pad, pad:-pad, pad:-pad]


def white_matter_region(
    tissue: TissueModel, brain_mask: np.ndarray, spacing_mm: tuple[float, float, float], *,
    closing_mm: float = 2.0, cortex_margin_mm: float = 3.0, ventricle_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Where WMH may lie: WM ∪ ventricles, closed by ``closing_mm``, holes filled, minus the cortex shell.

    Parameters
    ----------
    tissue
        Fitted tissue model (its ``wm`` and ``csf`` posteriors are used).
    brain_mask
        Boolean ``(X, Y, Z)``.
    spacing_mm
        Voxel size from the affine.
    closing_mm
        Radius of the closing that bridges thin GM-like gaps inside WM (lesion rims).
    cortex_margin_mm
        Voxels closer than this to the outside of the brain are excluded (cortex;
        cortex lining deep sulci is left to the methods' cluster location filters).
    ventricle_mask
        Precomputed :func:`ventricles` (computed when None).

    Returns
    -------
    numpy.ndarray
        Boolean ``(X, Y, Z)``.
    """
    brain = np.asarray(brain_mask).astype(bool)
    vent = ventricles(tissue, brain, spacing_mm) if ventricle_mask is None else ventricle_mask
    wm = (tissue.posteriors["wm"] > 0.5) | vent
    region = ndimage.binary_fill_holes(close_mm(wm, closing_mm, spacing_mm))
    return region & brain & (brain_depth_mm(brain, spacing_mm) > cortex_margin_mm)


def remove_small_clusters(mask: np.ndarray, min_volume_mm3: float, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Drop 26-connected clusters smaller than ``min_volume_mm3``."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel()) * float(np.prod(spacing_mm))
    keep = sizes >= min_volume_mm3
    keep[0] = False
    return keep[labels]


def robust_location_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD·1.4826 (the normal-consistent robust standard deviation) of ``values``.

    Raises
    ------
    ValueError
        When ``values`` is empty.
    """
    if values.size == 0:
        raise ValueError("no voxels to estimate normal-appearing tissue statistics from")
    median = float(np.median(values))
    return median, max(1.4826 * float(np.median(np.abs(values - median))), 1e-6)


def cluster_shell_fraction(
    mask: np.ndarray, reference: np.ndarray, spacing_mm: tuple[float, float, float], shell_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """For each 26-connected cluster of ``mask``: the fraction of its surrounding shell lying in ``reference``.

    The shell of a cluster is the set of voxels outside ``mask`` within ``shell_mm``
    of it (each shell voxel belongs to its nearest cluster). A WMH cluster is
    surrounded by white matter (and ventricles); a cluster of bright cortex or of
    deep grey matter is not.

    Returns
    -------
    labels : numpy.ndarray
        int32 cluster labels ``(X, Y, Z)`` (0 = background).
    fraction : numpy.ndarray
        Shape ``(n_clusters + 1,)``; ``fraction[k]`` for cluster ``k`` (0 when it has no shell).
    """
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count == 0:
        return labels, np.zeros(1)
    distance, indices = ndimage.distance_transform_edt(labels == 0, sampling=spacing_mm, return_indices=True)
    nearest = labels[tuple(indices)]
    shell = (labels == 0) & (distance <= shell_mm)
    total = np.bincount(nearest[shell], minlength=count + 1).astype(np.float64)
    inside = np.bincount(nearest[shell & np.asarray(reference).astype(bool)], minlength=count + 1)
    fraction = np.divide(inside, total, out=np.zeros(count + 1), where=total > 0)
    return labels, fraction


def keep_surrounded_clusters(
    mask: np.ndarray, reference: np.ndarray, spacing_mm: tuple[float, float, float], *,
    shell_mm: float, min_fraction: float,
) -> np.ndarray:
    """Clusters of ``mask`` whose shell (see :func:`cluster_shell_fraction`) is at least ``min_fraction`` ``reference``."""
    labels, fraction = cluster_shell_fraction(mask, reference, spacing_mm, shell_mm)
    keep = fraction >= min_fraction
    keep[0] = False
    return keep[labels]


def supratentorial(ventricle_mask: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Voxels at or above the lowest slice of the ventricles along the (canonical, superior) third axis.

    Prepared images are in RAS+ order, so the third axis points up; brainstem and
    cerebellum lie below the lowest ventricle slice. All True when no ventricle was found.
    """
    region = np.ones(shape, bool)
    slices = np.flatnonzero(np.asarray(ventricle_mask).any(axis=(0, 1)))
    if slices.size:
        region[:, :, : slices[0]] = False
    return region
