"""Rules both trainers share: the run identity (config, manifest, device) and a missing prepare sidecar."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import load_image, save_mask
from wmhkit.train import distributed
from wmhkit.train.checkpoint import CheckpointError
from wmhkit.train.config import parse_config
from wmhkit.train.segmentation import train_run
from wmhkit.train.volume import train_volume
from wmhkit.train.volume_config import parse_volume_config

VOLUME = {"box": {"shape": [8, 8, 4], "spacing_mm": None}, "network": {"base_channels": 2}, "epochs": 1,
          "device": "cpu", "threads": 1, "split": {"stratify": None}}


@pytest.fixture
def cohort(tmp_path: Path, write_cohort) -> Path:
    """The tiny trainer cohort (no prepare sidecars) with a whole-volume brain mask and volume_ml per scan."""
    manifest = write_cohort(tmp_path / "prepared", n_gold=6, n_unlabelled=3)
    table = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    brains, volumes = [], []
    for flair in table["flair"]:
        image = load_image(manifest.parent / flair)
        brain = Path(flair).with_name("brain.nii.gz")
        save_mask(Image(np.ones(image.array.shape, np.uint8), image.affine), manifest.parent / brain)
        brains.append(str(brain))
        volumes.append(f"{float((image.array > 0.6).sum()) * 1.5 ** 3 / 1000:.4f}")
    return write_manifest(table.assign(brain_mask=brains, volume_ml=volumes), manifest)


def _train(family: str, out: Path, manifest: Path, make_config, *, resume: bool = False) -> Path:
    """Train a tiny run of ``family``; return its model folder."""
    if family == "segmentation":
        config = parse_config(make_config(stages=[{"labels": "gold", "scans": "with_gold", "folds": 1, "epochs": 1,
                                                   "batch_size": 16, "slices_per_epoch": 16, "val_slices": 16}]))
        return train_run(config, out, manifest=manifest, resume=resume).model_dir
    return train_volume(parse_volume_config(VOLUME), out, manifest=manifest, resume=resume).seeds[0].model_dir


@pytest.mark.parametrize("family", ["segmentation", "volume"])
def test_resume_on_another_manifest_or_device_is_refused(family, cohort, make_config, tmp_path, monkeypatch):
    _train(family, tmp_path / "run", cohort, make_config)
    _train(family, tmp_path / "run", cohort, make_config, resume=True)  # same identity: continues (finished)
    edited = cohort.with_name("edited.tsv")
    table = pd.read_csv(cohort, sep="\t", dtype=str, keep_default_na=False)
    write_manifest(table.assign(volume_ml=[f"{float(v) + 1:.4f}" for v in table["volume_ml"]]), edited)
    with pytest.raises(CheckpointError, match="another config, manifest or device"):
        _train(family, tmp_path / "run", edited, make_config, resume=True)
    monkeypatch.setattr(distributed, "choose_device", lambda *args, **kwargs: torch.device("cuda"))
    with pytest.raises(CheckpointError, match="another config, manifest or device"):  # refused before any CUDA call
        _train(family, tmp_path / "run", cohort, make_config, resume=True)


@pytest.mark.parametrize("family", ["segmentation", "volume"])
def test_a_missing_prepare_sidecar_is_a_warning_naming_the_manifest(family, cohort, make_config, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="wmhkit"):
        model_dir = _train(family, tmp_path / "run", cohort, make_config)
    warnings = [r.getMessage() for r in caplog.records if "no wmhkit prepare sidecar" in r.getMessage()]
    assert len(warnings) == 1 and str(cohort) in warnings[0]
    assert yaml.safe_load((model_dir / "model.yaml").read_text()).get("prepare") is None


def test_every_shipped_config_reads_back_from_the_record_a_run_writes() -> None:
    """RUN/config.yaml (``to_dict``) has the file's nested sections, so both loaders read it back unchanged."""
    from wmhkit.train.config import load_config, resolve_config_path, shipped_configs
    from wmhkit.train.volume_config import load_volume_config

    for name in shipped_configs():
        path = resolve_config_path(name)
        volume = "stages" not in yaml.safe_load(path.read_text())
        load, parse = (load_volume_config, parse_volume_config) if volume else (load_config, parse_config)
        config = load(path)
        assert parse(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config, name
        if volume:
            assert set(config.to_dict()["network"]) == {"base_channels", "levels", "pooling", "pooled_norm"}
