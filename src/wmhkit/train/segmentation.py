"""The staged segmentation trainer (M3SL: bronze → silver → gold; baseline; transfer).

:func:`train_run` runs a :class:`~wmhkit.train.config.TrainConfig` on a prepared
manifest into a run folder::

    RUN/run.json                 run identity (config, manifest sha256, device type; :mod:`wmhkit.train.run_folder`)
    RUN/config.yaml              the resolved config
    RUN/splits.tsv               stage, fold, scan, role (train / val / test)
    RUN/stages/<stage>/<plane>[/fold<k>]/
        last.pt, best.pt, ...    the training loop's folder (:mod:`wmhkit.train.loop`; best: validation IoU)
        done.json                written when the unit has finished
    RUN/cv_metrics.tsv           gold test-fold metrics of the fused 2.5D prediction
    RUN/model/                   the model folder (see :mod:`wmhkit.train.export`)

Each plane (axial, sagittal, coronal) is an independent chain of units; a unit
is one stage of one plane (one fold of it for a cross-validated gold stage) and
starts from the previous stage's best weights. Every random draw of an epoch
comes from :func:`~wmhkit.train.reproducibility.epoch_generator` seeded by
``(seed, epoch, stage, plane, fold)``, so ``resume=True`` continues exactly (:mod:`wmhkit.train.loop`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from wmhkit.errors import InputError
from wmhkit.io.atomic import write_text_atomic
from wmhkit.io.manifest import Manifest, read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.io.provenance import sha256_file
from wmhkit.metrics.segmentation import METRIC_COLUMNS, segmentation_metrics, wmh_from_gold
from wmhkit.models.folder import KIND_2_5D, weights_path
from wmhkit.models.networks import build_network
from wmhkit.models.predictors import SegmentationPredictor
from wmhkit.nn.imagenet import load_imagenet_encoder
from wmhkit.nn.losses import DiceFocalLoss, split_labels
from wmhkit.nn.vgg_unet import DOWNSAMPLING, VGG16UNet
from wmhkit.train import distributed
from wmhkit.train.checkpoint import BEST_NAME, load_checkpoint
from wmhkit.train.config import TrainConfig
from wmhkit.train.data import (
    LabelSource,
    SliceSet,
    augment,
    epoch_order,
    has_lesion,
    load_slice_set,
    stage_label_sources,
    to_tensors,
)
from wmhkit.train.distributed import DistContext
from wmhkit.train.export import prepare_parameters, write_trained_model
from wmhkit.train.loop import Batches, LoopSettings, Progress, train_epochs
from wmhkit.train.reproducibility import epoch_generator, seed_everything
from wmhkit.train.run_folder import run_identity, start_run_folder
from wmhkit.train.splits import Split, gold_folds, train_val_split

log = logging.getLogger(__name__)

DONE_NAME = "done.json"
CV_METRICS = "cv_metrics.tsv"
MODEL_DIR = "model"


@dataclass(frozen=True)
class RunPlan:
    """Everything fixed before training starts: config, manifest, its hash, and per stage its splits and the
    label sources of its scans (in manifest order; read once here, not again per unit)."""

    config: TrainConfig
    manifest: Manifest
    manifest_sha256: str
    digest: str
    splits: tuple[tuple[Split, ...], ...]
    sources: tuple[tuple[LabelSource, ...], ...]


@dataclass(frozen=True)
class UnitResult:
    """Outcome of one unit: best validation IoU, epochs run, best checkpoint, final weights' SHA-256."""

    key: str
    best_iou: float | None
    epochs: int
    best_path: Path
    weights_sha256: str


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`train_run`: the model folder, the CV metrics file (or None), unit results."""

    model_dir: Path
    cv_metrics: Path | None
    units: dict[str, UnitResult]


def plan_run(config: TrainConfig, manifest_path: str | os.PathLike[str], *,
             device: torch.device | None = None) -> RunPlan:
    """Read the prepared manifest and fix every stage's split.

    Bronze and silver stages split ``val_fraction`` of their scans to validation
    (silver stratified by ``scanner``); a gold stage with ``folds`` > 1 gets
    :func:`~wmhkit.train.splits.gold_folds`, else a train/validation split.

    The plan's digest is the run identity (:func:`~wmhkit.train.run_folder.run_identity`):
    config, manifest content and the type of ``device`` (default: the config's device).

    Raises
    ------
    InputError
        When a stage has too few scans with its labels.
    """
    manifest = read_manifest(manifest_path)
    splits, stage_sources = [], []
    for stage in config.stages:
        rows = list(manifest.rows())
        if stage.scans == "without_gold":
            rows = [r for r in rows if not r.get("gold", "")]
        elif stage.scans == "with_gold":
            rows = [r for r in rows if r.get("gold", "")]
        ids = [manifest.scan_id(r) for r in rows]
        sources = stage_label_sources(manifest, ids, stage, config.data.balance_by)
        labelled = {s.scan_id for s in sources}
        rows = [r for r in rows if manifest.scan_id(r) in labelled]
        ids = [manifest.scan_id(r) for r in rows]
        try:
            if stage.cross_validated:
                with_lesion = [s.scan_id for s in sources if has_lesion(s)]
                stage_splits = tuple(gold_folds(ids, stage.folds, stage.gold_val_fraction, seed=config.seed,
                                                val_candidates=with_lesion))
            else:
                strata = [r.get("scanner", "") for r in rows] if stage.labels == "silver" else None
                stage_splits = (train_val_split(ids, stage.val_fraction, seed=config.seed, strata=strata),)
        except ValueError as exc:
            raise InputError(manifest_path, f"stage {stage.name!r} ({stage.labels} labels, scans {stage.scans}): {exc}",
                             "add labelled scans or change the stage's scans/folds") from exc
        splits.append(stage_splits)
        stage_sources.append(tuple(sources))
    manifest_sha = sha256_file(manifest_path)
    device = device if device is not None else distributed.choose_device(config.device)
    digest = run_identity(config.identity(), manifest_sha, device)
    return RunPlan(config, manifest, manifest_sha, digest, tuple(splits), tuple(stage_sources))


def train_run(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Train every stage of ``config`` for every plane, evaluate the gold test folds, export the model.

    Parameters
    ----------
    config
        The validated training config.
    out_dir
        Run folder (created). An existing run folder needs ``resume=True``.
    manifest
        Prepared manifest (``wmhkit prepare`` output); default ``config.manifest``.
    resume
        Continue the run in ``out_dir`` from its checkpoints; finished units are skipped.
    progress
        Optional per-batch callback (the CLI draws progress bars with it).

    Raises
    ------
    OutputError
        When ``out_dir`` already holds a run and ``resume`` is False.
    CheckpointError
        When resuming a run made with another config or manifest.
    """
    manifest = manifest if manifest is not None else config.manifest
    if manifest is None:
        raise InputError(config.source, "manifest: no prepared manifest given",
                         "pass --manifest PREPARED/manifest.tsv or set manifest: in the config")
    check_imagenet_weights(config)
    context = distributed.init_distributed(config.device)
    plan = plan_run(config, manifest, device=context.device)
    out_dir = Path(out_dir)
    if context.is_main:
        _start_run_folder(plan, out_dir, Path(manifest), resume)
    distributed.barrier(context)
    units: dict[str, UnitResult] = {}
    if config.parallel_planes > 1 and not context.distributed and len(config.planes) > 1:
        workers = min(config.parallel_planes, len(config.planes))
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_plane_worker, plan, plane, out_dir, resume, threads) for plane in config.planes]
            for future in futures:
                units.update(future.result())
    else:
        for plane in config.planes:
            units.update(train_plane(plan, plane, out_dir, context=context, resume=resume, progress=progress))
    cv_path = None
    if context.is_main:
        if config.stages[-1].cross_validated:
            cv_path = evaluate_test_folds(plan, out_dir, device=context.device)
        export_run_model(plan, out_dir, units, device=context.device)
    distributed.barrier(context)
    return RunResult(out_dir / MODEL_DIR, cv_path, units)


