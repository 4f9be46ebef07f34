import math

import pytest
import torch

from wmhkit.nn.losses import DiceFocalLoss


def _hand_loss(logits, labels, alpha=0.25, gamma=2.0, smooth=1e-5):
    focal_terms, intersection, p_sum, t_sum = [], 0.0, 0.0, 0.0
    for x, y in zip(logits, labels):
        if y == 2:
            continue
        p = 1 / (1 + math.exp(-x))
        t = float(y == 1)
        pt = p if t else 1 - p
        alpha_t = alpha if t else 1 - alpha
        focal_terms.append(-alpha_t * (1 - pt) ** gamma * math.log(pt))
        intersection += p * t
        p_sum += p
        t_sum += t
    dice = 1 - (2 * intersection + smooth) / (p_sum + t_sum + smooth)
    return dice + sum(focal_terms) / len(focal_terms)


def test_matches_hand_computed_dice_plus_focal():
    logits = [2.0, -1.0, 0.5, -3.0, 1.5, 0.0]
    labels = [1, 0, 1, 0, 0, 2]
    loss = DiceFocalLoss()(torch.tensor(logits).reshape(1, 1, 2, 3), torch.tensor(labels).reshape(1, 1, 2, 3))
    assert float(loss) == pytest.approx(_hand_loss(logits, labels), rel=1e-5)


def test_label_two_voxels_do_not_affect_the_loss():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 1, 8, 8))
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    changed = logits.detach().clone()
    changed[labels == 2] = 50.0
    loss_fn = DiceFocalLoss()
    assert loss_fn(logits.detach(), labels).item() == pytest.approx(loss_fn(changed, labels).item(), rel=1e-6)
    loss_fn(logits, labels).backward()
    assert float(logits.grad[labels == 2].abs().max()) == 0.0
    assert float(logits.grad[labels != 2].abs().max()) > 0.0
