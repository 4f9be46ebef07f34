import pytest
import torch

from wmhkit.errors import InputError
from wmhkit.nn.imagenet import load_imagenet_encoder, vgg16_conv_channels
from wmhkit.nn.vgg_unet import VGG16UNet

FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _torchvision_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision vgg16's keys and shapes (random values, not downloaded)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (cin, cout) in zip(FEATURE_INDICES, vgg16_conv_channels()):
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = torch.randn(cout, generator=generator)
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(_torchvision_vgg16_state(), path)
    return path


def test_full_width_loads_every_conv_and_sums_rgb_in_the_first(weights_file):
    state = _torchvision_vgg16_state()
    model = VGG16UNet(in_channels=1, width=1.0)
    decoder_before = model.head.weight.detach().clone()
    assert len(load_imagenet_encoder(model, weights_file)) == 13
    convs = model.conv_layers()
    assert torch.equal(convs[0].weight, state["features.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(convs[0].bias, state["features.0.bias"])
    for conv, index in zip(convs[1:], FEATURE_INDICES[1:]):
        assert torch.equal(conv.weight, state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, state[f"features.{index}.bias"])
    assert torch.equal(model.head.weight, decoder_before)


def test_narrow_network_takes_leading_channels(weights_file):
    state = _torchvision_vgg16_state()
    model = VGG16UNet(width=0.25)
    load_imagenet_encoder(model, weights_file)
    conv = model.conv_layers()[2]  # conv2_1: 64 → 128 at full width
    assert torch.equal(conv.weight, state["features.5.weight"][:32, :16])


def test_wrong_or_missing_keys_are_refused(tmp_path):
    state = _torchvision_vgg16_state()
    del state["features.28.bias"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match="features.28.bias"):
        load_imagenet_encoder(VGG16UNet(width=1 / 16), path)
    with pytest.raises(InputError, match="does not exist"):
        load_imagenet_encoder(VGG16UNet(width=1 / 16), tmp_path / "absent.pth")
