"""GP-Unet: a shallow 3D U-Net whose global-pooled features regress the WMH volume, and its strong-label twin.

Dubost et al. (MICCAI 2017, "GP-Unet: lesion detection from weak labels with a
3D regression network") and Werner, Dubost, de Bruijne et al. ("When weak
becomes strong") train this network on one number per scan. The trunk::

    enc1: conv conv | pool | enc2: conv conv | pool | enc3: conv conv
    | up, concat enc2 | dec2: conv conv | up, concat enc1 | dec1: conv conv

(``levels`` = 2 drops the innermost level) uses 3×3×3 convolutions with ReLU
after every one except the very last (the last decoder conv stays linear so that
its maps can be negative and the attention map is a linear read-out), 2×2×2 max
pooling and nearest-neighbour upsampling; the skip is concatenated before each
pair of decoder convolutions. Channels are ``base_channels × 2^level``.
Convolutions start from He (Kaiming-normal, fan-in) weights and zero biases:
there is no normalisation layer, and PyTorch's default initialisation shrinks
the activations at every convolution, so that Adam's first steps on the biases
switched every ReLU off and the network output one constant for all scans.

Heads (same parameter names, so a weak and a strong network from the same seed
start from identical weights and differ only in their label type):

``"pooled"`` (weak labels)
    global average pooling of the last decoder maps ``F`` (C maps) and a dense
    layer: ``out = W · mean(F) + b`` → ``(N, outputs)`` (the paper). With
    ``pool_scale = s`` the pooling is a *sum* times ``s`` instead,
    ``out = W · s Σ_v F_v + b``: with ``s`` the box voxel volume in mL the
    attention map is a lesion density (mL per mL) whose integral over the box is
    the volume (up to a constant with ``pooled_norm``). This matters for
    learning: a lesion is a tiny fraction of a whole-brain box, so through an
    average the dense weights would have to grow by thousands before a lesion
    moves the output by one mL, far beyond what an optimiser reaches. With
    ``ordinal_levels = K`` the dense layer has one output and ``K − 1`` learned
    cut points give the cumulative logits ``out − cut_j`` (rank-consistent
    ordinal regression, Cao et al. 2020).
``"voxel"`` (strong labels)
    the dense layer applied at every voxel (a 1×1×1 convolution) → logits
    ``(N, outputs, X, Y, Z)``; :meth:`GPUNet.predict_proba` applies the sigmoid.

With ``pooled_norm`` the pooled features pass through a batch normalisation
without learned scale or shift (``(p_c − μ_c) / σ_c``, batch statistics in
training, running statistics in evaluation) before the dense layer. Without it
the weak model does not learn on phantoms: the pooled maps share a component
common to every scan that is larger than their spread across scans, so the first
optimiser steps on the dense layer move every output together, the trunk shrinks
its maps and the network predicts the training mean for every scan. Centred and
scaled pooled features leave the dense layer only the differences between scans,
and the same network learns the volumes (see BENCHMARKS.md, "Weak-label GP-Unet").

With ``output_scale = σ_y`` (the SD of the training targets) the dense weights
act in units of ``σ_y``: ``out = σ_y · W z + b``, i.e. the dense layer regresses
standardised targets. This matters with ``pooled_norm``: the normalised features
``z`` have unit variance whatever the trunk does, so the outputs can spread
across scans only through ``W``, and Adam moves each weight by about the
learning rate per step: regressing mL, the weak model's outputs stayed near the
training mean (see BENCHMARKS.md). With ``readout: least_squares`` the trainer
also sets ``W`` and ``b`` of the best checkpoint to their ridge fit
(:func:`wmhkit.train.volume.refresh_readout`), which removes the limit for the
read-out altogether.

The class-activation attention map of output ``o`` is ``A_o = Σ_c W[o, c] F_c``
(:meth:`GPUNet.attention`); because pooling and the dense layer are linear,
``out_o = mean(A_o) + b_o`` exactly (``s Σ A_o + b_o`` with ``pool_scale``).
With ``pooled_norm`` the running statistics are folded into the read-out
(:meth:`GPUNet.readout`): ``W[o, c] / σ_c`` replaces ``W[o, c]`` and the bias
becomes ``b_o − Σ_c W[o, c] μ_c / σ_c``, so the identity holds in evaluation mode;
``output_scale`` multiplies ``W`` there too.

Input ``(N, in_channels, X, Y, Z)`` with each size a multiple of ``2^(levels−1)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: Name of this network in ``model.yaml`` (``network: {name: gp_unet, ...}``).
NETWORK_NAME = "gp_unet"
HEADS: tuple[str, ...] = ("pooled", "voxel")
LEVELS: tuple[int, ...] = (2, 3)
#: Input sizes must be multiples of this for the deepest allowed network (three levels).
DOWNSAMPLING = 2 ** (max(LEVELS) - 1)


def _conv(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)


class GPUNet(nn.Module):
    """The GP-Unet trunk with a pooled (weak-label) or voxel-wise (strong-label) head.

    Parameters
    ----------
    in_channels
        Input images stacked as channels (1 for FLAIR).
    base_channels
        Channels of the first level; level ``l`` has ``base_channels × 2^l``.
    levels
        Resolution levels, 2 or 3.
    outputs
        Dense outputs: 1 for volume regression or for the ordinal head, the
        number of classes for classification, 1 for the strong twin.
    head
        ``"pooled"`` or ``"voxel"`` (see the module docstring).
    ordinal_levels
        Number of ordered grades K for ordinal regression (pooled head with
        ``outputs = 1``); None otherwise.
    pool_scale
        None: global average pooling (the paper); a positive number ``s``: sum
        pooling times ``s`` (e.g. the box voxel volume in mL; see the module docstring).
    pooled_norm
        Batch-normalise the pooled features (no learned affine) before the
        dense layer; pooled head only (see the module docstring).
    output_scale
        None, or a positive factor on the dense weights of the pooled head
        (``out = output_scale · W p + b``): the SD of the training targets, so
        the dense layer regresses standardised targets (see the module docstring).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        levels: int = 3,
        outputs: int = 1,
        head: str = "pooled",
        ordinal_levels: int | None = None,
        pool_scale: float | None = None,
        pooled_norm: bool = False,
        output_scale: float | None = None,
    ) -> None:
        super().__init__()
        if levels not in LEVELS:
            raise ValueError(f"levels must be one of {LEVELS}, got {levels}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if in_channels < 1 or base_channels < 1 or outputs < 1:
            raise ValueError("in_channels, base_channels and outputs must be positive")
        if ordinal_levels is not None and (ordinal_levels < 2 or outputs != 1 or head != "pooled"):
            raise ValueError("ordinal_levels needs at least 2 grades, outputs = 1 and the pooled head")
        if pool_scale is not None and not pool_scale > 0:
            raise ValueError(f"pool_scale must be positive or None, got {pool_scale}")
        if pooled_norm and head != "pooled":
            raise ValueError("pooled_norm is for the pooled (weak-label) head")
        if output_scale is not None and (not output_scale > 0 or head != "pooled"):
            raise ValueError(f"output_scale must be positive and for the pooled head, got {output_scale} ({head})")
        self.output_scale = None if output_scale is None else float(output_scale)
        self.pool_scale = None if pool_scale is None else float(pool_scale)
        self.in_channels, self.base_channels, self.levels = in_channels, base_channels, levels
        self.outputs, self.head, self.ordinal_levels = outputs, head, ordinal_levels
        widths = [base_channels * 2**level for level in range(levels)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoder.append(nn.ModuleList([_conv(previous, width), _conv(width, width)]))
            previous = width
        self.decoder = nn.ModuleList()
        for level in reversed(range(levels - 1)):
            width = widths[level]
            self.decoder.append(nn.ModuleList([_conv(previous + width, width), _conv(width, width)]))
            previous = width
        self.dense = nn.Linear(widths[0], outputs)
        # no parameters, so a weak and a strong network of one seed still start from identical weights
        self.pooled_norm = nn.BatchNorm1d(widths[0], affine=False) if pooled_norm else None
        for module in [*self.encoder.modules(), *self.decoder.modules()]:
            if isinstance(module, nn.Conv3d):
                # He initialisation: with PyTorch's default (uniform, gain 1/√3) the activations shrink
                # ~2.5× per conv, to a std of ~0.02 after ten; Adam's first 1e-3 steps on the biases then
                # switch every ReLU off and the network outputs one constant (measured on phantoms).
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        if ordinal_levels is not None:
            self.cut_points = nn.Parameter(torch.arange(ordinal_levels - 1, dtype=torch.float32))

    @property
    def size_multiple(self) -> int:
        """Every input size must be a multiple of this (``2^(levels − 1)``)."""
        return 2 ** (self.levels - 1)

    def network_spec(self) -> dict[str, Any]:
        """The ``model.yaml`` ``network`` entry that rebuilds this network."""
        spec: dict[str, Any] = {"name": NETWORK_NAME, "in_channels": self.in_channels,
                                "base_channels": self.base_channels, "levels": self.levels,
                                "outputs": self.outputs, "head": self.head}
        if self.ordinal_levels is not None:
            spec["ordinal_levels"] = self.ordinal_levels
        if self.pool_scale is not None:
            spec["pool_scale"] = self.pool_scale
        if self.pooled_norm is not None:
            spec["pooled_norm"] = True
        if self.output_scale is not None:
            spec["output_scale"] = self.output_scale
        return spec

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Last decoder feature maps ``F``, shape ``(N, base_channels, X, Y, Z)`` (no ReLU on them)."""
        if image.ndim != 5 or image.shape[1] != self.in_channels:
            raise ValueError(f"input must be (N, {self.in_channels}, X, Y, Z), got {tuple(image.shape)}")
        if any(size % self.size_multiple for size in image.shape[2:]):
            raise ValueError(f"input sizes {tuple(image.shape[2:])} must be multiples of {self.size_multiple}")
        skips = []
        features = image
        for level, (first, second) in enumerate(self.encoder):
            if level:
                skips.append(features)
                features = F.max_pool3d(features, kernel_size=2)
            features = F.relu(second(F.relu(first(features))))
        for index, (first, second) in enumerate(self.decoder):
            skip = skips.pop()
            features = F.interpolate(features, size=skip.shape[2:], mode="nearest")
            features = F.relu(first(torch.cat([features, skip], dim=1)))
            features = second(features)
            if index < len(self.decoder) - 1:
                features = F.relu(features)
        return features

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Global pooling of feature maps ``(N, C, X, Y, Z)`` → ``(N, C)``: the mean, or the sum times ``pool_scale``."""
        if self.pool_scale is None:
            return features.mean(dim=(2, 3, 4))
        return features.sum(dim=(2, 3, 4)) * self.pool_scale

    def readout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense weights ``(outputs, C)`` and bias ``(outputs,)`` acting on the pooled features, in evaluation mode.

        Without ``pooled_norm`` these are the dense layer's own (times
        ``output_scale``); with it the batch norm's running mean ``μ`` and
        deviation ``σ`` are folded in: ``W / σ`` and ``b − (W / σ) · μ``.
        """
        weight, bias = self.dense.weight, self.dense.bias
        if self.output_scale is not None:
            weight = weight * self.output_scale
        if self.pooled_norm is None:
            return weight, bias
        scaled = weight / torch.sqrt(self.pooled_norm.running_var + self.pooled_norm.eps)
        return scaled, bias - scaled @ self.pooled_norm.running_mean

    def attention(self, image: torch.Tensor) -> torch.Tensor:
        """Class-activation attention maps ``A_o = Σ_c W[o, c] F_c``, shape ``(N, outputs, X, Y, Z)`` (no bias).

        ``W`` is the evaluation-mode read-out (:meth:`readout`).
        """
        return torch.einsum("oc,ncxyz->noxyz", self.readout()[0], self.features(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Pooled head: ``(N, outputs)`` (or ``(N, K − 1)`` cumulative logits); voxel head: ``(N, outputs, X, Y, Z)`` logits."""
        features = self.features(image)
        if self.head == "voxel":
            return torch.einsum("oc,ncxyz->noxyz", self.dense.weight, features) + self.dense.bias.view(1, -1, 1, 1, 1)
        pooled = self.pool(features)
        if self.pooled_norm is not None:
            pooled = self.pooled_norm(pooled)
        if self.output_scale is not None:
            pooled = F.linear(pooled, self.dense.weight * self.output_scale, self.dense.bias)
        else:
            pooled = self.dense(pooled)
        if self.ordinal_levels is not None:
            return pooled - self.cut_points.view(1, -1)
        return pooled

    @torch.no_grad()
    def predict_proba(self, image: torch.Tensor) -> torch.Tensor:
        """Voxel head: sigmoid probabilities ``(N, outputs, X, Y, Z)``."""
        if self.head != "voxel":
            raise ValueError("predict_proba is for the voxel (strong-label) head")
        return torch.sigmoid(self.forward(image))
