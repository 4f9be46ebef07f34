"""The head around the brain: CSF shell, skull (tables and marrow), scalp fat and skin/muscle.

Layers are shells at increasing distance outside the smoothed brain hull, each
with a soft 1 mm edge so that partial volume follows from the geometry. With
atrophy the CSF shell under the skull thickens. The layer fractions feed the
intensity models of :mod:`wmhkit.synth.contrast`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Layers from the brain outwards with their nominal thickness (mm).
LAYERS_MM: tuple[tuple[str, float], ...] = (
    ("csf", 1.5), ("bone", 1.5), ("marrow", 2.5), ("bone", 1.5), ("fat", 4.0), ("muscle", 2.5),
)
HEAD_TISSUES: tuple[str, ...] = ("csf", "bone", "marrow", "fat", "muscle")


@dataclass(frozen=True)
class HeadParameters:
    """Per-subject head geometry.

    Attributes
    ----------
    thickness_scale
        Multiplies every layer's nominal thickness (skull and scalp vary between people).
    extra_csf_mm
        Extra CSF under the skull from atrophy (mm).
    """

    thickness_scale: float
    extra_csf_mm: float


def draw_head(cortical_atrophy: float, rng: np.random.Generator) -> HeadParameters:
    """Draw head geometry; the CSF shell grows by up to 4 mm with ``cortical_atrophy`` (0..0.7)."""
    return HeadParameters(
        thickness_scale=round(float(rng.uniform(0.8, 1.25)), 4),
        extra_csf_mm=round(4.0 * float(cortical_atrophy) / 0.7, 4),
    )


def head_fractions(outside_distance_mm: np.ndarray, head: HeadParameters) -> dict[str, np.ndarray]:
    """Fractions of each head tissue at positions ``outside_distance_mm`` mm outside the brain hull.

    Parameters
    ----------
    outside_distance_mm
        float32 distances (any shape); 0 inside the hull.
    head
        Layer geometry.

    Returns
    -------
    dict
        ``{tissue: float32 array of the input's shape}`` for :data:`HEAD_TISSUES`.
        ``csf`` starts at 0 mm, so inside the hull it fills what brain tissue
        leaves (the caller multiplies by one minus the brain fraction).

    Examples
    --------
    >>> layers = head_fractions(np.array([0.0, 2.25, 40.0], np.float32), HeadParameters(1.0, 0.0))
    >>> [round(float(layers["csf"][0]), 2), round(float(layers["bone"][1]), 2), float(layers["fat"][2])]
    [1.0, 1.0, 0.0]
    """
    fractions = {tissue: np.zeros_like(outside_distance_mm, dtype=np.float32) for tissue in HEAD_TISSUES}
    inner = -np.inf
    outer = 0.0
    for tissue, thickness in LAYERS_MM:
        outer += thickness * head.thickness_scale + (head.extra_csf_mm if tissue == "csf" else 0.0)
        fractions[tissue] += _ramp(outside_distance_mm, inner) - _ramp(outside_distance_mm, outer)
        inner = outer
    return fractions


def _ramp(distance_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """Fraction of a 1 mm voxel at ``distance_mm`` lying beyond ``edge_mm``.

    0 well before the edge, 1 well beyond it, linear across the 1 mm around it;
    ``edge_mm = -inf`` gives all ones.
    """
    if edge_mm == -np.inf:
        return np.ones_like(distance_mm, dtype=np.float32)
    return np.clip(distance_mm - np.float32(edge_mm) + np.float32(0.5), 0.0, 1.0).astype(np.float32)
