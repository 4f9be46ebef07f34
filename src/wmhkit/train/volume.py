"""``train-volume``: the GP-Unet trained on one number per scan, and its strong-label twin.

A run (:func:`train_volume`) reads a *prepared* manifest (``wmhkit prepare``),
keeps the scans with a label (``volume_ml``, ``fazekas`` or ``gold``, per the
config's ``labels``), splits them 60/20/20 (or by the manifest's ``split``
column), puts every scan into the fixed input box once
(:mod:`wmhkit.models.box`), and trains one network per seed::

    RUN/run.json                  run identity (config, manifest sha256, device type; :mod:`wmhkit.train.run_folder`)
    RUN/config.yaml               the resolved config
    RUN/splits.tsv                scan → train / val / test
    RUN/seed-<s>/last.pt, ...     the training loop's folder (:mod:`wmhkit.train.loop`; best: validation loss)
    RUN/seed-<s>/model/           model folder (model.yaml, weights/model.pt, provenance.json)

Losses: ``volume`` → MSE on the encoded volume (``target_transform``:
``log1p(mL)`` by default, or mL; :func:`~wmhkit.models.box.encode_volume`),
with the dense weights in units of the training targets' SD (``standardise_target``,
:func:`target_scale`); ``fazekas`` / ``volume_bins`` → cross-entropy
(classification) or summed binary cross-entropy of the cumulative logits
(ordinal); ``gold`` (the strong twin: the same network with a voxel-wise
sigmoid head) → batch soft Dice on the box lesion fraction (MONAI ``DiceLoss``),
plus the voxel-wise binary cross-entropy with ``voxel_loss: dice_bce``.
With ``network.pooled_norm: batch`` the pooled features are batch-normalised
(:mod:`wmhkit.nn.gp_unet`): a batch never holds a single scan
(:func:`training_batches`), and after every epoch the norm's statistics are
recomputed over the training scans (:func:`refresh_readout`). With
``readout: least_squares`` (volume regression) the dense layer of the best
checkpoint is finally set to the ridge fit of the encoded training volumes on
its pooled features before export.
Batches are drawn, and augmented, from generators of ``(seed, epoch)`` only, so ``resume=True``
continues exactly (:mod:`wmhkit.train.loop`); a finished seed is not retrained.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from monai.losses import DiceLoss
from torch.nn import functional as F

from wmhkit.errors import InputError, ManifestError
from wmhkit.io.manifest import Manifest, read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.io.provenance import sha256_file
from wmhkit.models.box import BoxScan, box_scan, decode_volume, encode_volume
from wmhkit.models.folder import SINGLE_WEIGHTS
from wmhkit.models.networks import build_network
from wmhkit.models.predict_gp_unet import predicted_class
from wmhkit.nn.gp_unet import GPUNet
from wmhkit.train import distributed
from wmhkit.train.checkpoint import BEST_NAME, load_checkpoint
from wmhkit.train.data import augment_box
from wmhkit.train.export import prepare_parameters, write_trained_model
from wmhkit.train.loop import Batches, LoopSettings, train_epochs
from wmhkit.train.reproducibility import epoch_generator, seed_everything
from wmhkit.train.run_folder import run_identity, start_run_folder
from wmhkit.train.volume_config import FAZEKAS_GRADES, VolumeConfig

log = logging.getLogger(__name__)

SPLIT_ROLES = ("train", "val", "test")
SPLITS_TSV = "splits.tsv"
MODEL_DIR = "model"
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1
#: Memory layout of the network and its inputs during training (see :func:`train_seed`).
TRAINING_LAYOUT = torch.channels_last_3d


@dataclass(frozen=True)
class Targets:
    """Training targets of the selected scans.

    Attributes
    ----------
    values
        scan → target: volume (mL), class index, or 0.0 for ``gold`` (voxel targets live in the boxes).
    bin_edges_ml
        Inner edges of the ``volume_bins`` classes (training quantiles); empty otherwise.
    bin_volumes_ml
        Median training volume of each ``volume_bins`` class (the volume a class stands for).
    """

    values: dict[str, float]
    bin_edges_ml: tuple[float, ...] = ()
    bin_volumes_ml: tuple[float, ...] = ()


@dataclass(frozen=True)
class SeedResult:
    """One trained seed: its folder, model folder, epochs run and best validation loss."""

    seed: int
    folder: Path
    model_dir: Path
    epochs: int
    best_val_loss: float


@dataclass(frozen=True)
class VolumeRunResult:
    """Outcome of :func:`train_volume`: run folder, manifest, scan → role, trained seeds, config name."""

    out_dir: Path
    manifest: Path
    splits: dict[str, str]
    seeds: list[SeedResult]
    name: str

    @property
    def models(self) -> dict[str, Path]:
        """``<name>/seed-<s>`` → that seed's model folder (the names of the evaluation tables)."""
        return {f"{self.name}/seed-{seed.seed}": seed.model_dir for seed in self.seeds}