def _plane_worker(plan: RunPlan, plane: str, out_dir: Path, resume: bool, threads: int) -> dict[str, UnitResult]:
    torch.set_num_threads(threads)
    context = DistContext(0, 1, distributed.choose_device(plan.config.device))
    return train_plane(plan, plane, out_dir, context=context, resume=resume)


def _start_run_folder(plan: RunPlan, out_dir: Path, manifest: Path, resume: bool) -> None:
    config = plan.config
    rows = []
    for stage, stage_splits in zip(config.stages, plan.splits):
        for split in stage_splits:
            rows += [{"stage": stage.name, "fold": "" if split.fold is None else split.fold, "scan": scan, "role": role}
                     for scan, role in sorted(split.roles().items())]
    setup = {"config.yaml": yaml.safe_dump(config.to_dict(), sort_keys=False),
             "splits.tsv": pd.DataFrame(rows).to_csv(sep="\t", index=False, lineterminator="\n")}
    record = {"manifest": str(manifest.resolve()), "manifest_sha256": plan.manifest_sha256,
              "seed": config.seed, "name": config.name}
    start_run_folder(out_dir, digest=plan.digest, setup_files=setup, record=record, resume=resume)


def initial_weights(config: TrainConfig, plane: str) -> dict[str, torch.Tensor]:
    """Weights ``plane``'s first stage starts from: seeded random init, ImageNet VGG16 in the encoder, or the
    plane's weights of the ``init_model`` folder (``init: model``)."""
    torch.manual_seed(config.seed)
    model = VGG16UNet(width=config.network.width, decoder_batch_norm=config.network.decoder_batch_norm)
    if config.init == "imagenet":
        check_imagenet_weights(config)
        load_imagenet_encoder(model, config.imagenet_weights)
    if config.init == "model":
        path = weights_path(config.init_model, plane)
        if not path.is_file():
            raise InputError(path, f"init_model has no weights for the {plane} plane",
                             "point init_model at a 2.5D model folder trained on the same planes")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for corrupt files
            raise InputError(path, f"cannot load the init_model weights ({type(error).__name__})",
                             "point init_model at a complete model folder written by wmhkit train") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise InputError(path, f"init_model weights do not fit this network ({str(error).splitlines()[0]})",
                             "use network.width and decoder_batch_norm of the init model") from None
    return model.state_dict()


