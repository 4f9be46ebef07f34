"""Slice-wise inference of one plane: padding, orientation, brain box, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from wmhkit.nn.planes import brain_bounding_box, predict_plane
from wmhkit.nn.vgg_unet import DOWNSAMPLING, VGG16UNet
from wmhkit.preprocess.patches import slices_along


def _pointwise_network(weight: float, bias: float) -> nn.Module:
    network = nn.Conv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        network.weight.fill_(weight)
        network.bias.fill_(bias)
    return network.eval()


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_pointwise_network_gives_voxelwise_sigmoid_inside_the_brain(plane: str) -> None:
    rng = np.random.default_rng(1)
    flair = rng.random((7, 13, 5)).astype(np.float32)
    brain = np.zeros(flair.shape, bool)
    brain[1:6, 2:11, 1:4] = True
    brain[3, 5, 2] = False
    prob = predict_plane(_pointwise_network(4.0, -2.0), flair[None], brain, plane,
                         size_multiple=DOWNSAMPLING, batch_size=2)
    expected = np.where(brain, 1 / (1 + np.exp(-(4.0 * flair - 2.0))), 0.0)
    assert prob.shape == flair.shape and prob.dtype == np.float32
    np.testing.assert_allclose(prob, expected, rtol=1e-5, atol=1e-6)


def test_axial_slices_match_running_the_network_on_each_padded_slice() -> None:
    torch.manual_seed(0)
    network = VGG16UNet(width=1 / 16).eval()
    rng = np.random.default_rng(2)
    flair = rng.random((20, 23, 3)).astype(np.float32)
    brain = np.ones(flair.shape, bool)
    prob = predict_plane(network, flair[None], brain, "axial", size_multiple=DOWNSAMPLING, batch_size=2)
    slice_index = 1
    image = torch.from_numpy(slices_along(flair, "axial")[slice_index].copy())[None, None]
    padded = F.pad(image, (4, 5, 6, 6))  # 23 -> 32 (4 before, 5 after), 20 -> 32 (6, 6)
    with torch.no_grad():
        expected = torch.sigmoid(network(padded))[0, 0, 6:26, 4:27].numpy()
    np.testing.assert_allclose(prob[:, :, slice_index], expected, rtol=1e-5, atol=1e-6)


def test_outputs_do_not_depend_on_batch_size_and_one_slice_images_work() -> None:
    torch.manual_seed(0)
    network = VGG16UNet(width=1 / 16).eval()
    flair = np.random.default_rng(3).random((9, 11, 1)).astype(np.float32)
    brain = np.ones(flair.shape, bool)
    for plane in ("axial", "coronal", "sagittal"):
        one = predict_plane(network, flair[None], brain, plane, size_multiple=DOWNSAMPLING, batch_size=1)
        many = predict_plane(network, flair[None], brain, plane, size_multiple=DOWNSAMPLING, batch_size=16)
        assert one.shape == (9, 11, 1)
        np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_brain_bounding_box_and_bad_arguments() -> None:
    brain = np.zeros((5, 6, 7), bool)
    brain[1, 2:4, 6] = True
    assert brain_bounding_box(brain) == (slice(1, 2), slice(2, 4), slice(6, 7))
    with pytest.raises(ValueError, match="empty"):
        brain_bounding_box(np.zeros((2, 2, 2), bool))
    network = _pointwise_network(1.0, 0.0)
    with pytest.raises(ValueError, match="plane"):
        predict_plane(network, np.zeros((1, 5, 6, 7), np.float32), brain, "oblique", size_multiple=16)
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        predict_plane(network, np.zeros((5, 6, 7), np.float32), brain, "axial", size_multiple=16)


def test_bfloat16_precision_stays_close_to_float32_and_bad_precisions_are_refused() -> None:
    torch.manual_seed(0)
    network = VGG16UNet(width=1 / 16).eval()
    flair = np.random.default_rng(6).random((16, 20, 4)).astype(np.float32)
    brain = np.ones(flair.shape, bool)
    full = predict_plane(network, flair[None], brain, "coronal", size_multiple=DOWNSAMPLING)
    half = predict_plane(network, flair[None], brain, "coronal", size_multiple=DOWNSAMPLING, precision="bfloat16")
    assert half.dtype == np.float32
    assert 0 < np.abs(half - full).max() < 2e-2
    with pytest.raises(ValueError, match="precision"):
        predict_plane(network, flair[None], brain, "axial", size_multiple=16, precision="float16")