def select_scans(manifest: Manifest, config: VolumeConfig) -> pd.DataFrame:
    """Rows usable for this config: in the chosen scanners, with the label column filled.

    Returns
    -------
    pandas.DataFrame
        The manifest rows plus a ``scan_id`` column, in manifest order.

    Raises
    ------
    ManifestError
        When the label column is missing, a Fazekas grade is above 3 for the
        ``fazekas`` variant, or fewer than 3 scans remain.
    """
    column = {"volume": "volume_ml", "volume_bins": "volume_ml", "fazekas": "fazekas", "gold": "gold"}[config.labels]
    table = manifest.table.copy()
    if column not in table.columns:
        raise ManifestError(manifest.source, f"labels {config.labels!r} need a {column!r} column",
                            f"add {column} to the manifest or choose other labels")
    table["scan_id"] = [manifest.scan_id(row) for row in manifest.rows()]
    if config.scanners:
        if "scanner" not in table.columns:
            raise ManifestError(manifest.source, "config names scanners but the manifest has no scanner column",
                                "add the column or set scanners: []")
        table = table[table["scanner"].isin(config.scanners)]
    table = table[table[column] != ""]
    if config.labels == "fazekas":
        too_high = table[pd.to_numeric(table["fazekas"]) >= FAZEKAS_GRADES]
        if len(too_high):
            raise ManifestError(
                manifest.source, f"scan {too_high['scan_id'].iloc[0]!r} has fazekas {too_high['fazekas'].iloc[0]}, "
                f"but the severity variant learns grades 0-{FAZEKAS_GRADES - 1}",
                "write the overall grade max(periventricular, deep) in the fazekas column")
    if len(table) < 3:
        raise ManifestError(manifest.source, f"only {len(table)} scan(s) have {column!r}"
                            + (f" on scanners {list(config.scanners)}" if config.scanners else ""),
                            "label at least 3 scans (60/20/20 split needs more)")
    return table.reset_index(drop=True)


def assign_splits(table: pd.DataFrame, config: VolumeConfig) -> dict[str, str]:
    """scan → ``train`` / ``val`` / ``test``.

    The manifest's ``split`` column is used when ``split.use_manifest_split`` and
    every selected scan has one of those values there; otherwise each stratum
    (``split.stratify`` column, e.g. scanner) is shuffled with ``split.seed`` and
    cut by the fractions (largest-remainder rounding), so every scanner appears in
    every set in proportion.

    Raises
    ------
    ManifestError
        When the training or validation set comes out empty.
    """
    ids = list(table["scan_id"])
    if config.split.use_manifest_split and "split" in table.columns and set(table["split"]) <= set(SPLIT_ROLES):
        roles = dict(zip(ids, table["split"]))
    else:
        strata = table[config.split.stratify] if config.split.stratify in table.columns else pd.Series([""] * len(ids))
        rng = np.random.default_rng([config.split.seed, 9])
        roles = {}
        fractions = np.array([config.split.train, config.split.val, config.split.test])
        for stratum in sorted(set(strata)):
            members = sorted(i for i, s in zip(ids, strata) if s == stratum)
            members = [members[k] for k in rng.permutation(len(members))]
            counts = _largest_remainder(fractions * len(members))
            start = 0
            for role, count in zip(SPLIT_ROLES, counts):
                roles.update({scan: role for scan in members[start:start + count]})
                start += count
    for role in ("train", "val"):
        if role not in roles.values():
            raise ManifestError(None, f"the {role} set is empty ({len(ids)} labelled scans)",
                                "label more scans or change the split fractions")
    return {scan: roles[scan] for scan in ids}


