"""A subject's anatomy: head size and pose, smooth warp, atrophy, ventricular enlargement.

A subject is the template seen through a mapping from the subject's world
(scanner) coordinates to template coordinates:

1. a smooth random displacement (rms ``warp_rms_mm``, varying over ~40 mm);
2. the head pose in the scanner (small rotation and translation) and the head
   size (per-axis scale);
3. ventricular enlargement: a radial contraction of the sampling positions
   around the ventricles' centre, weighted by an anisotropic Gaussian, so the
   ventricles and the tissue next to them look larger;
4. cortical atrophy (applied to the sampled tissue, not the mapping): a fraction
   of the GM next to sulcal CSF becomes CSF, and the CSF shell under the skull
   thickens.

Atrophy and ventricular enlargement grow with age and with clinical stage
(CN < MCI < AD).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wmhkit.synth.template import Template

#: Extra atrophy index per clinical stage (added to the age term).
STAGE_ATROPHY: dict[str, float] = {"CN": 0.0, "MCI": 0.12, "AD": 0.3}
#: Width (mm, x/y/z) of the Gaussian weight of ventricular enlargement; the
#: lateral ventricles are long front-to-back.
VENTRICLE_SPREAD_MM = np.array([20.0, 40.0, 24.0])


@dataclass(frozen=True)
class AnatomyParameters:
    """Per-subject anatomy settings (all JSON-serialisable, stored in the sidecar).

    Attributes
    ----------
    head_scale
        Subject size relative to the template along x, y, z.
    rotation_deg
        Head pose: rotations about the scanner's x, y, z axes (degrees).
    translation_mm
        Head position relative to the scanner isocentre (mm).
    ventricle_expansion
        0..0.55; the ventricles' volume grows about 1.5-fold at 0.3 and 2-fold at 0.5.
    cortical_atrophy
        0..0.7: fraction of sulcus-adjacent GM turned into CSF.
    warp_rms_mm
        rms of the smooth random displacement (mm).
    """

    head_scale: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    ventricle_expansion: float
    cortical_atrophy: float
    warp_rms_mm: float

    def as_dict(self) -> dict[str, object]:
        """Plain-dict view for provenance."""
        return asdict(self)


def atrophy_index(stage: str, age: float) -> float:
    """Expected atrophy (dimensionless, ~0 at 55 y CN, ~0.6 at 85 y AD) from stage and age.

    Examples
    --------
    >>> atrophy_index("CN", 70.0) < atrophy_index("MCI", 70.0) < atrophy_index("AD", 70.0)
    True
    """
    if stage not in STAGE_ATROPHY:
        raise ValueError(f"stage must be one of {sorted(STAGE_ATROPHY)}, got {stage!r}")
    return max(0.0, 0.01 * (age - 55.0)) + STAGE_ATROPHY[stage]


def draw_anatomy(stage: str, age: float, rng: np.random.Generator) -> AnatomyParameters:
    """Draw a subject's anatomy parameters for ``stage`` and ``age`` (years)."""
    index = atrophy_index(stage, age)
    size = rng.normal(1.0, 0.045)
    head_scale = tuple(round(float(size * rng.normal(1.0, 0.02)), 4) for _ in range(3))
    return AnatomyParameters(
        head_scale=head_scale,  # type: ignore[arg-type]
        rotation_deg=tuple(round(float(v), 3) for v in rng.normal(0.0, [4.0, 3.0, 3.0])),  # type: ignore[arg-type]
        translation_mm=tuple(round(float(v), 3) for v in rng.normal(0.0, [3.0, 4.0, 4.0])),  # type: ignore[arg-type]
        ventricle_expansion=round(float(np.clip(0.1 + 0.55 * index + rng.normal(0.0, 0.04), 0.0, 0.55)), 4),
        cortical_atrophy=round(float(np.clip(0.1 + 0.6 * index + rng.normal(0.0, 0.05), 0.0, 0.7)), 4),
        warp_rms_mm=round(float(rng.uniform(1.5, 3.5)), 3),
    )


def rotation_matrix(degrees: tuple[float, float, float]) -> np.ndarray:
    """3×3 rotation: about x, then y, then z (angles in degrees)."""
    ax, ay, az = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def template_voxel_coordinates(
    world_mm: np.ndarray, anatomy: AnatomyParameters, template: Template
) -> np.ndarray:
    """Map subject world positions to template voxel coordinates.

    Parameters
    ----------
    world_mm
        ``(3, N)`` float32 subject (scanner) RAS+ positions in mm, already
        displaced by the subject's smooth warp. The brain centre sits at the
        scanner origin (plus the pose translation).
    anatomy
        The subject's parameters.
    template
        The grid whose voxel coordinates are returned.

    Returns
    -------
    numpy.ndarray
        ``(3, N)`` float32 template voxel coordinates (for ``map_coordinates``).
    """
    # subject = R (scale ⊙ (mni - brain_centre)) + t, so mni - ventricle_centre = A subject + b with:
    to_mni = np.diag(1.0 / np.asarray(anatomy.head_scale)) @ rotation_matrix(anatomy.rotation_deg).T
    shift = template.brain_centre_mm - template.ventricle_centre_mm - to_mni @ np.asarray(anatomy.translation_mm)
    offset = to_mni.astype(np.float32) @ world_mm + shift.astype(np.float32)[:, None]
    inverse = np.linalg.inv(template.affine)
    voxel_offset = inverse[:3, :3].astype(np.float32) @ offset
    if anatomy.ventricle_expansion > 0:
        spread = VENTRICLE_SPREAD_MM.astype(np.float32)[:, None]
        weight = np.exp(np.float32(-0.5) * np.sum((offset / spread) ** 2, axis=0))
        voxel_offset *= np.float32(1.0) - np.float32(anatomy.ventricle_expansion) * weight
    ventricle_voxel = inverse[:3, :3] @ template.ventricle_centre_mm + inverse[:3, 3]
    voxel_offset += ventricle_voxel.astype(np.float32)[:, None]
    return voxel_offset
