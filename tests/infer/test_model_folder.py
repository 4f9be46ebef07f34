"""Model folders: validation naming the missing file, safe weight loading, hash, prepare options."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from wmhkit.errors import InputError
from wmhkit.models.folder import load_model, model_hash, read_model_spec, resolve_device, weights_path
from wmhkit.nn.vgg_unet import VGG16UNet
from wmhkit.preprocess.bias import N4Settings
from wmhkit.preprocess.pipeline import PrepareOptions


def test_load_builds_one_eval_network_per_plane_with_the_saved_weights(make_model: Callable[..., Path]) -> None:
    folder = make_model()
    model = load_model(folder)
    assert model.spec.kind == "segmentation-2.5d" and model.spec.planes == ("axial", "sagittal", "coronal")
    assert model.spec.prepare == PrepareOptions(n4=False, qc_png=False, crop_margin_mm=4.0)
    assert model.size_multiple == 16 and len(model.model_hash) == 64
    saved = torch.load(weights_path(folder, "coronal"), weights_only=True)
    network = model.networks["coronal"]
    assert isinstance(network, VGG16UNet) and not network.training
    assert all(torch.equal(saved[k], v) for k, v in network.state_dict().items())


def test_hash_follows_content_not_location(make_model: Callable[..., Path], tmp_path: Path) -> None:
    folder = make_model()
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, moved)
    assert model_hash(moved) == model_hash(folder)
    other_seed = make_model("other", seed=1)
    assert model_hash(other_seed) != model_hash(folder)
    record = yaml.safe_load((moved / "model.yaml").read_text())
    record["threshold"] = 0.4
    (moved / "model.yaml").write_text(yaml.safe_dump(record))
    assert model_hash(moved) != model_hash(folder)


@pytest.mark.parametrize("missing", ["model.yaml", "provenance.json", "weights/sagittal.pt"])
def test_missing_file_is_named(make_model: Callable[..., Path], missing: str) -> None:
    folder = make_model()
    (folder / missing).unlink()
    with pytest.raises(InputError, match=missing.split("/")[-1]):
        read_model_spec(folder)


def _edit_yaml(folder: Path, **changes: object) -> Path:
    record = yaml.safe_load((folder / "model.yaml").read_text())
    record.update(changes)
    (folder / "model.yaml").write_text(yaml.safe_dump(record))
    return folder


def test_missing_folder_and_bad_yaml_are_clear(make_model: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model folder does not exist"):
        read_model_spec(tmp_path / "nope")
    folder = make_model()
    for changes, message in (({"kind": "segmentation-4d"}, "kind 'segmentation-4d'"), ({"fusion": "vote"}, "fusion"),
                             ({"threshold": 0}, "threshold"), ({"planes": ["axial", "axial"]}, "planes"),
                             ({"prepare": {"n5": True}}, "n5"), ({"inputs": ["dwi"]}, "inputs")):
        with pytest.raises(InputError, match=message):
            read_model_spec(_edit_yaml(make_model("m" + message.split()[0], **{}), **changes))
    (folder / "model.yaml").write_text("kind: [unclosed")
    with pytest.raises(InputError, match="not readable YAML"):
        read_model_spec(folder)
    with pytest.raises(InputError, match="kind"):
        make_model("invalid", kind="volume-ish")  # write_model_folder validates too


class _Payload:
    """Pickling this object makes unpickling create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_payload_in_weights_is_refused_not_run(make_model: Callable[..., Path], tmp_path: Path) -> None:
    folder = make_model()
    marker = tmp_path / "payload-ran"
    weights_path(folder, "axial").write_bytes(pickle.dumps({"x": _Payload(marker)}, protocol=2))
    with pytest.raises(InputError, match="cannot load the weights safely"):
        load_model(folder)
    assert not marker.exists()


def test_weights_of_another_network_are_refused(make_model: Callable[..., Path]) -> None:
    folder = make_model()
    torch.save(VGG16UNet(width=1 / 8).state_dict(), weights_path(folder, "axial"))
    with pytest.raises(InputError, match="do not fit the network"):
        load_model(folder)
    torch.save({"epoch": 3}, weights_path(folder, "axial"))
    with pytest.raises(InputError, match="not a plain state_dict"):
        load_model(folder)


def test_unknown_network_is_refused(make_model: Callable[..., Path]) -> None:
    folder = _edit_yaml(make_model(), network={"name": "resnet_unet"})
    with pytest.raises(InputError, match="unknown network 'resnet_unet'"):
        load_model(folder)


def test_prepare_options_round_trip() -> None:
    options = PrepareOptions(normalisation="minmax", dataset_normalisation={"siteB": "percentile"},
                             percentiles=(1.0, 99.0), n4_settings=N4Settings(shrink_factor=2, iterations=(5, 5)),
                             fixed_shape=(64, 64, 48))
    assert PrepareOptions.from_dict(yaml.safe_load(yaml.safe_dump(options.to_dict()))) == options


def test_cuda_without_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
