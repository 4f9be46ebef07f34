import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from wmhkit.cli import main
from wmhkit.errors import OutputError
from wmhkit.train.config import ConfigError, load_config, parse_config, resolve_config_path, shipped_configs
from wmhkit.train.segmentation import train_run


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"stages\[0\]\.epoch: unknown key"):
        parse_config({"stages": [{"labels": "gold", "epoch": 3}]})
    with pytest.raises(ConfigError, match=r"stages\[0\]\.learning_rate"):
        parse_config({"stages": [{"labels": "gold", "learning_rate": -1}]})
    with pytest.raises(ConfigError, match="data.patch_size"):
        parse_config({"stages": [{"labels": "gold"}], "data": {"patch_size": 40}})
    with pytest.raises(ConfigError, match="cross-validated gold stage"):
        parse_config({"stages": [{"labels": "gold"}, {"labels": "silver"}]})
    assert parse_config({"stages": [{"labels": "silver"}]}).stages[0].freeze == 5


def test_shipped_configs_load_by_name():
    assert {"m3sl", "m3sl-cpu", "baseline", "baseline-cpu", "transfer", "transfer-cpu"} <= set(shipped_configs())
    m3sl = load_config(resolve_config_path("m3sl-cpu"))
    assert [s.labels for s in m3sl.stages] == ["bronze", "silver", "gold"]
    assert [s.freeze for s in m3sl.stages] == [0, 5, 10]
    assert load_config(resolve_config_path("transfer")).init == "imagenet"


def test_cli_runs_three_stages_cross_validates_and_exports(tiny_cohort, make_config, tmp_path):
    config = make_config(stages=[
        {"labels": "bronze", "bronze_combine": "majority", "scans": "without_gold", "epochs": 1,
         "slices_per_epoch": 32, "val_slices": 32, "learning_rate": 1e-3},
        {"labels": "silver", "scans": "without_gold", "epochs": 1, "slices_per_epoch": 32, "val_slices": 32},
        {"labels": "gold", "scans": "with_gold", "folds": 3, "epochs": 1, "slices_per_epoch": 32, "val_slices": 32},
    ])
    config_path = tmp_path / "m3sl-tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    args = ["train", str(config_path), "--out", str(run), "--manifest", str(tiny_cohort), "--no-progress"]
    assert main(args) == 0
    cv = pd.read_csv(run / "cv_metrics.tsv", sep="\t")
    assert sorted(cv["scan"]) == [f"g{i:02d}" for i in range(6)]  # every gold scan tested exactly once
    model = yaml.safe_load((run / "model" / "model.yaml").read_text())
    assert model["kind"] == "segmentation-2.5d" and model["planes"] == ["axial"]
    assert model["network"]["name"] == "vgg16_unet" and model["network"]["width"] == 0.0625
    state = torch.load(run / "model" / "weights" / "axial.pt", weights_only=True)
    assert "encoder.conv1_1.0.weight" in state
    provenance = json.loads((run / "model" / "provenance.json").read_text())
    assert set(provenance["best_val_iou"]) == {"bronze/axial", "silver/axial", "gold/axial/fold0",
                                               "gold/axial/fold1", "gold/axial/fold2"}
    # silver started from bronze's best weights, with its first 5 convs frozen at those values
    bronze_best = _weights(run / "stages/bronze/axial/best.pt")
    silver_last = _weights(run / "stages/silver/axial/last.pt")
    assert torch.equal(bronze_best["encoder.conv3_1.0.weight"], silver_last["encoder.conv3_1.0.weight"])
    assert not torch.equal(bronze_best["encoder.conv3_2.0.weight"], silver_last["encoder.conv3_2.0.weight"])
    history = pd.read_csv(run / "stages/gold/axial/fold0/history.csv")
    assert list(history.columns[:4]) == ["epoch", "train_loss", "val_loss", "val_iou"]
    assert main(args) == 2  # an existing run needs --resume


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_is_bit_identical(tiny_cohort, make_config, tmp_path):
    config = parse_config(make_config())
    train_run(config, tmp_path / "full", manifest=tiny_cohort)

    def stop_in_second_epoch(description: str, done: int, total: int) -> None:
        if "epoch 2/" in description:
            raise _Interrupt
    with pytest.raises(_Interrupt):
        train_run(config, tmp_path / "cut", manifest=tiny_cohort, progress=stop_in_second_epoch)
    assert not (tmp_path / "cut/stages/gold/axial/done.json").exists()
    with pytest.raises(OutputError):
        train_run(config, tmp_path / "cut", manifest=tiny_cohort)
    train_run(config, tmp_path / "cut", manifest=tiny_cohort, resume=True)
    for name in ("last.pt", "best.pt"):
        full, cut = _weights(tmp_path / "full/stages/gold/axial" / name), _weights(tmp_path / "cut/stages/gold/axial" / name)
        assert all(torch.equal(full[k], cut[k]) for k in full)
    history = "stages/gold/axial/history.csv"
    assert (tmp_path / "full" / history).read_bytes() == (tmp_path / "cut" / history).read_bytes()
    assert len(pd.read_csv(tmp_path / "full" / history)) == 2


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_result(tiny_cohort, make_config, tmp_path):
    config = make_config(stages=[{"labels": "gold", "folds": 1, "epochs": 4, "scans": "with_gold",
                                  "slices_per_epoch": 128, "learning_rate": 1e-3}])
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "wmhkit", "train", str(config_path), "--manifest", str(tiny_cohort), "--no-progress"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*command, "--out", str(tmp_path / "full")], check=True, env=environment, capture_output=True)
    unit = Path("stages/gold/axial")
    victim = subprocess.Popen([*command, "--out", str(tmp_path / "cut")], env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "cut" / unit / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "cut" / unit / "done.json").exists(), "the run finished before it could be killed"
    subprocess.run([*command, "--out", str(tmp_path / "cut"), "--resume"], check=True, env=environment,
                   capture_output=True)
    full, cut = _weights(tmp_path / "full" / unit / "last.pt"), _weights(tmp_path / "cut" / unit / "last.pt")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    assert (tmp_path / "full" / unit / "history.csv").read_bytes() == (tmp_path / "cut" / unit / "history.csv").read_bytes()
    full_model = torch.load(tmp_path / "full/model/weights/axial.pt", weights_only=True)
    cut_model = torch.load(tmp_path / "cut/model/weights/axial.pt", weights_only=True)
    assert all(torch.equal(full_model[k], cut_model[k]) for k in full_model)


