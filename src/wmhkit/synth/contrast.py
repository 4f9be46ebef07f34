"""FLAIR and T1 intensity models: signal as a partial-volume mix of tissue fractions.

Signals are in units of normal-appearing WM (WM = 1). The default FLAIR has
suppressed CSF, GM brighter than WM, a thin bright periventricular rim in
everyone, and lesions from faint to bright (WM + contrast × lesion signal); a
fat-suppressed variant darkens scalp fat and skull marrow. The T1 has dark CSF,
GM darker than WM and hypointense lesions. Because the model is linear in the
fractions, averaging fractions over a thick slice gives the partial-volume
signal of that slice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class TissueContrast:
    """Signal of each tissue relative to WM (= 1), for one sequence.

    Attributes
    ----------
    gm, csf
        Grey matter and CSF (ventricles and sulci) signal.
    rim
        Added signal at full periventricular rim weight.
    lesion
        Added signal at full lesion signal (lesion contrast × fraction); negative
        for hypointense lesions.
    bone, marrow, fat, muscle
        Head tissues (used only when the head is drawn).
    """

    gm: float
    csf: float
    rim: float
    lesion: float
    bone: float = 0.05
    marrow: float = 0.9
    fat: float = 1.4
    muscle: float = 0.55

    def fat_suppressed(self) -> "TissueContrast":
        """The same contrast with fat and marrow signal suppressed."""
        return replace(self, fat=0.12, marrow=0.15)


#: Default FLAIR: GM/WM 1.3, CSF at 7 % of WM, rim +0.35, lesions up to +1.3 × 1.1.
FLAIR = TissueContrast(gm=1.3, csf=0.07, rim=0.35, lesion=1.1)
#: Default T1: GM/WM 0.62, dark CSF, lesions darker than WM.
T1 = TissueContrast(gm=0.62, csf=0.2, rim=-0.05, lesion=-0.4, bone=0.05, marrow=1.2, fat=1.35, muscle=0.45)


def tissue_signal(
    contrast: TissueContrast,
    fractions: dict[str, np.ndarray],
) -> np.ndarray:
    """Signal of voxels with the given tissue fractions.

    Parameters
    ----------
    contrast
        Sequence contrast.
    fractions
        float32 arrays of one shape: ``wm`` (normal-appearing WM, lesion
        excluded), ``gm``, ``csf``, ``lesion`` (lesion fraction), ``lesion_signal``
        (fraction × lesion contrast), ``rim`` and optionally ``bone``, ``marrow``,
        ``fat``, ``muscle``.

    Returns
    -------
    numpy.ndarray
        float32 signal (WM = 1).

    Examples
    --------
    >>> one = np.ones(1, np.float32); zero = np.zeros(1, np.float32)
    >>> pure = dict(wm=zero, gm=one, csf=zero, lesion=zero, lesion_signal=zero, rim=zero)
    >>> round(float(tissue_signal(FLAIR, pure)[0]), 3)
    1.3
    """
    signal = fractions["wm"] + np.float32(contrast.gm) * fractions["gm"] + np.float32(contrast.csf) * fractions["csf"]
    signal += fractions["lesion"]  # a lesion is WM that gained signal ...
    signal += np.float32(contrast.lesion) * fractions["lesion_signal"]  # ... this much
    signal += np.float32(contrast.rim) * fractions["rim"]
    for tissue in ("bone", "marrow", "fat", "muscle"):
        if tissue in fractions:
            signal += np.float32(getattr(contrast, tissue)) * fractions[tissue]
    return signal.astype(np.float32, copy=False)