def check_imagenet_weights(config: TrainConfig) -> None:
    """Refuse ``init: imagenet`` without an existing weights file (checked before a run folder is made)."""
    if config.init != "imagenet":
        return
    if config.imagenet_weights is None:
        raise InputError(config.source, "imagenet_weights: init is imagenet but no weights file is given",
                         "pass --imagenet-weights vgg16-397923af.pth or set imagenet_weights: in the config")
    if not Path(config.imagenet_weights).is_file():
        raise InputError(config.imagenet_weights, "the ImageNet VGG16 weights file does not exist",
                         "give the path of torchvision's vgg16-397923af.pth (nothing is downloaded)")


def train_plane(
    plan: RunPlan, plane: str, out_dir: Path, *, context: DistContext = DistContext(), resume: bool = False,
    progress: Progress | None = None,
) -> dict[str, UnitResult]:
    """Run every stage of one plane in order; each starts from the previous stage's best weights."""
    start = initial_weights(plan.config, plane)
    results: dict[str, UnitResult] = {}
    for stage_index, stage in enumerate(plan.config.stages):
        for split in plan.splits[stage_index]:
            result = train_unit(plan, stage_index, plane, split, start, out_dir, context=context, resume=resume,
                                progress=progress)
            results[result.key] = result
        if not stage.cross_validated:
            start = load_checkpoint(result.best_path, config_digest=plan.digest)["model"]
    return results


def unit_folder(out_dir: Path, stage_name: str, plane: str, fold: int | None) -> Path:
    """``RUN/stages/<stage>/<plane>[/fold<k>]``."""
    folder = out_dir / "stages" / stage_name / plane
    return folder / f"fold{fold}" if fold is not None else folder