def _largest_remainder(quotas: np.ndarray) -> list[int]:
    counts = np.floor(quotas).astype(int)
    remainder = int(round(quotas.sum())) - counts.sum()
    for index in np.argsort(-(quotas - counts), kind="stable")[:remainder]:
        counts[index] += 1
    return counts.tolist()


def make_targets(table: pd.DataFrame, splits: Mapping[str, str], config: VolumeConfig) -> Targets:
    """Targets per scan; ``volume_bins`` edges and class volumes come from the training scans only."""
    ids = list(table["scan_id"])
    if config.labels == "gold":
        return Targets({scan: 0.0 for scan in ids})
    if config.labels == "fazekas":
        return Targets({scan: float(int(float(v))) for scan, v in zip(ids, table["fazekas"])})
    volumes = dict(zip(ids, pd.to_numeric(table["volume_ml"]).astype(float)))
    if config.labels == "volume":
        return Targets(volumes)
    train_volumes = np.array([volumes[s] for s in ids if splits[s] == "train"])
    edges = np.quantile(train_volumes, np.arange(1, config.n_bins) / config.n_bins)
    classes = {scan: float(np.searchsorted(edges, v, side="right")) for scan, v in volumes.items()}
    bin_volumes = []
    for k in range(config.n_bins):
        members = [volumes[s] for s in ids if splits[s] == "train" and classes[s] == k]
        bin_volumes.append(float(np.median(members)) if members else float("nan"))
    if any(math.isnan(v) for v in bin_volumes):
        raise ManifestError(None, f"some of the {config.n_bins} volume bins have no training scan (tied volumes)",
                            "lower n_bins or label more scans")
    return Targets(classes, tuple(float(e) for e in edges), tuple(bin_volumes))


def load_boxes(manifest: Manifest, table: pd.DataFrame, config: VolumeConfig) -> dict[str, BoxScan]:
    """Every selected scan in its box (gold fractions too when the manifest has gold)."""
    boxes = {}
    for row in table.to_dict(orient="records"):
        flair_path = manifest.path(row, "flair")
        mask_path = manifest.path(row, "brain_mask")
        if mask_path is None:
            raise ManifestError(manifest.source, f"scan {row['scan_id']!r} has no brain_mask",
                                "train on the manifest written by `wmhkit prepare`")
        gold_path = manifest.path(row, "gold") if "gold" in row else None
        gold = load_mask(gold_path, allowed_labels=(0, 1, 2)) if gold_path is not None else None
        boxes[row["scan_id"]] = box_scan(load_image(flair_path), load_mask(mask_path), config.box, gold)
    return boxes


def build_model(config: VolumeConfig, seed: int, output_scale: float | None = None) -> GPUNet:
    """The seeded initial network of ``config`` (same seed → same weights for weak and strong heads).

    ``output_scale``: the dense weights' unit (:func:`target_scale`), or None.
    """
    seed_everything(seed)
    spec = config.network_spec()
    if output_scale is not None:
        spec["output_scale"] = output_scale
    return build_network(spec)


def target_scale(config: VolumeConfig, targets: Targets, train_ids: list[str]) -> float | None:
    """SD of the encoded training volumes, the unit of a volume regression's dense weights; None otherwise.

    None unless ``labels: volume`` with ``standardise_target``, or when every
    training target is the same. Why the unit matters: :mod:`wmhkit.nn.gp_unet`.
    """
    if config.labels != "volume" or not config.standardise_target:
        return None
    spread = float(np.std(encode_volume([targets.values[s] for s in train_ids], config.target_transform)))
    return spread if spread > 0 else None


