"""Training resume through the CLI: a corrupt latest checkpoint falls back to the previous one and ends
bit-identical; a folder killed while being set up starts again; sidecar schema refusals write nothing."""

from __future__ import annotations

import logging

import pytest
import torch

from wmhkit.cli import main
from wmhkit.errors import InputError
from wmhkit.io.provenance import sidecar_path, validate_sidecar, write_sidecar

STAGE = "stages/gold/axial"


def _train(config, manifest, out, *flags):
    return main(["train", str(config), "--manifest", str(manifest), "--out", str(out), "--no-progress", *flags])


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_corrupt_latest_checkpoint_falls_back_and_ends_bit_identical(train_inputs, tmp_path, caplog):
    config, manifest = train_inputs
    run = tmp_path / "run"
    assert _train(config, manifest, run) == 0
    finished = _state(run / STAGE / "last.pt")
    history = (run / STAGE / "history.csv").read_bytes()
    (run / STAGE / "done.json").unlink()
    data = (run / STAGE / "last.pt").read_bytes()
    (run / STAGE / "last.pt").write_bytes(data[: len(data) // 2])  # a torn latest checkpoint
    with caplog.at_level(logging.WARNING):
        assert _train(config, manifest, run, "--resume") == 0
    assert "last.prev.pt" in caplog.text and "falling back" in caplog.text
    resumed = _state(run / STAGE / "last.pt")
    assert resumed.keys() == finished.keys() and all(torch.equal(resumed[k], finished[k]) for k in finished)
    assert (run / STAGE / "history.csv").read_bytes() == history


def test_a_run_folder_killed_during_setup_starts_again(train_inputs, tmp_path):
    config, manifest = train_inputs
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: half")  # what a kill before run.json can leave
    (run / ".splits.tsv.0123456789ab.tmp.tsv").write_text("stage\tfo")
    assert _train(config, manifest, run) == 0
    assert (run / "run.json").is_file() and (run / STAGE / "done.json").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("user data")
    assert _train(config, manifest, tmp_path / "other") == 2  # a folder with anything else is still refused


def test_a_sidecar_naming_a_model_input_without_its_hash_is_never_written(tmp_path):
    model_yaml = tmp_path / "model.yaml"
    model_yaml.write_text("kind: segmentation-2.5d\n")
    output = tmp_path / "out" / "wmh.nii.gz"
    output.parent.mkdir()
    output.write_bytes(b"mask")
    with pytest.raises(InputError, match="model"):
        write_sidecar(output, step="predict", inputs={"model": model_yaml}, parameters={})
    assert not sidecar_path(output).exists()
    with pytest.raises(InputError, match="device/type"):
        write_sidecar(output, step="predict", inputs={}, parameters={}, extra={"device": {"type": "tpu"}})
    written = write_sidecar(output, step="predict", inputs={"model": model_yaml}, parameters={},
                            extra={"model": {"hash": "0" * 64}, "device": {"type": "cpu"}})
    assert validate_sidecar(written)["model"]["hash"] == "0" * 64


@pytest.mark.parametrize("content", ["", "{\"step\": \"prepare\"", "[]", "{\"step\": \"Prepare!\"}"])
def test_broken_sidecars_fail_validation_naming_the_file(tmp_path, content):
    path = tmp_path / "flair.json"
    path.write_text(content)
    with pytest.raises(InputError, match="flair.json"):
        validate_sidecar(path)
