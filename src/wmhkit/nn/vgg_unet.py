"""A 2D U-Net whose encoder is VGG16's 13 convolutions, with a width multiplier.

Encoder (VGG16 "D" configuration, no batch norm, as in torchvision's ``vgg16``)::

    conv1_1 conv1_2 | pool | conv2_1 conv2_2 | pool | conv3_1..conv3_3 | pool
    | conv4_1..conv4_3 | pool | conv5_1..conv5_3

with 64-64 | 128-128 | 256×3 | 512×3 | 512×3 channels times ``width``. Block 5
runs at 1/16 of the input size and is the bottleneck. The decoder mirrors blocks
4…1: a 2×2 transposed convolution doubles the size and matches the skip's
channels, the skip from the encoder block at that level is concatenated, and two
3×3 convolutions (batch norm optional) follow. A 1×1 convolution gives one logit
per pixel; :meth:`VGG16UNet.predict_proba` applies the sigmoid.

Input ``(N, in_channels, H, W)`` with H and W multiples of 16; output logits of
the same ``(N, out_channels, H, W)``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: Name of this network in ``model.yaml`` (``network: {name: vgg16_unet, ...}``).
NETWORK_NAME = "vgg16_unet"

#: VGG16's encoder blocks: (block number, full-width channels, conv count).
VGG16_BLOCKS: tuple[tuple[int, int, int], ...] = ((1, 64, 2), (2, 128, 2), (3, 256, 3), (4, 512, 3), (5, 512, 3))

#: Conv layer names in VGG16 order (``conv<block>_<index>``).
CONV_NAMES: tuple[str, ...] = tuple(
    f"conv{block}_{i}" for block, _, count in VGG16_BLOCKS for i in range(1, count + 1)
)

#: Index ``N`` of each conv in torchvision's ``vgg16().features`` (keys ``features.N.weight``).
TORCHVISION_FEATURE_INDEX: dict[str, int] = dict(
    zip(CONV_NAMES, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28))
)

#: Total downsampling of the encoder (four 2×2 max-pools): inputs must be multiples of this.
DOWNSAMPLING = 16


def scaled_channels(channels: int, width: float) -> int:
    """Channel count ``channels × width`` rounded, at least 1.

    Examples
    --------
    >>> scaled_channels(64, 0.25), scaled_channels(512, 1 / 16), scaled_channels(64, 0.001)
    (16, 32, 1)
    """
    return max(1, int(round(channels * width)))


class _ConvReLU(nn.Sequential):
    """3×3 convolution (padding 1), optional batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return self[0]


