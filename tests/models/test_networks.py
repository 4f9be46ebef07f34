"""The network registry: every registered network's spec round-trips; kinds admit only their networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from wmhkit.errors import InputError
from wmhkit.models.folder import KINDS, read_model_spec, write_model_folder
from wmhkit.models.networks import NETWORKS, build_network
from wmhkit.nn.gp_unet import GPUNet
from wmhkit.nn.vgg_unet import VGG16UNet


@pytest.mark.parametrize("network", [VGG16UNet(width=1 / 16, decoder_batch_norm=False),
                                     GPUNet(base_channels=2, levels=2, head="voxel"),
                                     GPUNet(base_channels=2, ordinal_levels=4, pool_scale=0.5, pooled_norm=True)])
def test_every_registered_network_round_trips_its_spec(network: torch.nn.Module) -> None:
    spec = yaml.safe_load(yaml.safe_dump(network.network_spec()))  # as model.yaml holds it
    assert spec == network.network_spec() and spec["name"] in NETWORKS
    rebuilt = build_network(spec)
    assert type(rebuilt) is type(network) and rebuilt.network_spec() == spec
    assert list(rebuilt.state_dict()) == list(network.state_dict())


def test_unknown_networks_and_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown network 'resnet'"):
        build_network({"name": "resnet"})
    with pytest.raises(ValueError, match="unknown vgg16_unet arguments \\['depth'\\]"):
        build_network({"name": "vgg16_unet", "depth": 3})


def test_a_kind_takes_only_its_networks(tmp_path: Path) -> None:
    assert set(KINDS) == {"segmentation-2.5d", "segmentation-3d", "volume"}
    network = GPUNet(base_channels=2, levels=2)
    record = {"kind": "segmentation-2.5d", "network": network.network_spec(), "planes": ["axial"]}
    with pytest.raises(InputError, match="does not make a 'segmentation-2.5d' model"):
        write_model_folder(tmp_path / "m", record, {"axial": network.state_dict()}, {})
    record = {"kind": "volume", "network": network.network_spec(), "box": {"shape": [8, 8, 4], "spacing_mm": None}}
    write_model_folder(tmp_path / "m", record, {"model": network.state_dict()}, {})
    assert read_model_spec(tmp_path / "m").weight_names == ("model",)
