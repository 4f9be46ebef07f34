"""Segmentation loss: Dice + binary focal (α = 0.25, γ = 2), with a validity mask.

Both terms come from MONAI: :class:`monai.losses.MaskedDiceLoss` (sigmoid, Dice
over the whole batch) and :class:`monai.losses.FocalLoss` (sigmoid focal loss of
Lin et al. 2017: ``-α_t (1 - p_t)^γ log p_t`` with ``α_t = α`` for lesion and
``1 - α`` for background), unreduced and averaged here over the valid voxels only.

Validity: gold label 2 (MICCAI "other pathology") is neither lesion nor
background; those voxels are masked out of both terms (see :func:`split_labels`).
"""

from __future__ import annotations

import torch
from monai.losses import FocalLoss, MaskedDiceLoss
from torch import nn

#: Lesion label; :data:`IGNORE_LABEL` voxels are left out of the loss and the metrics.
LESION_LABEL = 1
IGNORE_LABEL = 2


def split_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary lesion target and validity mask from a label tensor.

    Parameters
    ----------
    labels
        Integer labels of any shape: 0 background, 1 lesion, 2 ignored.

    Returns
    -------
    target, valid
        Float tensors of the same shape: ``labels == 1`` and ``labels != 2``.
    """
    return (labels == LESION_LABEL).float(), (labels != IGNORE_LABEL).float()


class DiceFocalLoss(nn.Module):
    """``dice_weight × Dice + focal_weight × focal`` on logits, ignoring invalid voxels.

    Parameters
    ----------
    alpha, gamma
        Focal loss weighting of lesion voxels and focusing exponent.
    dice_weight, focal_weight
        Weights of the two terms.
    smooth
        Dice smoothing added to numerator and denominator (MONAI's ``smooth_nr``/``smooth_dr``).

    Notes
    -----
    Dice is computed over the whole batch (``batch=True``): many 2D slices carry no
    lesion, and a per-slice Dice would be undefined-ish (≈ 1) on each of them.
    """

    def __init__(
        self, alpha: float = 0.25, gamma: float = 2.0, dice_weight: float = 1.0, focal_weight: float = 1.0,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"focal alpha must be in [0, 1], got {alpha}")
        if gamma < 0 or dice_weight < 0 or focal_weight < 0:
            raise ValueError("gamma, dice_weight and focal_weight must be >= 0")
        self.dice_weight = float(dice_weight)
        self.focal_weight = float(focal_weight)
        self.dice = MaskedDiceLoss(sigmoid=True, batch=True, smooth_nr=smooth, smooth_dr=smooth)
        self.focal = FocalLoss(gamma=gamma, alpha=alpha, reduction="none", use_softmax=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Parameters
        ----------
        logits
            ``(N, 1, H, W)`` network output before the sigmoid.
        labels
            ``(N, 1, H, W)`` integer labels (0, 1, 2 = ignored).
        """
        if logits.shape != labels.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must match")
        target, valid = split_labels(labels)
        dice = self.dice(logits, target, mask=valid)
        focal_map = self.focal(logits, target)
        focal = (focal_map * valid).sum() / valid.sum().clamp_min(1.0)
        return self.dice_weight * dice + self.focal_weight * focal