def test_transfer_learning_starts_from_the_imagenet_file_and_keeps_frozen_convs(tiny_cohort, make_config, tmp_path):
    from wmhkit.nn.imagenet import vgg16_conv_channels
    from wmhkit.nn.vgg_unet import CONV_NAMES, TORCHVISION_FEATURE_INDEX

    generator = torch.Generator().manual_seed(0)
    imagenet = {}
    for name, (cin, cout) in zip(CONV_NAMES, vgg16_conv_channels()):
        index = TORCHVISION_FEATURE_INDEX[name]
        imagenet[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=generator) * 0.05
        imagenet[f"features.{index}.bias"] = torch.randn(cout, generator=generator) * 0.01
    torch.save(imagenet, tmp_path / "vgg16-397923af.pth")
    config = make_config(init="imagenet", stages=[
        {"labels": "gold", "scans": "with_gold", "folds": 1, "freeze": 10, "epochs": 1, "batch_size": 16,
         "slices_per_epoch": 32, "val_slices": 32, "learning_rate": 1e-3}])
    (tmp_path / "transfer.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    args = ["train", str(tmp_path / "transfer.yaml"), "--out", str(run), "--manifest", str(tiny_cohort), "--no-progress"]
    assert main(args) == 2  # init imagenet without a weights file: a clear error, no download
    assert main([*args, "--imagenet-weights", str(tmp_path / "vgg16-397923af.pth")]) == 0
    trained = torch.load(run / "model" / "weights" / "axial.pt", weights_only=True)
    # conv3_3 is the 7th conv (frozen, ImageNet values at width 1/16: the leading channels);
    # conv5_3, the 13th, is trained.
    frozen = imagenet[f"features.{TORCHVISION_FEATURE_INDEX['conv3_3']}.weight"][:16, :16]
    assert torch.equal(trained["encoder.conv3_3.0.weight"], frozen)
    free = imagenet[f"features.{TORCHVISION_FEATURE_INDEX['conv5_3']}.weight"][:32, :32]
    assert not torch.equal(trained["encoder.conv5_3.0.weight"], free)


def test_init_model_starts_each_plane_from_the_model_folder_and_keeps_frozen_convs(tiny_cohort, make_config, tmp_path):
    first = make_config(planes=["axial", "coronal"], stages=[
        {"labels": "gold", "scans": "with_gold", "folds": 1, "freeze": 0, "epochs": 1, "batch_size": 16,
         "slices_per_epoch": 32, "val_slices": 32, "learning_rate": 1e-3}])
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(first))
    assert main(["train", str(tmp_path / "first.yaml"), "--out", str(tmp_path / "first"), "--manifest",
                 str(tiny_cohort), "--no-progress"]) == 0
    source = tmp_path / "first" / "model"
    tuned = make_config(planes=["axial", "coronal"], init="model", init_model=str(source), stages=[
        {"labels": "gold", "scans": "with_gold", "folds": 1, "freeze": 10, "epochs": 1, "batch_size": 16,
         "slices_per_epoch": 32, "val_slices": 32, "learning_rate": 1e-3}])
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(tuned))
    assert main(["train", str(tmp_path / "tuned.yaml"), "--out", str(tmp_path / "tuned"), "--manifest",
                 str(tiny_cohort), "--no-progress"]) == 0
    for plane in ("axial", "coronal"):
        before = torch.load(source / "weights" / f"{plane}.pt", weights_only=True)
        after = torch.load(tmp_path / "tuned" / "model" / "weights" / f"{plane}.pt", weights_only=True)
        assert torch.equal(after["encoder.conv3_3.0.weight"], before["encoder.conv3_3.0.weight"])  # frozen
        assert not torch.equal(after["encoder.conv5_3.0.weight"], before["encoder.conv5_3.0.weight"])
    axial = torch.load(source / "weights" / "axial.pt", weights_only=True)
    coronal = torch.load(source / "weights" / "coronal.pt", weights_only=True)
    assert not torch.equal(axial["encoder.conv1_1.0.weight"], coronal["encoder.conv1_1.0.weight"])  # per plane
    with pytest.raises(ConfigError, match="init: model and init_model go together"):
        parse_config({"stages": [{"labels": "gold"}], "init": "model"})
    wider = make_config(init="model", init_model=str(source), network={"width": 0.125})
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(wider))
    assert main(["train", str(tmp_path / "wider.yaml"), "--out", str(tmp_path / "wider"), "--manifest",
                 str(tiny_cohort), "--no-progress"]) == 2  # weights of another width: a clear error
    (source / "weights" / "coronal.pt").write_bytes(b"not a weights file")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(tuned))
    assert main(["train", str(tmp_path / "broken.yaml"), "--out", str(tmp_path / "broken"), "--manifest",
                 str(tiny_cohort), "--no-progress"]) == 2  # a corrupt weights file: a clear error, no traceback