class VGG16UNet(nn.Module):
    """U-Net with a VGG16 encoder.

    Parameters
    ----------
    in_channels
        Input channels (1 for FLAIR).
    out_channels
        Output logits per pixel (1 for WMH vs background).
    width
        Channel multiplier: 1.0 is VGG16 (and the only width ImageNet weights fit);
        0.25 or 1/16 give small variants that train on a CPU.
    decoder_batch_norm
        Batch norm in the decoder convolutions (the encoder has none, like
        torchvision's ``vgg16``, so ImageNet weights load unchanged).

    Attributes
    ----------
    encoder : torch.nn.ModuleDict
        The 13 conv layers in VGG16 order, named by :data:`CONV_NAMES`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        decoder_batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        if not 0 < width <= 4:
            raise ValueError(f"width must be in (0, 4], got {width}; use 1.0 for VGG16, 0.25 for a CPU-sized net")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.width = float(width)
        self.decoder_batch_norm = bool(decoder_batch_norm)

        encoder: OrderedDict[str, nn.Module] = OrderedDict()
        self.block_channels: list[int] = []
        previous = in_channels
        for block, channels, count in VGG16_BLOCKS:
            scaled = scaled_channels(channels, width)
            self.block_channels.append(scaled)
            for i in range(1, count + 1):
                encoder[f"conv{block}_{i}"] = _ConvReLU(previous, scaled, batch_norm=False)
                previous = scaled
        self.encoder = nn.ModuleDict(encoder)

        decoder: OrderedDict[str, nn.Module] = OrderedDict()
        below = self.block_channels[-1]
        for level in (4, 3, 2, 1):
            skip = self.block_channels[level - 1]
            decoder[f"up{level}"] = nn.ConvTranspose2d(below, skip, kernel_size=2, stride=2)
            decoder[f"dec{level}"] = nn.Sequential(
                _ConvReLU(2 * skip, skip, decoder_batch_norm), _ConvReLU(skip, skip, decoder_batch_norm)
            )
            below = skip
        self.decoder = nn.ModuleDict(decoder)
        self.head = nn.Conv2d(below, out_channels, kernel_size=1)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ spec
    def network_spec(self) -> dict[str, Any]:
        """The ``network`` entry of ``model.yaml``: name and constructor arguments."""
        return {
            "name": NETWORK_NAME,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "width": self.width,
            "decoder_batch_norm": self.decoder_batch_norm,
        }

    # --------------------------------------------------------------- layers
    def conv_layers(self) -> list[nn.Conv2d]:
        """The 13 encoder convolutions in VGG16 order."""
        return [self.encoder[name].conv for name in CONV_NAMES]

    def layer_groups(self) -> OrderedDict[str, nn.Module]:
        """Named groups in forward order: ``conv1_1`` … ``conv5_3``, ``up4``, ``dec4`` … ``dec1``, ``head``."""
        groups: OrderedDict[str, nn.Module] = OrderedDict((name, self.encoder[name]) for name in CONV_NAMES)
        groups.update(self.decoder.items())
        groups["head"] = self.head
        return groups

    def freeze_first(self, k: int) -> list[str]:
        """Freeze the first ``k`` encoder convs (``requires_grad=False``); unfreeze all others.

        Call before building the optimizer (and before wrapping in
        DistributedDataParallel): frozen parameters then get no gradient and are
        never updated.

        Parameters
        ----------
        k
            0 … 13 conv layers, counted in VGG16 order.

        Returns
        -------
        list of str
            Names of the frozen conv layers.
        """
        if not 0 <= k <= len(CONV_NAMES):
            raise ValueError(f"can freeze 0 to {len(CONV_NAMES)} conv layers, got {k}")
        for parameter in self.parameters():
            parameter.requires_grad_(True)
        frozen = list(CONV_NAMES[:k])
        for name in frozen:
            for parameter in self.encoder[name].parameters():
                parameter.requires_grad_(False)
        return frozen

    # -------------------------------------------------------------- forward
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, out_channels, H, W)`` for ``image`` ``(N, in_channels, H, W)``, H, W multiples of 16."""
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (N, {self.in_channels}, H, W), got shape {tuple(image.shape)}"
            )
        if image.shape[2] % DOWNSAMPLING or image.shape[3] % DOWNSAMPLING:
            raise ValueError(
                f"input height and width must be multiples of {DOWNSAMPLING}, got {tuple(image.shape[2:])}; "
                "pad the slices first"
            )
        skips: list[torch.Tensor] = []
        features = image
        for block, _, count in VGG16_BLOCKS:
            if block > 1:
                skips.append(features)
                features = F.max_pool2d(features, kernel_size=2, stride=2)
            for i in range(1, count + 1):
                features = self.encoder[f"conv{block}_{i}"](features)
        skips.append(features)  # block 5 output is the bottleneck, the last entry
        features = skips.pop()
        for level in (4, 3, 2, 1):
            features = self.decoder[f"up{level}"](features)
            features = torch.cat([skips[level - 1], features], dim=1)
            features = self.decoder[f"dec{level}"](features)
        return self.head(features)

    @torch.no_grad()
    def predict_proba(self, image: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities ``(N, out_channels, H, W)`` in [0, 1] (no gradient)."""
        return torch.sigmoid(self(image))
