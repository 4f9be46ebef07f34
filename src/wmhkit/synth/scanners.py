"""Scanner profiles A–E: voxel grid, orientation on disk, data type, noise, bias, contrast.

=======  ======================  ==========  ============  =======  =====  =====  ====  =====
Profile  Acquisition             Voxel (mm)  On disk       dtype    Noise  Bias   Head  Fat-s
=======  ======================  ==========  ============  =======  =====  =====  ====  =====
A        3D FLAIR, research      1×1×1       RAS           float32  2.5 %  0.10   no    no
B        2D axial FLAIR          0.9×0.9×3   LPS           uint16   4 %    0.15   yes   no
C        2D FLAIR, AC-PC tilt    0.9×0.9×5   RAS, 15°      int16    5 %    0.20   yes   no
D        3D FLAIR, fat-sat       1×1×1.2     LPS           uint8    4 %    0.12   yes   yes
E        2D FLAIR, tilted        1×1×4       LPS, 12°+8°   float32  6 %    0.25   yes   no
R        drawn per subject       see below   RAS or LPS    any      2–7 %  0.05–  3/4   1/5
                                                                         0.30
=======  ======================  ==========  ============  =======  =====  =====  ====  =====

``R`` (:func:`random_profile`) is domain randomisation for training data: each
subject gets its own scanner, 3D (0.8–1.2 mm voxels, slices up to 1.5 mm) in
two of five, otherwise 2D with 0.45–1.2 mm in-plane and 2–8 mm slices, tilted
up to 15°, with its own FLAIR contrast (GM/WM 1.05–1.45, CSF 3–25 % of WM,
periventricular rim 0.15–0.5, lesion +0.5–1.3), noise, bias and storage.

Noise is Rician with sigma given as a fraction of the WM signal; bias is the
rms of the log of a smooth multiplicative field. Profile A stands for a
skull-stripped research release, so it never has a head; B–E show the head
(scalp, skull, CSF shell) unless the cohort is made with ``with_head=False``.
The T1 is written on the FLAIR grid (like the MICCAI 2017 WMH challenge's
``pre`` folder).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from wmhkit.errors import InputError
from wmhkit.synth.contrast import FLAIR, T1, TissueContrast


@dataclass(frozen=True)
class ScannerProfile:
    """How one scanner acquires and stores a subject.

    Attributes
    ----------
    name
        Profile letter, written to the manifest's ``scanner`` column.
    description
        One line for humans.
    spacing_mm
        Voxel size along the array axes (the third is the slice axis of 2D scans).
    two_d
        True for 2D multi-slice acquisitions (thick slices averaged as partial volume).
    orientation
        ``"RAS"`` or ``"LPS"``: the axis directions stored on disk (before obliquity).
    oblique_deg
        Rotations of the acquisition grid about x, y, z (degrees).
    fov_mm
        Field of view along the array axes (mm).
    dtype
        On-disk data type of FLAIR and T1 (``float32``, ``uint16``, ``int16``, ``uint8``).
    wm_level
        Stored value of normal WM (before bias and noise).
    noise
        Rician noise sigma as a fraction of the WM signal.
    bias_rms
        rms of the log bias field.
    flair, t1
        Intensity models.
    fat_suppressed
        FLAIR acquired with fat suppression (manifest column ``fat_suppressed``).
    skull_stripped
        The scanner's files come skull-stripped (no head is ever drawn).
    """

    name: str
    description: str
    spacing_mm: tuple[float, float, float]
    two_d: bool
    orientation: str
    oblique_deg: tuple[float, float, float]
    fov_mm: tuple[float, float, float]
    dtype: str
    wm_level: float
    noise: float
    bias_rms: float
    flair: TissueContrast
    t1: TissueContrast
    fat_suppressed: bool = False
    skull_stripped: bool = False


SCANNER_PROFILES: dict[str, ScannerProfile] = {
    "A": ScannerProfile(
        "A", "3D FLAIR 1 mm isotropic, skull-stripped research release, RAS, float32",
        (1.0, 1.0, 1.0), False, "RAS", (0.0, 0.0, 0.0), (180.0, 220.0, 184.0), "float32", 500.0,
        0.025, 0.10, FLAIR, T1, skull_stripped=True,
    ),
    "B": ScannerProfile(
        "B", "2D axial FLAIR 0.9×0.9×3 mm, LPS, uint16",
        (0.9, 0.9, 3.0), True, "LPS", (0.0, 0.0, 0.0), (230.0, 230.0, 150.0), "uint16", 1200.0,
        0.04, 0.15, replace(FLAIR, gm=1.25, rim=0.4), T1,
    ),
    "C": ScannerProfile(
        "C", "2D FLAIR 0.9×0.9×5 mm tilted 15° to the AC-PC line, RAS, int16",
        (0.9, 0.9, 5.0), True, "RAS", (15.0, 0.0, 0.0), (230.0, 230.0, 150.0), "int16", 400.0,
        0.05, 0.20, replace(FLAIR, gm=1.18, csf=0.12, lesion=0.9), replace(T1, gm=0.7),
    ),
    "D": ScannerProfile(
        "D", "3D FLAIR 1×1×1.2 mm with fat suppression, LPS, uint8",
        (1.0, 1.0, 1.2), False, "LPS", (0.0, 0.0, 0.0), (196.0, 236.0, 190.0), "uint8", 90.0,
        0.04, 0.12, FLAIR.fat_suppressed(), T1, fat_suppressed=True,
    ),
    "E": ScannerProfile(
        "E", "2D FLAIR 1×1×4 mm tilted 12° and 8°, LPS, float32 around 1",
        (1.0, 1.0, 4.0), True, "LPS", (12.0, 0.0, 8.0), (230.0, 230.0, 152.0), "float32", 1.0,
        0.06, 0.25, replace(FLAIR, gm=1.4, csf=0.15, rim=0.45), replace(T1, gm=0.58),
    ),
}


#: Name of the per-subject randomised profile (:func:`random_profile`).
RANDOM_PROFILE = "R"
#: Stored WM level of each on-disk data type (room for bright lesions below the type's maximum).
_WM_LEVELS = {"float32": (0.5, 1500.0), "uint16": (300.0, 2500.0), "int16": (200.0, 1200.0), "uint8": (60.0, 100.0)}


def random_profile(rng: np.random.Generator) -> ScannerProfile:
    """A scanner drawn at random (profile ``R``: see the module docstring for the ranges)."""
    two_d = bool(rng.random() < 0.6)
    if two_d:
        in_plane = float(rng.uniform(0.45, 1.2))
        spacing = (in_plane, in_plane, float(rng.uniform(2.0, 8.0)))
        oblique = tuple(float(a) for a in rng.uniform(-15.0, 15.0, 3) * (rng.random(3) < 0.5))
        fov = (230.0, 230.0, float(rng.uniform(140.0, 160.0)))
    else:
        spacing = (float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.8, 1.5)))
        oblique = (0.0, 0.0, 0.0)
        fov = (196.0, 236.0, 190.0)
    dtype = str(rng.choice(list(_WM_LEVELS)))
    low, high = _WM_LEVELS[dtype]
    flair = TissueContrast(gm=float(rng.uniform(1.05, 1.45)), csf=float(rng.uniform(0.03, 0.25)),
                           rim=float(rng.uniform(0.15, 0.5)), lesion=float(rng.uniform(0.5, 1.3)))
    fat_suppressed = bool(rng.random() < 0.2)
    return ScannerProfile(
        RANDOM_PROFILE, "randomised scanner (domain randomisation)", spacing, two_d, str(rng.choice(["RAS", "LPS"])),
        oblique, fov, dtype, float(rng.uniform(low, high)), float(rng.uniform(0.02, 0.07)),
        float(rng.uniform(0.05, 0.30)), flair.fat_suppressed() if fat_suppressed else flair,
        replace(T1, gm=float(rng.uniform(0.55, 0.75))), fat_suppressed=fat_suppressed,
        skull_stripped=bool(rng.random() < 0.25),
    )


def scanner_profile(name: str) -> ScannerProfile:
    """The profile called ``name`` (``"A"`` … ``"E"``; ``"R"`` is drawn per subject by :func:`random_profile`).

    Raises
    ------
    InputError
        (a ValueError) for an unknown name, listing the known ones.
    """
    try:
        return SCANNER_PROFILES[name]
    except KeyError:
        raise InputError(None, f"unknown scanner profile {name!r}",
                         f"choose from {', '.join(sorted(SCANNER_PROFILES))}") from None
