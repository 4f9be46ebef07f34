"""Load torchvision-format ImageNet VGG16 weights into the encoder of a :class:`VGG16UNet`.

The file is torchvision's ``vgg16-397923af.pth`` (or any ``state_dict`` with the
keys ``features.N.weight`` / ``features.N.bias`` for N in 0, 2, 5, … 28), given by
the user; nothing is downloaded. It is read with ``torch.load(weights_only=True)``.

First layer, 3 → 1 channel: the RGB filters are **summed** over the input
channels. A grey image fed to the original network as three identical channels
produces exactly the same response as the summed filter on one channel, so the
pretrained first-layer activations keep their scale.

Width below 1 (CPU variants): each conv takes the leading ``out × in`` block of the
pretrained kernel (the first ``round(64 × width)`` filters, and so on). This is a
sub-network of VGG16, not VGG16 itself; it is logged as such.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from wmhkit.errors import InputError
from wmhkit.nn.vgg_unet import CONV_NAMES, TORCHVISION_FEATURE_INDEX, VGG16_BLOCKS, VGG16UNet

log = logging.getLogger(__name__)


def read_vgg16_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The ``features.N.weight/bias`` tensors of a torchvision VGG16 weights file.

    Raises
    ------
    InputError
        When the file is missing, cannot be loaded safely, or lacks a conv's keys or
        has a kernel of the wrong shape (3×3, VGG16 channel counts).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ImageNet weights file does not exist",
                         "download torchvision's vgg16-397923af.pth once and give its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise InputError(path, f"cannot be loaded as a weights-only state dict ({type(exc).__name__})",
                         "give torchvision's vgg16-397923af.pth") from exc
    if not isinstance(state, Mapping):
        raise InputError(path, "does not hold a state dict", "give torchvision's vgg16-397923af.pth")
    features: dict[str, torch.Tensor] = {}
    for name, (in_channels, out_channels) in zip(CONV_NAMES, vgg16_conv_channels()):
        index = TORCHVISION_FEATURE_INDEX[name]
        for part, expected in (("weight", (out_channels, in_channels, 3, 3)), ("bias", (out_channels,))):
            key = f"features.{index}.{part}"
            if key not in state:
                raise InputError(path, f"key {key!r} ({name}) is missing", "give a torchvision VGG16 (not VGG16-BN) file")
            if tuple(state[key].shape) != tuple(expected):
                raise InputError(path, f"{key} has shape {tuple(state[key].shape)}, VGG16 needs {tuple(expected)}",
                                 "give a torchvision VGG16 (not VGG16-BN or VGG19) file")
            features[key] = state[key].float()
    return features


def vgg16_conv_channels() -> list[tuple[int, int]]:
    """``(in, out)`` channels of VGG16's 13 convs on RGB input."""
    channels, previous = [], 3
    for _, width, count in VGG16_BLOCKS:
        for _ in range(count):
            channels.append((previous, width))
            previous = width
    return channels


def load_imagenet_encoder(model: VGG16UNet, path: str | os.PathLike[str]) -> list[str]:
    """Copy ImageNet VGG16 conv weights into ``model``'s 13 encoder convs, in place.

    Parameters
    ----------
    model
        The network; its decoder and head are left untouched.
    path
        torchvision VGG16 weights file (see the module docstring).

    Returns
    -------
    list of str
        The encoder conv names that were loaded (all 13).
    """
    features = read_vgg16_state_dict(path)
    if model.width != 1.0:
        log.warning("width %.4g: loading the leading channels of each ImageNet VGG16 kernel (a sub-network)",
                    model.width)
    loaded = []
    with torch.no_grad():
        for name, conv in zip(CONV_NAMES, model.conv_layers()):
            index = TORCHVISION_FEATURE_INDEX[name]
            weight = features[f"features.{index}.weight"]
            bias = features[f"features.{index}.bias"]
            if name == CONV_NAMES[0]:
                weight = _first_layer(weight, conv.in_channels)
            conv.weight.copy_(weight[: conv.out_channels, : conv.in_channels])
            conv.bias.copy_(bias[: conv.out_channels])
            loaded.append(name)
    return loaded


def _first_layer(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Map the RGB first-layer kernel ``(64, 3, 3, 3)`` to ``in_channels`` inputs.

    One channel: sum over RGB (see the module docstring). Three: unchanged.
    Otherwise the summed filter divided by ``in_channels`` is repeated, so a
    constant image gives the same response as on one channel.
    """
    if in_channels == 3:
        return weight
    summed = weight.sum(dim=1, keepdim=True)
    if in_channels == 1:
        return summed
    return summed.repeat(1, in_channels, 1, 1) / in_channels
