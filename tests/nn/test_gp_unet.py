"""GP-Unet: shapes, the attention-map identity, the shared trunk of the weak and strong heads."""

from __future__ import annotations

import pytest
import torch

from wmhkit.models.networks import build_network
from wmhkit.nn.gp_unet import GPUNet

SHAPE = (8, 8, 4)


def _image(seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 1, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def _network(**kwargs: object) -> GPUNet:
    torch.manual_seed(3)
    return GPUNet(base_channels=4, **kwargs).eval()


@pytest.mark.parametrize("levels", [2, 3])
def test_output_shapes(levels: int) -> None:
    image = _image()
    assert _network(levels=levels)(image).shape == (2, 1)
    assert _network(levels=levels, outputs=4)(image).shape == (2, 4)
    assert _network(levels=levels, ordinal_levels=4)(image).shape == (2, 3)
    assert _network(levels=levels, head="voxel")(image).shape == (2, 1, *SHAPE)
    assert _network(levels=levels).features(image).shape == (2, 4, *SHAPE)


@pytest.mark.parametrize("outputs", [1, 3])
def test_pooled_output_is_mean_attention_plus_bias(outputs: int) -> None:
    network = _network(outputs=outputs)
    image = _image(1)
    with torch.no_grad():
        pooled = network(image)
        attention = network.attention(image)
    expected = attention.mean(dim=(2, 3, 4)) + network.dense.bias
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)


def test_attention_is_dense_weights_times_last_feature_maps() -> None:
    network = _network(outputs=2)
    image = _image(2)
    with torch.no_grad():
        features = network.features(image)
        attention = network.attention(image)
    weights = network.dense.weight
    for output in range(2):
        by_hand = sum(weights[output, c] * features[:, c] for c in range(features.shape[1]))
        torch.testing.assert_close(attention[:, output], by_hand, rtol=1e-5, atol=1e-6)


def test_last_feature_maps_have_no_relu() -> None:
    with torch.no_grad():
        features = _network().features(_image(4))
    assert features.min() < 0 < features.max()


def test_voxel_head_is_attention_plus_bias_and_shares_the_trunk() -> None:
    weak, strong = _network(), _network(head="voxel")
    weak_state, strong_state = weak.state_dict(), strong.state_dict()
    assert weak_state.keys() == strong_state.keys()
    assert all(torch.equal(weak_state[k], strong_state[k]) for k in weak_state)
    image = _image(5)
    with torch.no_grad():
        logits = strong(image)
        attention = weak.attention(image)
    torch.testing.assert_close(logits, attention + weak.dense.bias.view(1, -1, 1, 1, 1), rtol=1e-5, atol=1e-6)
    probability = strong.predict_proba(image)
    assert float(probability.min()) >= 0.0 and float(probability.max()) <= 1.0


def test_ordinal_logits_decrease_with_the_cut_points() -> None:
    network = _network(ordinal_levels=4)
    with torch.no_grad():
        network.cut_points.copy_(torch.tensor([-1.0, 0.0, 2.0]))
        logits = network(_image(6))
    assert bool((logits[:, :-1] > logits[:, 1:]).all())


def test_volume_pooling_is_the_attention_integral_plus_bias() -> None:
    voxel_ml = 0.0375
    network = _network(pool_scale=voxel_ml)
    image = _image(2)
    with torch.no_grad():
        pooled = network(image)
        attention = network.attention(image)
        averaged = _network()(image)  # same seed, average pooling
    torch.testing.assert_close(pooled, attention.sum(dim=(2, 3, 4)) * voxel_ml + network.dense.bias,
                               rtol=1e-5, atol=1e-6)
    n_voxels = SHAPE[0] * SHAPE[1] * SHAPE[2]
    torch.testing.assert_close(pooled - network.dense.bias, (averaged - network.dense.bias) * n_voxels * voxel_ml,
                               rtol=1e-4, atol=1e-6)
    assert build_network(network.network_spec()).pool_scale == voxel_ml


