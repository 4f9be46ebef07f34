"""The network registry: a ``model.yaml`` ``network`` entry (name + constructor arguments) → a torch module.

Every network class has a ``network_spec()`` method giving ``{"name": ..., **kwargs}``;
:func:`build_network` turns that entry back into the same (freshly initialised)
network, so specs round-trip through ``model.yaml``. Adding a network means one
module in :mod:`wmhkit.nn` plus one line in :data:`NETWORKS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from wmhkit.nn import gp_unet, vgg_unet


@dataclass(frozen=True)
class NetworkType:
    """A registered network.

    Attributes
    ----------
    build
        The network class; ``model.yaml`` arguments are its constructor's keyword arguments.
    size_multiple
        Input sizes (height and width of a 2D network, every size of a 3D one) must be
        multiples of this.
    """

    build: type[nn.Module]
    size_multiple: int

    @property
    def arguments(self) -> frozenset[str]:
        """Constructor arguments a ``model.yaml`` entry may set."""
        return frozenset(name for name in inspect.signature(self.build).parameters if name != "self")


#: ``model.yaml`` network name → network type.
NETWORKS: dict[str, NetworkType] = {
    vgg_unet.NETWORK_NAME: NetworkType(vgg_unet.VGG16UNet, vgg_unet.DOWNSAMPLING),
    gp_unet.NETWORK_NAME: NetworkType(gp_unet.GPUNet, gp_unet.DOWNSAMPLING),
}


def network_type(name: object) -> NetworkType:
    """The registered network called ``name``.

    Raises
    ------
    ValueError
        For a name that is not registered.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known networks: {sorted(NETWORKS)}")
    return NETWORKS[name]  # type: ignore[index]


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """Build the network a ``model.yaml`` ``network`` entry (from its ``network_spec()``) describes.

    Raises
    ------
    ValueError
        For an unknown name, arguments the network does not take, or values it refuses.

    Examples
    --------
    >>> network = build_network({"name": "vgg16_unet", "width": 0.0625})
    >>> build_network(network.network_spec()).network_spec() == network.network_spec()
    True
    """
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    registered = network_type(name)
    unknown = sorted(set(kwargs) - registered.arguments)
    if unknown:
        raise ValueError(f"unknown {name} arguments {unknown}; allowed: {sorted(registered.arguments)}")
    return registered.build(**kwargs)
