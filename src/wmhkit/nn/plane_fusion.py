"""Fusion of per-plane WMH probability maps, and the threshold that makes the mask.

Rules (all voxel-wise, on maps of one grid):

``mean``
    Arithmetic mean (default): each plane's evidence counts equally.
``median``
    Median; with three planes, ``median >= t`` exactly when at least two planes
    reach ``t``, so thresholding it is the majority vote of the binarised planes.
``max``
    Most sensitive: a voxel found in any plane.
``geometric_mean``
    Most specific: ``(p1 · p2 · … · pn)^(1/n)``, low when any plane disagrees.

The mask is ``wmh_prob >= threshold`` (the MICCAI 2017 convention that a value
of exactly 0.5 is positive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FUSION_RULES: tuple[str, ...] = ("mean", "median", "max", "geometric_mean")
DEFAULT_THRESHOLD = 0.5


def fuse_probabilities(plane_probs: Sequence[np.ndarray], rule: str = "mean") -> np.ndarray:
    """Fuse probability maps of several planes into one.

    Parameters
    ----------
    plane_probs
        One or more arrays of identical shape, values in [0, 1].
    rule
        One of :data:`FUSION_RULES`.

    Returns
    -------
    numpy.ndarray
        float32 array of the common shape, values in [0, 1].

    Raises
    ------
    ValueError
        For an unknown rule, no maps, or maps of different shapes.

    Examples
    --------
    >>> maps = [np.array([0.25, 1.0]), np.array([0.5, 1.0]), np.array([0.75, 0.25])]
    >>> fuse_probabilities(maps, "mean").tolist(), fuse_probabilities(maps, "median").tolist()
    ([0.5, 0.75], [0.5, 1.0])
    """
    check_fusion_rule(rule)
    if not plane_probs:
        raise ValueError("no probability maps to fuse")
    shapes = {np.shape(p) for p in plane_probs}
    if len(shapes) != 1:
        raise ValueError(f"probability maps to fuse have different shapes {sorted(shapes)}")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in plane_probs])
    if rule == "mean":
        fused = stack.mean(axis=0)
    elif rule == "median":
        fused = np.median(stack, axis=0)
    elif rule == "max":
        fused = stack.max(axis=0)
    else:
        fused = np.prod(stack, axis=0) ** (1.0 / len(plane_probs))
    return np.clip(fused, 0.0, 1.0).astype(np.float32)


def check_fusion_rule(rule: str) -> str:
    """Return ``rule``, or raise ``ValueError`` listing :data:`FUSION_RULES` when it is not one."""
    if rule not in FUSION_RULES:
        raise ValueError(f"fusion rule {rule!r} is not one of {list(FUSION_RULES)}")
    return rule


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float, or raise unless it lies in (0, 1].

    A threshold of 0 would mark every voxel, inside the brain or not.
    """
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return value


def binarise(wmh_prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The WMH mask ``wmh_prob >= threshold`` as uint8 (0/1), same shape.

    Examples
    --------
    >>> binarise(np.array([0.2, 0.5, 0.9])).tolist()
    [0, 1, 1]
    """
    return (np.asarray(wmh_prob) >= check_threshold(threshold)).astype(np.uint8)
