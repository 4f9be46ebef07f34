"""train-volume: config validation, splits, a learnable toy problem, exact resume, every label kind end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from wmhkit.cli import main
from wmhkit.errors import ManifestError, OutputError
from wmhkit.io.image import Image
from wmhkit.io.manifest import write_manifest
from wmhkit.io.nifti import save_image, save_mask
from wmhkit.models.box import BoxScan, decode_volume, encode_volume
from wmhkit.models.folder import read_model_spec
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest
from wmhkit.train import loop as training_loop
from wmhkit.train import volume as volume_trainer
from wmhkit.train.checkpoint import CheckpointError, config_hash
from wmhkit.train.config import ConfigError, resolve_config_path
from wmhkit.train.volume import Targets, assign_splits, train_seed, train_volume
from wmhkit.train.volume_config import load_volume_config, parse_volume_config

TINY = {"box": {"shape": [8, 8, 4], "spacing_mm": None}, "network": {"base_channels": 2},
        "epochs": 1, "device": "cpu", "threads": 1, "split": {"stratify": None}}
SHAPE = (20, 20, 10)


def _config(**overrides: object) -> object:
    return parse_volume_config({**TINY, **overrides})


@pytest.fixture(scope="module")
def prepared_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine prepared scans: an ellipsoid brain with one bright blob whose size sets volume_ml and fazekas."""
    root = tmp_path_factory.mktemp("volume_cohort")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0).astype(float)
    brain = (((grid - (9.5, 9.5, 4.5)) / (8.0, 8.0, 4.0)) ** 2).sum(-1) <= 1
    rng = np.random.default_rng(0)
    rows = []
    for index in range(9):
        radius = 0.8 + 0.35 * index
        lesion = (np.linalg.norm(grid - (11.0, 9.0, 5.0), axis=-1) <= radius) & brain
        flair = np.where(brain, 100.0 + 5.0 * rng.standard_normal(SHAPE) + 80.0 * lesion, 0.0).astype(np.float32)
        scan = f"s{index}"
        save_image(Image(flair, affine), root / f"{scan}_flair.nii.gz")
        save_mask(Image(brain.astype(np.uint8), affine), root / f"{scan}_brain.nii.gz")
        save_mask(Image(lesion.astype(np.uint8), affine), root / f"{scan}_gold.nii.gz")
        rows.append({"subject": scan, "scanner": "ABC"[index % 3], "flair": f"{scan}_flair.nii.gz",
                     "brain_mask": f"{scan}_brain.nii.gz", "gold": f"{scan}_gold.nii.gz",
                     "volume_ml": f"{lesion.sum() * 0.008:.4f}", "fazekas": str(min(index // 2, 3))})
    manifest = write_manifest(pd.DataFrame(rows), root / "manifest.tsv")
    return prepare_manifest(manifest, root / "prepared", options=PrepareOptions(n4=False, qc_png=False)).manifest


def test_shipped_configs_parse() -> None:
    for name in ("volume", "fazekas", "strong"):  # the paper's settings, for a GPU
        config = load_volume_config(resolve_config_path(name))
        assert config.batch_size == 4 and config.optimizer.name == "adadelta" and config.box.percentiles == (1.0, 99.0)
        assert config.box.shape == (112, 128, 32)
    for name in ("volume-cpu", "fazekas-cpu", "strong-cpu"):  # measured CPU settings (see the configs' comments)
        config = load_volume_config(resolve_config_path(name))
        assert config.optimizer.name == "adam" and config.box.percentiles is None and config.box.shape == (48, 64, 24)
    for name in ("volume", "volume-cpu", "fazekas", "fazekas-cpu", "strong", "strong-cpu"):
        config = load_volume_config(resolve_config_path(name))
        assert config.kind == ("segmentation-3d" if name.startswith("strong") else "volume")
    weak = load_volume_config(resolve_config_path("volume-cpu"))
    assert weak.network_spec()["pool_scale"] == pytest.approx(3.4 * 3.2 * 6.0 / 1000.0)
    assert weak.target_transform == "none"
    assert weak.standardise_target and weak.readout == "least_squares"  # the defaults (issue 19)
    for name in ("volume", "volume-cpu", "fazekas", "fazekas-cpu"):  # weak labels: normalised pooled features
        assert load_volume_config(resolve_config_path(name)).network_spec()["pooled_norm"] is True
    assert "pooled_norm" not in load_volume_config(resolve_config_path("strong-cpu")).network_spec()
    assert parse_volume_config({"batch_size": 1, "network": {"pooled_norm": "none"}}).batch_size == 1


@pytest.mark.parametrize("raw, key", [
    ({"box": {"shape": [8, 8]}}, "box.shape"),
    ({"box": {"shape": [8, 8, 6]}}, "box.shape"),
    ({"box": {"spacing_mm": [1, 0, 1]}}, "box.spacing_mm"),
    ({"optimizer": {"momentum": 0.9}}, "optimizer.momentum"),
    ({"optimizer": {"name": "lbfgs"}}, "optimizer.name"),
    ({"labels": "fazekas", "task": "regression"}, "task"),
    ({"split": {"train": 0.9}}, "split"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"epoch": 3}, "epoch"),
    ({"augmentation": {"translation": 0.9}}, "augmentation.translation"),
    ({"box": {"percentiles": [99, 1]}}, "box.percentiles"),
    ({"box": {"spacing_mm": None}, "network": {"pooling": "volume"}}, "network.pooling"),
    ({"network": {"pooling": "max"}}, "network.pooling"),
    ({"target_transform": "sqrt"}, "target_transform"),
    ({"network": {"pooled_norm": "layer"}}, "network.pooled_norm"),
    ({"batch_size": 1}, "batch_size"),
    ({"readout": "sgd"}, "readout"),
    ({"standardise_target": "yes"}, "standardise_target"),
])
def test_config_errors_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_volume_config(raw, source="cfg.yaml")
    assert str(error.value).startswith(f"cfg.yaml: {key}:")


def test_splits_are_60_20_20_per_stratum_and_reproducible() -> None:
    table = pd.DataFrame({"scan_id": [f"s{i:02d}" for i in range(20)], "scanner": ["A", "B"] * 10})
    config = parse_volume_config({**TINY, "split": {"seed": 4, "stratify": "scanner"}})
    splits = assign_splits(table, config)
    assert splits == assign_splits(table.iloc[::-1].reset_index(drop=True), config)
    for scanner in "AB":
        roles = [splits[s] for s, sc in zip(table["scan_id"], table["scanner"]) if sc == scanner]
        assert (roles.count("train"), roles.count("val"), roles.count("test")) == (6, 2, 2)
    manual = table.assign(split=["train"] * 12 + ["val"] * 4 + ["test"] * 4)
    assert list(assign_splits(manual, config).values()) == list(manual["split"])


def _toy_boxes(n: int = 12) -> tuple[dict[str, BoxScan], Targets]:
    """Volume = number of bright voxels (x 0.1 mL) scattered in a dark 8x8x4 box."""
    rng = np.random.default_rng(1)
    boxes, values = {}, {}
    for k in range(n):
        flair = np.zeros((8, 8, 4), np.float32)
        flair.ravel()[rng.choice(flair.size, 3 * k, replace=False)] = 1.0
        boxes[f"t{k:02d}"] = BoxScan(flair, np.ones((8, 8, 4), bool), np.eye(4))
        values[f"t{k:02d}"] = 0.3 * k
    return boxes, Targets(values)


def _toy_run(folder: Path, epochs: int, **overrides: object) -> tuple[torch.nn.Module, int, float]:
    settings = {"network": {"base_channels": 4}, "augmentation": {"translation": 0.05, "flip": True}, **overrides}
    config = _config(epochs=epochs, **settings)
    boxes, targets = _toy_boxes()
    splits = {s: ("val" if i % 4 == 0 else "train") for i, s in enumerate(sorted(boxes))}
    return train_seed(config, 0, boxes, targets, splits, folder, resume=True, device=torch.device("cpu"),
                      digest=config_hash(config.identity()))


def test_volume_targets_are_log1p_encoded_and_decoded_back_to_ml() -> None:
    volumes = np.array([0.0, 0.5, 2.0, 25.0])
    assert np.allclose(encode_volume(volumes, "log1p"), [0.0, np.log(1.5), np.log(3.0), np.log(26.0)])
    assert np.allclose(decode_volume(encode_volume(volumes, "log1p"), "log1p"), volumes)
    assert np.array_equal(encode_volume(volumes, "none"), volumes)
    assert decode_volume(-0.5, "log1p") == 0.0 and decode_volume(-0.5, "none") == 0.0  # never a negative volume
    with pytest.raises(ValueError, match="target transform"):
        encode_volume(volumes, "sqrt")


def test_volume_pooled_regression_starts_at_the_mean_target_with_zero_weights(
    prepared_manifest: Path, tmp_path: Path
) -> None:
    config = _config(epochs=1, optimizer={"name": "sgd", "learning_rate": 1e-12}, readout="adam",
                     box={"shape": [8, 8, 4], "spacing_mm": [5.0, 5.0, 7.5]},
                     network={"base_channels": 2, "pooling": "volume"})
    result = train_volume(config, tmp_path / "run", manifest=prepared_manifest)
    table = pd.read_csv(prepared_manifest, sep="\t")
    train_ids = [s for s, role in result.splits.items() if role == "train"]
    train_ml = table.set_index(table["subject"])["volume_ml"].loc[train_ids]
    spec = read_model_spec(result.seeds[0].model_dir)
    assert spec.record["target"]["transform"] == "log1p"
    state = torch.load(result.seeds[0].model_dir / "weights" / "model.pt", weights_only=True)
    assert float(state["dense.bias"][0]) == pytest.approx(float(np.log1p(train_ml).mean()), abs=1e-5)
    assert float(state["dense.weight"].abs().max()) < 1e-9  # volume pooling: dense weights start at 0 (lr 1e-12)
    assert spec.network["pool_scale"] == pytest.approx(5.0 * 5.0 * 7.5 / 1000.0)


def test_voxel_loss_dice_bce_adds_the_cross_entropy_to_the_dice() -> None:
    logits = torch.tensor([[[[[2.0, -1.0], [0.5, -3.0]]]]])
    target = torch.tensor([[[[[1.0, 0.0], [0.5, 0.0]]]]])
    dice = volume_trainer.VolumeLoss(_config(labels="gold"))(logits, target)
    both = volume_trainer.VolumeLoss(_config(labels="gold", voxel_loss="dice_bce"))(logits, target)
    probability = torch.sigmoid(logits)
    soft_dice = 2 * (probability * target).sum() / (probability.sum() + target.sum())
    assert float(dice) == pytest.approx(1.0 - float(soft_dice), abs=1e-4)
    bce = -(target * torch.log(probability) + (1 - target) * torch.log(1 - probability)).mean()
    assert float(both) == pytest.approx(float(dice) + float(bce), abs=1e-5)


def test_mse_decreases_on_a_learnable_toy_problem(tmp_path: Path) -> None:
    _toy_run(tmp_path, epochs=16, optimizer={"name": "adam", "learning_rate": 0.003}, batch_size=3,
             target_transform="none",
             augmentation={"translation": 0.0, "rotation_deg": 0.0, "flip": False})
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == list(range(1, 17))
    assert history["train_loss"].iloc[-3:].mean() < 0.6 * history["train_loss"].iloc[0]
    assert history["val_loss"].min() < history["val_loss"].iloc[0]


def _brains_with_bright_voxels(n: int = 24) -> tuple[dict[str, BoxScan], Targets]:
    """Brains of varying size (a large component common to every scan) with 0–39 bright voxels (0.1 mL each)."""
    rng = np.random.default_rng(1)
    shape = (16, 16, 8)
    grid = np.indices(shape).transpose(1, 2, 3, 0).astype(float)
    boxes, values = {}, {}
    for k in range(n):
        brain = (((grid - (7.5, 7.5, 3.5)) / (np.array([6.0, 6.0, 3.0]) * rng.uniform(0.75, 1.05))) ** 2).sum(-1) <= 1
        flair = np.where(brain, 0.6 + 0.05 * rng.standard_normal(shape), 0.0).astype(np.float32)
        count = int(rng.integers(0, 40))
        flair.ravel()[rng.choice(np.flatnonzero(brain), count, replace=False)] = 1.0
        boxes[f"b{k:02d}"] = BoxScan(flair, brain, np.eye(4))
        values[f"b{k:02d}"] = 0.1 * count
    return boxes, Targets(values)


def _train_on_brains(config: object, folder: Path, n: int, every: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """Train one seed on :func:`_brains_with_bright_voxels` (every ``every``-th scan validates); its training inputs and targets."""
    boxes, targets = _brains_with_bright_voxels(n)
    splits = {s: ("val" if i % every == 0 else "train") for i, s in enumerate(sorted(boxes))}
    model, _, _ = train_seed(config, 0, boxes, targets, splits, folder, resume=True, device=torch.device("cpu"),
                             digest=config_hash(config.identity()))
    train_ids = sorted(s for s, role in splits.items() if role == "train")
    inputs, truth = volume_trainer.make_batch(boxes, targets, train_ids, config, None, torch.device("cpu"))
    return model, inputs, truth


@pytest.mark.parametrize("pooling", ["mean", "volume"])
def test_weak_volume_model_learns_with_normalised_pooled_features(tmp_path: Path, pooling: str) -> None:
    # without pooled_norm this network predicts nearly one volume for every scan after 15 epochs
    # (output SD 0.01-0.03 mL against a target SD of 1.26 mL, training r ~0.5): the collapse seen on phantoms
    config = _config(box={"shape": [16, 16, 8], "spacing_mm": [2.0, 2.0, 2.0]},
                     network={"base_channels": 4, "pooling": pooling, "pooled_norm": "batch"},
                     epochs=15, batch_size=4, target_transform="none", optimizer={"name": "adam", "learning_rate": 1e-3},
                     augmentation={"translation": 0.0, "rotation_deg": 0.0, "flip": False})
    model, inputs, truth = _train_on_brains(config, tmp_path, n=24, every=6)
    with torch.no_grad():
        predicted = model(inputs)[:, 0].numpy()
    assert np.corrcoef(predicted, truth.numpy())[0, 1] > 0.9
    # the least-squares read-out: with readout: adam the fit was a line of slope 0.26 (r 0.99) through the mean
    assert np.polyfit(truth.numpy(), predicted, 1)[0] > 0.6


def test_weak_volume_fit_does_not_depend_on_the_unit_of_the_volumes(tmp_path: Path) -> None:
    # Adam moves each dense weight by ~lr per step and the normalised pooled features have unit variance, so
    # with the dense weights in mL the outputs can spread by only ~lr mL per step (the shrinkage towards the
    # training mean seen on phantoms). Here, with standardise_target: false and readout: adam, the slope in
    # units of 10 µL came out 0.002 (0.21 in mL).
    config = _config(box={"shape": [16, 16, 8], "spacing_mm": [2.0, 2.0, 2.0]},
                     network={"base_channels": 4, "pooling": "volume", "pooled_norm": "batch"},
                     epochs=6, batch_size=4, target_transform="none", optimizer={"name": "adam", "learning_rate": 1e-2},
                     augmentation={"translation": 0.0, "rotation_deg": 0.0, "flip": False})
    assert config.standardise_target  # the default
    boxes, targets = _brains_with_bright_voxels(12)
    splits = {s: ("val" if i % 4 == 0 else "train") for i, s in enumerate(sorted(boxes))}
    train_ids = sorted(s for s, role in splits.items() if role == "train")
    slopes = []
    for unit in (1.0, 100.0):  # the same volumes in mL and in units of 10 µL
        scaled = Targets({s: unit * v for s, v in targets.values.items()})
        model, _, _ = train_seed(config, 0, boxes, scaled, splits, tmp_path / f"unit{unit:g}", resume=True,
                                 device=torch.device("cpu"), digest=config_hash(config.identity()))
        inputs, truth = volume_trainer.make_batch(boxes, scaled, train_ids, config, None, torch.device("cpu"))
        with torch.no_grad():
            predicted = model(inputs)[:, 0].numpy()
        slopes.append(float(np.polyfit(truth.numpy(), predicted, 1)[0]))
    assert slopes[0] > 0.1 and slopes[1] > 0.5 * slopes[0]


def test_exported_batch_norm_holds_the_pooled_statistics_of_the_training_scans(tmp_path: Path) -> None:
    config = _config(box={"shape": [16, 16, 8], "spacing_mm": None}, network={"base_channels": 4}, epochs=2,
                     batch_size=4, augmentation={"translation": 0.0, "rotation_deg": 0.0, "flip": False})
    model, inputs, _ = _train_on_brains(config, tmp_path, n=12, every=4)
    with torch.no_grad():
        pooled = model.pool(model.features(inputs))
    # not the lagging running averages of the training batches: the statistics of the final weights
    torch.testing.assert_close(model.pooled_norm.running_mean, pooled.mean(dim=0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.pooled_norm.running_var, pooled.var(dim=0), rtol=1e-4, atol=1e-8)


def test_training_batches_never_leave_one_scan_alone() -> None:
    assert [len(b) for b in volume_trainer.training_batches(np.arange(9), 4)] == [4, 5]
    assert [len(b) for b in volume_trainer.training_batches(np.arange(8), 4)] == [4, 4]
    assert [len(b) for b in volume_trainer.training_batches(np.arange(1), 4)] == [1]


def test_killed_run_resumes_bit_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, _, _ = _toy_run(tmp_path / "straight", epochs=4)
    real_write = training_loop.write_history

    def crash_in_epoch_three(path: Path, rows: list[dict[str, object]]) -> Path:
        if len(rows) == 3:
            raise KeyboardInterrupt("killed")
        return real_write(path, rows)

    monkeypatch.setattr(training_loop, "write_history", crash_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        _toy_run(tmp_path / "killed", epochs=4)
    monkeypatch.setattr(training_loop, "write_history", real_write)
    resumed, epochs, _ = _toy_run(tmp_path / "killed", epochs=4)
    assert epochs == 4
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    straight = pd.read_csv(tmp_path / "straight" / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "history.csv").drop(columns="seconds"), straight)


def test_training_runs_channels_last_with_the_default_layout_s_gradients(tmp_path: Path) -> None:
    boxes, targets = _toy_boxes()
    # pooled_norm none: the layout is the trunk's business, and batch statistics of 3 scans magnify float rounding
    config = _config(network={"base_channels": 4, "pooled_norm": "none"},
                     augmentation={"translation": 0.0, "rotation_deg": 0.0, "flip": False})
    ids = sorted(boxes)[:3]
    inputs, target = volume_trainer.make_batch(boxes, targets, ids, config, None, torch.device("cpu"))
    gradients = []
    for layout in (torch.contiguous_format, volume_trainer.TRAINING_LAYOUT):
        model = volume_trainer.build_model(config, 0).to(memory_format=layout)
        volume_trainer.VolumeLoss(config)(model(inputs.contiguous(memory_format=layout)), target).backward()
        gradients.append([p.grad.clone() for p in model.parameters()])
    for default, channels_last in zip(*gradients):
        assert torch.allclose(default, channels_last, rtol=1e-4, atol=1e-6)
    trained, _, _ = _toy_run(tmp_path, epochs=1)
    assert all(p.is_contiguous() for p in trained.parameters())  # exported weights in the default layout


@pytest.mark.parametrize("labels, kind, outputs", [
    ("volume", "volume", 1), ("fazekas", "volume", 1), ("volume_bins", "volume", 1), ("gold", "segmentation-3d", 1),
])
def test_every_label_kind_trains_and_exports_a_model_folder(
    prepared_manifest: Path, tmp_path: Path, labels: str, kind: str, outputs: int
) -> None:
    config = _config(labels=labels, n_bins=3)
    result = train_volume(config, tmp_path / "run", manifest=prepared_manifest)
    assert sorted(set(result.splits.values())) == ["test", "train", "val"]
    assert list(result.splits.values()).count("train") == 5  # 60 % of 9 scans (largest remainder)
    spec = read_model_spec(result.seeds[0].model_dir)
    assert spec.kind == kind and spec.network["name"] == "gp_unet"
    assert spec.record["target"]["labels"] == labels
    assert spec.prepare.n4 is False  # the prepare options of the training scans travel with the model
    if labels == "fazekas":
        assert spec.network["ordinal_levels"] == 4
    if labels == "volume_bins":
        edges = spec.record["target"]["bin_edges_ml"]
        assert len(edges) == 2 and edges == sorted(edges)
        assert len(spec.record["target"]["bin_volumes_ml"]) == 3


def test_fazekas_above_three_is_refused(prepared_manifest: Path, tmp_path: Path) -> None:
    table = pd.read_csv(prepared_manifest, sep="\t", dtype=str, keep_default_na=False)
    table.loc[0, "fazekas"] = "5"
    edited = prepared_manifest.with_name("manifest_f5.tsv")
    table.to_csv(edited, sep="\t", index=False)
    with pytest.raises(ManifestError, match="grades 0-3"):
        train_volume(_config(labels="fazekas"), tmp_path / "run", manifest=edited)


def test_existing_run_needs_resume(prepared_manifest: Path, tmp_path: Path) -> None:
    train_volume(_config(), tmp_path / "run", manifest=prepared_manifest)
    with pytest.raises(OutputError, match="--resume"):
        train_volume(_config(), tmp_path / "run", manifest=prepared_manifest)
    train_volume(_config(), tmp_path / "run", manifest=prepared_manifest, resume=True)  # finished: re-export only


def test_resume_on_another_manifest_is_refused(prepared_manifest: Path, tmp_path: Path) -> None:
    """The run identity holds the manifest's content, as a segmentation run's does (one run-folder rule)."""
    train_volume(_config(), tmp_path / "run", manifest=prepared_manifest)
    table = pd.read_csv(prepared_manifest, sep="\t", dtype=str, keep_default_na=False)
    table.loc[0, "volume_ml"] = str(float(table.loc[0, "volume_ml"]) + 1.0)
    edited = prepared_manifest.with_name("manifest_edited.tsv")
    table.to_csv(edited, sep="\t", index=False)
    with pytest.raises(CheckpointError, match="another config, manifest or device"):
        train_volume(_config(), tmp_path / "run", manifest=edited, resume=True)
    with pytest.raises(CheckpointError):
        train_volume(_config(epochs=2), tmp_path / "run", manifest=prepared_manifest, resume=True)


def test_cli_trains_and_writes_the_evaluation_tables(prepared_manifest: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({**TINY, "split": {"train": 0.2, "val": 0.1, "test": 0.7,
                                                             "stratify": None}}))
    code = main(["train-volume", str(config_path), "--manifest", str(prepared_manifest), "--out", str(tmp_path / "run")])
    assert code == 0
    agreement = pd.read_csv(tmp_path / "run" / "evaluation" / "agreement.csv")
    assert list(agreement["set"]) == ["test"] and int(agreement["n"].iloc[0]) == 6  # 70 % of 9 scans
    assert {"icc", "icc_ci_low", "icc_ci_high", "pearson_r", "bias", "loa_low", "loa_high", "dice_mean"} <= set(
        agreement.columns)
    predictions = pd.read_csv(tmp_path / "run" / "evaluation" / "predictions.csv")
    assert len(predictions) == 6 and predictions["vent_ml"].notna().all()
    confounders = pd.read_csv(tmp_path / "run" / "evaluation" / "confounders.csv")
    assert set(confounders["fit"]) == {"predicted", "predicted+covariates"}
    assert set(confounders["term"]) == {"intercept", "predicted_volume_ml", "vent_ml", "wm_ml", "csf_ml"}


def test_mixed_volume_and_fazekas_evaluation_scores_each_model_on_its_own_columns(
        prepared_manifest: Path, tmp_path: Path) -> None:
    """Listed last, the Fazekas model used to make the volume model be scored on grades it never predicts."""
    from wmhkit.infer.volume import evaluate_volume_models

    folders = {labels: train_volume(_config(labels=labels), tmp_path / labels, manifest=prepared_manifest)
               .seeds[0].model_dir for labels in ("volume", "fazekas")}
    table = pd.read_csv(prepared_manifest, sep="\t", dtype=str, keep_default_na=False)
    scan_ids = list(table["subject"])
    evaluate_volume_models(folders, prepared_manifest, tmp_path / "evaluation", {"all": scan_ids})
    agreement = pd.read_csv(tmp_path / "evaluation" / "agreement.csv").set_index("model")
    assert agreement.loc["volume", ["reference", "predicted"]].tolist() == ["volume_ml", "predicted_volume_ml"]
    assert agreement.loc["fazekas", ["reference", "predicted"]].tolist() == ["fazekas", "predicted_grade"]
    assert (agreement["n"] == 9).all()
