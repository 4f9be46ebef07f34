"""Majority vote of binary raters, with each rater's sensitivity and specificity against the vote."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wmhkit.fusion.staple import ConsensusResult, check_raters


def majority_vote(raters: Sequence[np.ndarray], brain_mask: np.ndarray) -> ConsensusResult:
    """Voxels marked by more than half of ``raters`` (ties — half of an even count — are background).

    ``probability`` is the fraction of raters voting WMH (0 outside the brain);
    sensitivity and specificity of each rater are measured against the vote
    inside the brain (NaN when the vote has no WMH / no background). Arguments and errors as in
    :func:`~wmhkit.fusion.staple.staple`.

    Examples
    --------
    >>> brain = np.ones((3, 1, 1), bool)
    >>> votes = [np.array([1, 1, 0]), np.array([1, 0, 0]), np.array([1, 1, 1])]
    >>> result = majority_vote([v.reshape(3, 1, 1) for v in votes], brain)
    >>> result.mask.ravel().tolist(), [round(float(p), 2) for p in result.probability.ravel()]
    ([True, True, False], [1.0, 0.67, 0.33])
    """
    brain, stack = check_raters(raters, brain_mask)
    stack &= brain[None]
    probability = (stack.sum(axis=0) / len(raters)).astype(np.float32)
    mask = stack.sum(axis=0) * 2 > len(raters)
    sensitivity, specificity = [], []
    positives, negatives = int((mask & brain).sum()), int((~mask & brain).sum())
    for rater in stack:
        sensitivity.append(float((rater & mask).sum() / positives) if positives else float("nan"))
        specificity.append(float((~rater & ~mask & brain).sum() / negatives) if negatives else float("nan"))
    return ConsensusResult(probability, mask, tuple(sensitivity), tuple(specificity))
