import pytest
import torch

from wmhkit.models.networks import build_network
from wmhkit.nn.vgg_unet import CONV_NAMES, VGG16UNet

VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_encoder_is_vgg16_order_with_scaled_widths():
    full = VGG16UNet(width=1.0)
    small = VGG16UNet(width=0.25)
    assert [c.out_channels for c in full.conv_layers()] == VGG16_WIDTHS
    assert [c.out_channels for c in small.conv_layers()] == [w // 4 for w in VGG16_WIDTHS]
    assert len(small.conv_layers()) == 13
    assert all(c.kernel_size == (3, 3) for c in small.conv_layers())
    assert list(small.layer_groups())[:13] == list(CONV_NAMES)
    assert CONV_NAMES[0] == "conv1_1" and CONV_NAMES[-1] == "conv5_3"


def test_forward_shape_and_probabilities():
    model = VGG16UNet(width=1 / 16)
    image = torch.randn(3, 1, 32, 48)
    assert model(image).shape == (3, 1, 32, 48)
    probabilities = model.predict_proba(image)
    assert float(probabilities.min()) >= 0.0 and float(probabilities.max()) <= 1.0
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.randn(1, 1, 30, 32))


def test_freeze_first_k_keeps_those_weights_fixed_after_a_step():
    torch.manual_seed(0)
    model = VGG16UNet(width=1 / 16)
    frozen = model.freeze_first(5)
    assert frozen == list(CONV_NAMES[:5])
    convs = model.conv_layers()
    assert [c.weight.requires_grad for c in convs] == [False] * 5 + [True] * 8
    before = [c.weight.detach().clone() for c in convs]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 1, 32, 32)).mean().backward()
    optimizer.step()
    unchanged = [torch.equal(b, c.weight) for b, c in zip(before, convs)]
    assert unchanged[:5] == [True] * 5
    assert not any(unchanged[5:])
    model.freeze_first(0)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="0 to 13"):
        model.freeze_first(14)


def test_build_network_round_trips_the_spec():
    model = VGG16UNet(width=0.125, decoder_batch_norm=False)
    rebuilt = build_network(model.network_spec())
    assert rebuilt.network_spec() == model.network_spec()
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    with pytest.raises(ValueError, match="unknown"):
        build_network({"name": "vgg16_unet", "depth": 3})