def train_unit(
    plan: RunPlan, stage_index: int, plane: str, split: Split, start_weights: Mapping[str, torch.Tensor],
    out_dir: Path, *, context: DistContext = DistContext(), resume: bool = False, progress: Progress | None = None,
) -> UnitResult:
    """Train one stage of one plane (one fold) and return its best validation IoU.

    Runs the shared loop (:func:`~wmhkit.train.loop.train_epochs`): ``best.pt`` whenever the
    validation IoU improves by more than ``early_stopping.min_delta``, an early stop after
    ``patience`` epochs without improvement; ``done.json`` marks the finished unit.
    """
    config = plan.config
    stage = config.stages[stage_index]
    plane_index = list(config.planes).index(plane)
    fold = split.fold
    key = "/".join([stage.name, plane] + ([f"fold{fold}"] if fold is not None else []))
    folder = unit_folder(out_dir, stage.name, plane, fold)
    done_file = folder / DONE_NAME
    if resume and done_file.exists():
        record = json.loads(done_file.read_text())
        log.info("%s: already trained (best IoU %s), skipped", key, record["best_iou"])
        return UnitResult(key, record["best_iou"], record["epochs"], folder / BEST_NAME, record["weights_sha256"])

    seed_everything(config.seed)
    model = build_network({"name": "vgg16_unet", "width": config.network.width,
                           "decoder_batch_norm": config.network.decoder_batch_norm})
    model.load_state_dict(start_weights)
    model.freeze_first(stage.freeze)
    model.to(context.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=stage.learning_rate, weight_decay=stage.weight_decay)
    if stage.scheduler == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=stage.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    loss_fn = DiceFocalLoss(config.loss.alpha, config.loss.gamma, config.loss.dice_weight, config.loss.focal_weight)
    train_set, val_set = _unit_data(plan, stage_index, plane, split)
    stream = (stage_index, plane_index, 0 if fold is None else fold + 1)
    task = SliceTask(model, optimizer, scheduler, loss_fn, train_set, val_set, plan, stage_index, stream, context)
    log.info("%s: %d train / %d val slices, %d frozen conv layers", key, len(train_set), len(val_set), stage.freeze)
    settings = LoopSettings(unit=key, epochs=stage.epochs, metric="val_iou", maximise=True,
                            early_stopping=stage.early_stopping, history_extras=("learning_rate", "best"),
                            tensorboard=config.tensorboard)
    outcome = train_epochs(task, folder, settings, digest=plan.digest, resume=resume, context=context,
                           progress=progress)
    best_iou, epochs_run = outcome.best_metric, outcome.epochs
    checksum = weights_sha256(model.state_dict())
    per_rank = distributed.gather_strings(checksum, context)
    if len(set(per_rank)) != 1:
        raise RuntimeError(f"{key}: the {context.world_size} ranks ended with different weights ({per_rank}); "
                           "DistributedDataParallel lost synchronisation")
    if context.is_main:
        record = {"best_iou": best_iou, "epochs": epochs_run, "weights_sha256": checksum, "ranks": len(per_rank)}
        write_text_atomic(done_file, json.dumps(record, sort_keys=True) + "\n")
    distributed.barrier(context)
    return UnitResult(key, best_iou, epochs_run, folder / BEST_NAME, checksum)


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names and tensor bytes (equal weights ⇔ equal hash)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode() + b"\0" + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _unit_data(plan: RunPlan, stage_index: int, plane: str, split: Split) -> tuple[SliceSet, SliceSet]:
    config, stage = plan.config, plan.config.stages[stage_index]
    train_set = load_slice_set(_sources_of(plan, stage_index, split.train), config.data, plane)
    val_set = load_slice_set(_sources_of(plan, stage_index, split.val), config.data, plane)
    for role, slices in (("training", train_set), ("validation", val_set)):
        if len(slices) == 0:
            raise InputError(plan.manifest.source, f"stage {stage.name!r}: the {role} scans have no lesion block",
                             "check the labels, lower data.min_lesion_voxels or add scans")
    if stage.val_slices is not None and stage.val_slices < len(val_set):
        rng = np.random.default_rng([config.seed, stage_index, 7])
        val_set = val_set.subset(np.sort(epoch_order(len(val_set), rng, stage.val_slices, val_set.groups)))
    return train_set, val_set