def test_lesion_free_gold_scans_are_tested_and_trained_on_but_never_validate(tmp_path, make_config, write_cohort):
    from wmhkit.io.image import Image
    from wmhkit.io.nifti import load_mask, save_mask
    from wmhkit.train.segmentation import plan_run

    manifest = write_cohort(tmp_path / "prepared", n_gold=10, n_unlabelled=0)
    lesion_free = {"g00", "g01", "g02", "g03"}
    for scan in lesion_free:  # a gold scan of someone without WMH (label 2 voxels only)
        gold = load_mask(tmp_path / "prepared" / scan / "gold.nii.gz", allowed_labels=(0, 1, 2))
        save_mask(Image(np.where(gold.array == 1, 0, gold.array).astype(np.uint8), gold.affine),
                  tmp_path / "prepared" / scan / "gold.nii.gz")
    config = parse_config(make_config(stages=[{"labels": "gold", "folds": 5, "gold_val_fraction": 0.2,
                                               "scans": "with_gold"}]))
    folds = plan_run(config, manifest).splits[0]
    assert sorted(s for fold in folds for s in fold.test) == [f"g{i:02d}" for i in range(10)]
    assert all(len(fold.val) == 2 and not set(fold.val) & lesion_free for fold in folds)
    assert set().union(*(fold.train for fold in folds)) >= lesion_free