@pytest.mark.parametrize("pool_scale, output_scale", [(None, None), (0.0375, None), (0.0375, 7.5)])
def test_pooled_norm_folds_into_the_readout_of_the_attention_map(pool_scale: float | None,
                                                                   output_scale: float | None) -> None:
    network = _network(outputs=2, pool_scale=pool_scale, pooled_norm=True, output_scale=output_scale).train()
    with torch.no_grad():
        for seed in range(3):  # running statistics away from their start (mean 0, variance 1)
            network(_image(seed, batch=3))
    network.eval()
    image = _image(7)
    with torch.no_grad():
        output = network(image)
        attention = network.attention(image)
        features = network.features(image)
    pooled = features.mean(dim=(2, 3, 4)) if pool_scale is None else features.sum(dim=(2, 3, 4)) * pool_scale
    norm = network.pooled_norm
    by_hand = ((pooled - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)) @ network.dense.weight.T
    by_hand = by_hand * (output_scale or 1.0)  # the dense weights in units of output_scale
    torch.testing.assert_close(output, by_hand + network.dense.bias, rtol=1e-4, atol=1e-5)
    weight, bias = network.readout()
    integral = attention.mean(dim=(2, 3, 4)) if pool_scale is None else attention.sum(dim=(2, 3, 4)) * pool_scale
    torch.testing.assert_close(output, integral + bias, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(weight, network.dense.weight)  # the running deviation is folded in
    assert build_network(network.network_spec()).output_scale == output_scale


def test_pooled_norm_uses_batch_statistics_in_training() -> None:
    network = _network(pooled_norm=True).train()
    with torch.no_grad():
        network.dense.weight.fill_(1.0)
        output = network(_image(8, batch=4))
    # centred pooled features: the outputs of a batch average to the dense bias
    assert float(output.mean()) == pytest.approx(float(network.dense.bias.detach()), abs=1e-4)
    assert build_network(network.network_spec()).pooled_norm is not None
    assert "pooled_norm.running_mean" in network.state_dict()


def test_build_network_round_trips_the_spec() -> None:
    network = GPUNet(base_channels=4, levels=2, outputs=1, ordinal_levels=5)
    rebuilt = build_network(network.network_spec())
    assert rebuilt.network_spec() == network.network_spec()
    assert rebuilt.state_dict().keys() == network.state_dict().keys()


@pytest.mark.parametrize("spec, message", [
    ({"name": "gp-unet"}, "unknown network"),
    ({"name": "gp_unet", "depth": 3}, "unknown gp_unet arguments"),
    ({"name": "gp_unet", "levels": 4}, "levels"),
    ({"name": "gp_unet", "head": "voxel", "ordinal_levels": 3}, "ordinal_levels"),
    ({"name": "gp_unet", "pool_scale": 0.0}, "pool_scale"),
    ({"name": "gp_unet", "head": "voxel", "pooled_norm": True}, "pooled_norm"),
    ({"name": "gp_unet", "output_scale": -1.0}, "output_scale"),
    ({"name": "gp_unet", "head": "voxel", "output_scale": 2.0}, "output_scale"),
])
def test_bad_specs_are_rejected(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_network(spec)


def test_input_sizes_must_fit_the_pooling() -> None:
    with pytest.raises(ValueError, match="multiples of 4"):
        _network()(torch.zeros(1, 1, 8, 8, 6))


def test_he_initialisation_keeps_the_activations_alive_through_the_trunk() -> None:
    # with PyTorch's default conv initialisation the last features of a 3-level trunk have a std of ~0.02
    # for unit-scale input, small enough that Adam's first bias steps switch every ReLU off
    torch.manual_seed(0)
    network = GPUNet(base_channels=8, levels=3)
    image = torch.rand(2, 1, 16, 16, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = network.features(image)
    assert float(features.std()) > 0.1
    for module in network.modules():
        if isinstance(module, torch.nn.Conv3d):
            assert float(module.bias.detach().abs().max()) == 0.0
            fan_in = module.weight[0].numel()
            assert float(module.weight.detach().std()) == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.25)