def _sources_of(plan: RunPlan, stage_index: int, scan_ids: Sequence[str]) -> list[LabelSource]:
    """The planned label sources of ``scan_ids`` in stage ``stage_index``, in manifest order."""
    wanted = set(scan_ids)
    return [source for source in plan.sources[stage_index] if source.scan_id in wanted]


@dataclass
class SliceTask:
    """One unit's 2.5D training for :func:`~wmhkit.train.loop.train_epochs`: augmented slice batches of one
    plane, the Dice-focal loss, validation loss and IoU."""

    model: VGG16UNet
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss: DiceFocalLoss
    train_set: SliceSet
    val_set: SliceSet
    plan: RunPlan
    stage_index: int
    #: ``(stage, plane, fold)`` indices of :func:`~wmhkit.train.reproducibility.epoch_generator`.
    stream: tuple[int, int, int]
    context: DistContext

    def train_batches(self, epoch: int) -> Batches:
        """This rank's share of the epoch's slices (``slices_per_epoch`` drawn), augmented, in batches."""
        config, stage = self.plan.config, self.plan.config.stages[self.stage_index]
        rng = epoch_generator(config.seed, epoch, *self.stream)
        order = distributed.shard(epoch_order(len(self.train_set), rng, stage.slices_per_epoch, self.train_set.groups),
                                  self.context)
        per_rank = max(1, stage.batch_size // self.context.world_size)
        starts = range(0, len(order), per_rank)

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for start in starts:
                indices = order[start:start + per_rank]
                images, labels = augment(self.train_set.images[indices], self.train_set.labels[indices], rng,
                                         config.augmentation)
                yield to_tensors(images, labels, self.context.device)
        return Batches(len(starts), batches())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss and IoU (TP / (TP + FP + FN) over all validation voxels, label 2 ignored)."""
        distributed.broadcast_buffers(self.model, self.context)
        self.model.eval()
        batch_size = self.plan.config.stages[self.stage_index].batch_size
        indices = distributed.shard(np.arange(len(self.val_set)), self.context, equal=False)
        # loss × slices, slices, TP, FP, FN
        sums = torch.zeros(5, dtype=torch.float64, device=self.context.device)
        for start in range(0, len(indices), batch_size):
            chosen = indices[start:start + batch_size]
            images, labels = to_tensors(self.val_set.images[chosen], self.val_set.labels[chosen], self.context.device)
            logits = self.model(images)
            target, valid = split_labels(labels)
            predicted = (torch.sigmoid(logits) >= 0.5).float() * valid
            tp = (predicted * target).sum()
            sums += torch.stack([self.loss(logits, labels).double() * len(chosen),
                                 torch.tensor(len(chosen), device=sums.device), tp.double(),
                                 (predicted.sum() - tp).double(), (target.sum() - tp).double()]).to(sums)
        sums = distributed.all_reduce_sum(sums, self.context)
        loss_sum, count, tp, fp, fn = (float(v) for v in sums)
        union = tp + fp + fn
        return {"val_loss": loss_sum / count, "val_iou": tp / union if union > 0 else 1.0}


def _plane_model(path: Path, plan: RunPlan, device: torch.device) -> VGG16UNet:
    model = build_network({"name": "vgg16_unet", "width": plan.config.network.width,
                           "decoder_batch_norm": plan.config.network.decoder_batch_norm})
    model.load_state_dict(load_checkpoint(path, config_digest=plan.digest)["model"])
    return model.to(device).eval()


def evaluate_test_folds(plan: RunPlan, out_dir: Path, *, device: torch.device = torch.device("cpu")) -> Path:
    """Metrics of every gold scan predicted by the models of the fold that held it out.

    The plane models of fold k predict each test scan of fold k (prepared space) as
    ``predict`` would (:class:`~wmhkit.models.predictors.SegmentationPredictor`):
    their probabilities are fused (``config.fusion``) and thresholded
    (``config.threshold``); label 2 of the gold is removed from both masks
    (:func:`~wmhkit.metrics.segmentation.wmh_from_gold`). Writes ``RUN/cv_metrics.tsv``.
    """
    config = plan.config
    stage = config.stages[-1]
    rows = []
    for split in plan.splits[-1]:
        models = {plane: _plane_model(unit_folder(out_dir, stage.name, plane, split.fold) / BEST_NAME, plan, device)
                  for plane in config.planes}
        predictor = SegmentationPredictor.from_networks(models, fusion=config.fusion, threshold=config.threshold,
                                                        batch_size=stage.batch_size, device=device)
        for row in plan.manifest.rows():
            scan_id = plan.manifest.scan_id(row)
            if scan_id not in split.test:
                continue
            flair = load_image(plan.manifest.path(row, "flair"))
            gold = load_mask(plan.manifest.path(row, "gold"), allowed_labels=(0, 1, 2))
            brain_path = plan.manifest.path(row, "brain_mask")
            # Prepared FLAIRs are zero outside the brain, so that is the brain when no mask is listed.
            brain = load_mask(brain_path) if brain_path else flair.with_array((flair.array != 0).astype(np.uint8))
            predicted = predictor.predict({"flair": flair, "brain_mask": brain}).wmh.array > 0  # type: ignore[union-attr]
            wmh, other = wmh_from_gold(gold.array)
            metrics = segmentation_metrics(predicted & ~other, wmh, flair.affine)
            rows.append({"scan": scan_id, "fold": split.fold, "scanner": row.get("scanner", ""), **metrics})
    table = pd.DataFrame(rows, columns=["scan", "fold", "scanner", *METRIC_COLUMNS])
    path = out_dir / CV_METRICS
    write_text_atomic(path, table.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))
    log.info("cross-validation: mean Dice %.4f over %d gold scans", table["dice"].mean(), len(table))
    return path


def export_run_model(plan: RunPlan, out_dir: Path, units: Mapping[str, UnitResult], *,
                     device: torch.device = torch.device("cpu")) -> Path:
    """Write ``RUN/model``: per plane the last stage's best weights (for a cross-validated
    stage, the fold with the best validation IoU) as ``weights/<plane>.pt``; ``model.yaml`` holds ``kind``,
    ``network``, ``planes``, ``fusion``, ``threshold``, ``prepare`` and the input geometry (``patch_size``,
    ``pad_shape`` and the in-plane size multiple of inputs)."""
    config = plan.config
    last = config.stages[-1]
    weights, chosen = {}, {}
    for plane in config.planes:
        candidates = [u for k, u in units.items() if k.split("/")[:2] == [last.name, plane]]
        best = max(candidates, key=lambda u: -math.inf if u.best_iou is None else u.best_iou)
        weights[plane] = load_checkpoint(best.best_path, config_digest=plan.digest)["model"]
        chosen[plane] = best.key
    provenance = {
        "config": config.to_dict(), "config_hash": plan.digest, "seed": config.seed,
        "data": {"manifest": str(plan.manifest.source), "manifest_sha256": plan.manifest_sha256},
        "device": str(device), "weights_from": chosen,
        "best_val_iou": {key: unit.best_iou for key, unit in sorted(units.items())},
    }
    prepare = prepare_parameters(plan.manifest)
    record = {
        "kind": KIND_2_5D,
        "network": {"name": "vgg16_unet", "in_channels": 1, "out_channels": 1, "width": config.network.width,
                    "decoder_batch_norm": config.network.decoder_batch_norm},
        "planes": list(weights), "fusion": config.fusion, "threshold": float(config.threshold),
        "prepare": None if prepare is None else dict(prepare),
        "input": {"patch_size": config.data.patch_size, "pad_shape": list(config.data.pad_shape),
                  "size_multiple": DOWNSAMPLING},
    }
    return write_trained_model(
        out_dir / MODEL_DIR, record, weights,
        trained_on=f"{config.name}: {len(plan.manifest)} scans of {Path(plan.manifest.source or 'manifest').name} "
                   "(its SHA-256 in provenance.json), stages "
                   + " → ".join(f"{s.name} ({s.labels})" for s in config.stages),
        provenance=provenance,
    )
