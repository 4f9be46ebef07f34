"""Binary STAPLE (Warfield et al., IEEE TMI 2004) restricted to the brain.

STAPLE estimates, by EM, the probability that each voxel is truly WMH and each
rater's sensitivity and specificity. Its prior — the foreground probability
before the raters are heard — is the mean foreground fraction over *all voxels
of the image*, and its specificity estimate counts every background voxel. Run
over a scan's bounding box, the air and skull (which every rater calls
background) would push the prior towards 0 and every specificity towards 1.

So the rater decisions are taken at the brain-mask voxels only: they are laid
out as a one-voxel-wide image of the brain voxels and given to SimpleITK's
``STAPLEImageFilter``. STAPLE has no spatial term — a voxel's estimate depends
only on the raters' decisions there and the global parameters — so this is
*exactly* STAPLE restricted to the brain. Voxels outside the brain get probability 0.

Iterations are capped at :data:`MAX_ITERATIONS`. When the raters agree, the EM
converges within a few dozen iterations (about 2 s on a 1 mm brain of 1.3 M
voxels and 4 raters). When they disagree strongly it can drift for hundreds of
iterations towards trusting a single rater (seen on phantoms and on real scans:
1000 iterations took 30–70 s and shrank the consensus to one method's mask);
the cap bounds the time and stops that drift early.

:func:`staple_pruned` (silver ``--method staple-pruned``) runs STAPLE once, drops
the raters whose estimated sensitivity is far below the most sensitive rater's,
and runs STAPLE again on the others. STAPLE weighs raters by their estimated
sensitivity and specificity, but a rater that finds almost nothing (estimated
sensitivity 0.06–0.16 for ``tophat`` and ``lpa`` on the real Lesjak scans) still
has a near-perfect specificity, and its "no" votes pull faint lesions out of the
consensus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

#: STAPLE stops after this many EM iterations at most (see the module docstring).
MAX_ITERATIONS = 50
#: Decimals kept of the probabilities and of each rater's sensitivity and specificity.
DECIMALS = 6
#: Default threshold on the STAPLE probability.
THRESHOLD = 0.5
#: :func:`staple_pruned` keeps raters whose sensitivity is at least this fraction of the highest.
MIN_RELATIVE_SENSITIVITY = 0.5


@dataclass(frozen=True, eq=False)
class ConsensusResult:
    """A consensus of binary raters on one grid.

    Attributes
    ----------
    probability
        float32 ``(X, Y, Z)``: P(WMH) per voxel (0 outside the brain).
    mask
        bool ``(X, Y, Z)``: the consensus mask.
    sensitivity, specificity
        Per rater, in input order; NaN when undefined (no WMH in the consensus /
        no background).
    fused
        Per rater: True when it took part in the final consensus (False: dropped by
        :func:`staple_pruned`, whose estimates are then those of the first pass).
    """

    probability: np.ndarray
    mask: np.ndarray
    sensitivity: tuple[float, ...]
    specificity: tuple[float, ...]
    fused: tuple[bool, ...] | None = None


def staple(
    raters: Sequence[np.ndarray],
    brain_mask: np.ndarray,
    *,
    threshold: float = THRESHOLD,
    max_iterations: int = MAX_ITERATIONS,
) -> ConsensusResult:
    """STAPLE consensus of binary ``raters`` inside ``brain_mask``.

    Parameters
    ----------
    raters
        Two or more boolean/0-1 arrays ``(X, Y, Z)`` on one grid.
    brain_mask
        Boolean array of the same shape; estimation uses its voxels only.
    threshold
        The consensus mask is ``probability > threshold`` (strictly above 0.5 by default).
    max_iterations
        EM iteration cap.

    Returns
    -------
    ConsensusResult

    Raises
    ------
    ValueError
        Fewer than two raters, shapes that differ, or an empty brain mask.

    Examples
    --------
    >>> brain = np.ones((4, 4, 1), bool)
    >>> a = np.zeros((4, 4, 1), bool); a[:2] = True
    >>> result = staple([a, a, a], brain)
    >>> bool((result.mask == a).all())
    True
    """
    brain, stack = check_raters(raters, brain_mask)
    decisions = stack[:, brain]  # (raters, voxels in brain)
    probability = np.zeros(brain.shape, np.float32)
    if not decisions.any() or decisions.all():
        # Unanimous everywhere: STAPLE's EM is degenerate (0/0); the answer is the raters' own.
        probability[brain] = decisions[0].astype(np.float32)
        n = len(raters)
        return ConsensusResult(probability, probability > threshold, (float("nan"),) * n, (float("nan"),) * n)
    # The brain voxels as an (n, 1, 1) image: SimpleITK sees exactly the brain, nothing else.
    images = [sitk.GetImageFromArray(rater.astype(np.uint8).reshape(-1, 1, 1)) for rater in decisions]
    estimator = sitk.STAPLEImageFilter()
    estimator.SetForegroundValue(1.0)
    estimator.SetConfidenceWeight(1.0)  # Warfield's STAPLE
    estimator.SetMaximumIterations(max_iterations)
    estimator.SetNumberOfThreads(1)
    # A copy, not a view: a view of the unnamed result image reads freed memory once it is collected
    # (all-zero silver maps on Dask workers).
    weights = sitk.GetArrayFromImage(estimator.Execute(images)).reshape(-1)
    # The EM's sums over a million voxels come out a few 1e-10 apart between processes (the
    # vectorised code path depends on buffer alignment, and on the thread split when threaded);
    # rounded to DECIMALS, equal inputs give byte-identical maps and sidecars. Every voxel with
    # the same votes has the same probability, so there are at most 2**raters distinct values.
    probability[brain] = np.round(weights, DECIMALS).astype(np.float32)
    return ConsensusResult(
        probability, probability > threshold,
        tuple(round(float(v), DECIMALS) for v in estimator.GetSensitivity()),
        tuple(round(float(v), DECIMALS) for v in estimator.GetSpecificity()),
    )


def staple_pruned(
    raters: Sequence[np.ndarray], brain_mask: np.ndarray, *, threshold: float = THRESHOLD,
    max_iterations: int = MAX_ITERATIONS,
) -> ConsensusResult:
    """STAPLE without the raters whose estimated sensitivity is below :data:`MIN_RELATIVE_SENSITIVITY` × the highest.

    A first STAPLE estimates every rater's sensitivity; raters below the bound are
    dropped (the two most sensitive are always kept) and STAPLE runs again on the
    rest. Kept raters report the second pass's estimates, dropped ones the first's
    (see :attr:`ConsensusResult.fused`).

    Examples
    --------
    >>> brain = np.ones((10, 10, 1), bool)
    >>> wide = np.zeros((10, 10, 1), bool); wide[:4] = True
    >>> narrow = np.zeros((10, 10, 1), bool); narrow[:1] = True
    >>> staple_pruned([wide, wide, narrow, narrow], brain).fused
    (True, True, False, False)
    """
    first = staple(raters, brain_mask, threshold=threshold, max_iterations=max_iterations)
    sensitivity = np.nan_to_num(np.asarray(first.sensitivity), nan=0.0)
    keep = sensitivity >= MIN_RELATIVE_SENSITIVITY * sensitivity.max()
    keep[np.argsort(-sensitivity, kind="stable")[:2]] = True
    if keep.all():
        return ConsensusResult(first.probability, first.mask, first.sensitivity, first.specificity, (True,) * len(raters))
    kept = [rater for rater, k in zip(raters, keep) if k]
    second = staple(kept, brain_mask, threshold=threshold, max_iterations=max_iterations)
    estimates = iter(zip(second.sensitivity, second.specificity))
    merged = [next(estimates) if k else (a, b) for k, a, b in zip(keep, first.sensitivity, first.specificity)]
    return ConsensusResult(second.probability, second.mask, tuple(m[0] for m in merged), tuple(m[1] for m in merged),
                           tuple(bool(k) for k in keep))


def check_raters(raters: Sequence[np.ndarray], brain_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate raters and brain mask; return the boolean brain and the (raters, X, Y, Z) boolean stack."""
    if len(raters) < 2:
        raise ValueError(f"a consensus needs at least two raters, got {len(raters)}")
    brain = np.asarray(brain_mask).astype(bool)
    shapes = {np.asarray(r).shape for r in raters} | {brain.shape}
    if len(shapes) != 1:
        raise ValueError(f"raters and brain mask must share one shape, got {sorted(shapes)}")
    if not brain.any():
        raise ValueError("the brain mask is empty")
    return brain, np.stack([np.asarray(r).astype(bool) for r in raters])