def make_optimizer(config: VolumeConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adadelta (the paper), Adam or SGD with the config's learning rate and weight decay."""
    settings = config.optimizer
    optimizers = {"adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    return optimizers[settings.name](model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)


class VolumeLoss:
    """The loss of a config's labels and task (see the module docstring)."""

    def __init__(self, config: VolumeConfig) -> None:
        self.labels, self.task, self.voxel_loss = config.labels, config.task, config.voxel_loss
        self.n_classes = config.n_classes
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.labels == "gold":
            dice = self.dice(output, target)
            return dice + F.binary_cross_entropy_with_logits(output, target) if self.voxel_loss == "dice_bce" else dice
        if self.task == "regression":
            return F.mse_loss(output[:, 0], target)
        if self.task == "classification":
            return F.cross_entropy(output, target.long())
        levels = torch.arange(self.n_classes - 1, device=target.device, dtype=target.dtype)
        return F.binary_cross_entropy_with_logits(output, (target[:, None] > levels).to(output.dtype))


def initialise_output_layer(model: GPUNet, config: VolumeConfig, targets: Targets, train_ids: list[str]) -> None:
    """Start a volume regression at the mean training target, the voxel head at probability 1/2.

    Volume: bias the mean (encoded) training target; with volume (sum) pooling
    or normalised pooled features also dense weights 0, so the first output is
    the mean for every scan (with random weights a sum-pooled output starts
    hundreds of mL off) and the first gradients of the dense weights are the
    covariances of the pooled features with the residuals. Strong twin:
    bias 0, the usual start for a soft Dice loss; at the lesion prior (about
    1e-4 of a whole-brain box) the sigmoid's slope, and with it every Dice
    gradient, would be about 1e-4.
    """
    with torch.no_grad():
        if config.labels == "volume":
            encoded = encode_volume([targets.values[s] for s in train_ids], config.target_transform)
            if model.pool_scale is not None or model.pooled_norm is not None:
                model.dense.weight.zero_()
            model.dense.bias.fill_(float(np.mean(encoded)))
        elif config.labels == "gold":
            model.dense.bias.zero_()


def make_batch(boxes: Mapping[str, BoxScan], targets: Targets, scan_ids: list[str], config: VolumeConfig,
               rng: np.random.Generator | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ``(N, 1, X, Y, Z)`` and target (``(N,)``, or ``(N, 1, X, Y, Z)`` for gold) tensors; augmented when ``rng``."""
    images, voxel_targets = [], []
    for scan in scan_ids:
        box = boxes[scan]
        fraction = box.lesion_fraction if config.labels == "gold" else None
        if config.labels == "gold" and fraction is None:
            raise InputError(None, f"scan {scan!r} has no gold mask", "give every training scan of the strong twin a gold")
        image = box.flair
        if rng is not None:
            image, fraction = augment_box(image, fraction, rng, config.augmentation)
        images.append(image)
        voxel_targets.append(fraction)
    inputs = torch.from_numpy(np.stack(images)[:, None]).to(device).contiguous(memory_format=TRAINING_LAYOUT)
    if config.labels == "gold":
        return inputs, torch.from_numpy(np.stack(voxel_targets)[:, None]).to(device)
    values = [targets.values[s] for s in scan_ids]
    if config.labels == "volume":
        values = encode_volume(values, config.target_transform).tolist()
    return inputs, torch.tensor(values, dtype=torch.float32, device=device)


def evaluate_loss(model: GPUNet, loss_fn: VolumeLoss, boxes: Mapping[str, BoxScan], targets: Targets,
                  scan_ids: list[str], config: VolumeConfig, device: torch.device) -> dict[str, float]:
    """Validation loss (and MAE in mL, accuracy or Dice) over ``scan_ids`` without augmentation."""
    model.eval()
    outputs, target_list = [], []
    with torch.no_grad():
        for start in range(0, len(scan_ids), config.batch_size):
            inputs, target = make_batch(boxes, targets, scan_ids[start:start + config.batch_size], config, None, device)
            outputs.append(model(inputs))
            target_list.append(target)
    output, target = torch.cat(outputs), torch.cat(target_list)
    metrics = {"val_loss": float(loss_fn(output, target))}
    if config.labels == "gold":
        probability = torch.sigmoid(output)
        metrics["val_soft_dice"] = float(2 * (probability * target).sum() / (probability.sum() + target.sum() + 1e-8))
    elif config.task == "regression":
        predicted_ml = decode_volume(output[:, 0].cpu().numpy(), config.target_transform)
        metrics["val_mae_ml"] = float(np.abs(predicted_ml - [targets.values[s] for s in scan_ids]).mean())
    else:
        predicted = predicted_class(output, config.task)
        metrics["val_accuracy"] = float((predicted == target.long()).float().mean())
    return metrics


def refresh_readout(model: GPUNet, boxes: Mapping[str, BoxScan], targets: Targets, scan_ids: list[str],
                    config: VolumeConfig, device: torch.device, *, fit: bool = False) -> None:
    """Pooled-norm statistics of ``scan_ids`` (no augmentation); with ``fit`` also the least-squares read-out.

    The running averages of training lag behind a trunk that is still changing; statistics of the
    current weights over every training scan ("precise" batch norm) make each validation, the best
    checkpoint and the exported model use the normalisation the dense layer was trained against.

    ``fit`` (the best checkpoint of a volume regression with ``readout: least_squares``): the dense
    weights and bias become the ridge fit (:func:`ridge_readout`) of the encoded training volumes on
    the normalised pooled features of the same pass: a linear read-out's optimum is one solve, which
    Adam's steps of about the learning rate do not reach. Fitted after every epoch instead, it
    disturbed the training (BENCHMARKS.md, "Weak-label GP-Unet").
    """
    norm = model.pooled_norm
    if norm is None and not fit:
        return
    model.eval()
    pooled = []
    with torch.no_grad():
        for start in range(0, len(scan_ids), config.batch_size):
            inputs, _ = make_batch(boxes, targets, scan_ids[start:start + config.batch_size], config, None, device)
            pooled.append(model.pool(model.features(inputs)))
        stacked = torch.cat(pooled)
        if norm is not None:
            norm.running_mean.copy_(stacked.mean(dim=0))
            norm.running_var.copy_(stacked.var(dim=0, unbiased=len(scan_ids) > 1))
            stacked = norm(stacked)
        if fit:
            weight, bias = ridge_readout(stacked.double().cpu().numpy(),
                                         encode_volume([targets.values[s] for s in scan_ids], config.target_transform))
            scale = model.output_scale or 1.0
            model.dense.weight.copy_(torch.as_tensor(weight[None] / scale, dtype=model.dense.weight.dtype))
            model.dense.bias.fill_(bias)


#: Ridge penalty of the least-squares read-out per scan, in units of the pooled features' variance.
READOUT_RIDGE = 0.1


def ridge_readout(features: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge fit ``target ≈ features @ w + b`` with the penalty ``READOUT_RIDGE · n · |w|²`` on standardised features.

    Parameters
    ----------
    features
        ``(n, C)`` pooled (normalised) features of the training scans.
    target
        ``(n,)`` encoded training volumes.

    Returns
    -------
    tuple
        ``w`` ``(C,)`` in the units of ``features`` and the intercept ``b``.

    The penalty keeps the weights of directions in which the features barely
    vary across scans (near-collinear channels) from growing huge; a direction
    with the variance of one feature keeps 1 / 1.1 of its weight.

    >>> w, b = ridge_readout(np.array([[-1.0], [1.0]]), np.array([1.0, 3.0]))
    >>> round(float(w[0]), 3), b
    (0.909, 2.0)
    """
    mean, spread = features.mean(axis=0), features.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    standard = (features - mean) / spread
    n = len(target)
    gram = standard.T @ standard + READOUT_RIDGE * n * np.eye(standard.shape[1])
    weight = np.linalg.solve(gram, standard.T @ (target - target.mean())) / spread
    return weight, float(target.mean() - mean @ weight)


def training_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split one epoch's scan order into batches of ``batch_size``; a last batch of one scan joins the one before.

    Batch statistics (``pooled_norm``) need at least two scans; a training set of
    one scan still gives one batch of one.

    >>> [b.tolist() for b in training_batches(np.arange(5), 2)]
    [[0, 1], [2, 3, 4]]
    """
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def train_seed(
    config: VolumeConfig, seed: int, boxes: Mapping[str, BoxScan], targets: Targets, splits: Mapping[str, str],
    folder: Path, *, resume: bool, device: torch.device, digest: str,
) -> tuple[GPUNet, int, float]:
    """Train one initialisation in ``folder``; return the best network, epochs run and best validation loss.

    Raises
    ------
    OutputError
        When ``folder`` holds a checkpoint and ``resume`` is False.
    """
    train_ids = sorted(s for s, r in splits.items() if r == "train")
    val_ids = sorted(s for s, r in splits.items() if r == "val")
    model = build_model(config, seed, target_scale(config, targets, train_ids))
    initialise_output_layer(model, config, targets, train_ids)
    # channels-last 3D tensors: oneDNN's fast convolution layout; make_batch hands inputs in this layout
    model.to(device=device, memory_format=TRAINING_LAYOUT)
    optimizer = make_optimizer(config, model)
    loss_fn = VolumeLoss(config)
    folder.mkdir(parents=True, exist_ok=True)
    task = SeedTask(model, optimizer, loss_fn, config, seed, boxes, targets, train_ids, val_ids, device)
    settings = LoopSettings(unit=f"seed-{seed}", epochs=config.epochs, metric="val_loss", maximise=False,
                            early_stopping=config.early_stopping, history_extras=("seconds",))
    outcome = train_epochs(task, folder, settings, digest=digest, resume=resume)
    best = load_checkpoint(folder / BEST_NAME, model=model, config_digest=digest)
    model.load_state_dict(best["model"])
    if config.readout == "least_squares" and config.labels == "volume":
        refresh_readout(model, boxes, targets, train_ids, config, device, fit=True)
    return model.to(device="cpu", memory_format=torch.contiguous_format).eval(), outcome.epochs, float(outcome.best_metric)


@dataclass
class SeedTask:
    """One seed's GP-Unet training for :func:`~wmhkit.train.loop.train_epochs`: shuffled, augmented box batches,
    the :class:`VolumeLoss`, and after each epoch the pooled-norm refresh and :func:`evaluate_loss`."""

    model: GPUNet
    optimizer: torch.optim.Optimizer
    loss: VolumeLoss
    config: VolumeConfig
    seed: int
    boxes: Mapping[str, BoxScan]
    targets: Targets
    train_ids: list[str]
    val_ids: list[str]
    device: torch.device
    scheduler: None = None

    def train_batches(self, epoch: int) -> Batches:
        """The training scans in the order of ``(seed, epoch)``, augmented by that epoch's generator."""
        order = epoch_generator(self.seed, epoch, _ORDER_STREAM).permutation(len(self.train_ids))
        rng = epoch_generator(self.seed, epoch, _AUGMENT_STREAM) if self.config.augmentation.active else None
        batches = training_batches(order, self.config.batch_size)
        return Batches(len(batches), (make_batch(self.boxes, self.targets, [self.train_ids[i] for i in batch],
                                                 self.config, rng, self.device) for batch in batches))

    def validate(self) -> dict[str, float]:
        """Refresh the pooled-norm statistics over the training scans, then the validation loss and metric."""
        refresh_readout(self.model, self.boxes, self.targets, self.train_ids, self.config, self.device)
        return evaluate_loss(self.model, self.loss, self.boxes, self.targets, self.val_ids, self.config, self.device)


def export_volume_model(
    model_dir: Path, model: GPUNet, config: VolumeConfig, targets: Targets, *, prepare: Mapping[str, Any] | None,
    trained_on: str, provenance: Mapping[str, Any],
) -> Path:
    """Write the model folder (``model.yaml``, ``weights/model.pt``, ``provenance.json``; :func:`write_trained_model`).

    ``model.yaml`` holds ``kind`` (``volume``, or ``segmentation-3d`` for the twin),
    ``network``, ``inputs``, ``threshold`` (0.5, the twin's), ``prepare``, ``box``
    (the input geometry) and ``target`` (labels, task, classes, bin edges and the
    volume each bin stands for).
    """
    record = {
        "kind": config.kind,
        "network": model.network_spec(),
        "inputs": ["flair"],
        "threshold": 0.5,
        "prepare": None if prepare is None else dict(prepare),
        "box": config.box.to_dict(),
        "target": {"labels": config.labels, "task": config.task, "n_classes": config.n_classes,
                   "transform": config.target_transform if config.labels == "volume" else "none",
                   "bin_edges_ml": list(targets.bin_edges_ml), "bin_volumes_ml": list(targets.bin_volumes_ml)},
    }
    return write_trained_model(model_dir, record, {SINGLE_WEIGHTS: model.state_dict()}, trained_on=trained_on,
                               provenance=provenance)


def train_volume(
    config: VolumeConfig, out_dir: str | os.PathLike[str], *, manifest: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> VolumeRunResult:
    """Train every seed of ``config`` on a prepared manifest into ``out_dir`` (layout in the module docstring).

    Parameters
    ----------
    config
        The validated config.
    out_dir
        Run folder (created).
    manifest
        Prepared manifest; default ``config.manifest``.
    resume
        Continue the seeds' checkpoints (finished seeds are only re-exported).

    Raises
    ------
    InputError
        No manifest, an unprepared manifest, a resumed run with another config, ...
    ManifestError
        Too few labelled scans or a label column missing.
    """
    manifest_path = Path(manifest or config.manifest or "")
    if not str(manifest or config.manifest or ""):
        raise InputError(None, "no manifest given", "set manifest: in the config or pass --manifest")
    table_manifest = read_manifest(manifest_path)
    out_dir = Path(out_dir)
    try:
        device = distributed.choose_device(config.device)
    except ValueError as exc:
        raise InputError(config.source, str(exc), "set device: cpu or auto") from exc
    manifest_sha = sha256_file(manifest_path)
    digest = run_identity(config.identity(), manifest_sha, device)
    if config.threads:
        torch.set_num_threads(config.threads)
    prepare = prepare_parameters(table_manifest)
    table = select_scans(table_manifest, config)
    splits = assign_splits(table, config)
    targets = make_targets(table, splits, config)
    if config.network_spec().get("pooled_norm") and list(splits.values()).count("train") < 2:
        raise ManifestError(manifest_path, "batch normalisation of the pooled features needs at least 2 training scans",
                            "label more scans, or set network.pooled_norm: none in the config")
    setup = {"config.yaml": yaml.safe_dump(config.to_dict(), sort_keys=False),
             SPLITS_TSV: "scan_id\tsplit\n" + "".join(f"{s}\t{r}\n" for s, r in splits.items())}
    start_run_folder(out_dir, digest=digest, setup_files=setup, resume=resume,
                     record={"manifest": str(manifest_path.resolve()), "manifest_sha256": manifest_sha,
                             "seeds": list(config.seeds), "name": config.name, "device": device.type})
    log.info("train-volume %s: %d scans (%s); putting them into the %s box", config.name, len(splits),
             ", ".join(f"{r} {list(splits.values()).count(r)}" for r in SPLIT_ROLES), list(config.box.shape))
    boxes = load_boxes(table_manifest, table, config)
    results = []
    for seed in config.seeds:
        folder = out_dir / f"seed-{seed}"
        model, epochs, best = train_seed(config, seed, boxes, targets, splits, folder, resume=resume,
                                         device=device, digest=digest)
        provenance = {"config": config.to_dict(), "config_hash": digest, "seed": seed,
                      "data": {"manifest": str(manifest_path), "manifest_sha256": manifest_sha,
                               "splits": {r: list(splits.values()).count(r) for r in SPLIT_ROLES}},
                      "device": str(device), "epochs": epochs, "best_val_loss": best}
        model_dir = export_volume_model(
            folder / MODEL_DIR, model, config, targets, prepare=prepare, provenance=provenance,
            trained_on=f"{config.name}: {list(splits.values()).count('train')} training scans of {manifest_path} "
                       f"({config.labels} labels), seed {seed}")
        results.append(SeedResult(seed, folder, model_dir, epochs, best))
    return VolumeRunResult(out_dir, manifest_path, splits, results, config.name)
