"""``wmhkit train-volume`` config: a YAML file → a validated, frozen :class:`VolumeConfig`.

Every error is a :class:`~wmhkit.train.config_reader.ConfigError` naming the file and the
key (``box.shape``), what was wrong and how to fix it; unknown keys are errors.

Keys (defaults in brackets)::

    name          run name                                                [file stem]
    seeds         network initialisations trained one after another        [[0]]
    manifest      prepared manifest, relative to the config                [none: give --manifest]
    labels        volume | fazekas | volume_bins | gold                    [volume]
                  volume: the manifest's volume_ml (weak); fazekas: its grade 0–3
                  (weak); volume_bins: volume_ml binned into n_bins training
                  quantiles (the paper's pilot); gold: voxel masks (the strong twin)
    task          regression (volume) | classification | ordinal           [regression / ordinal]
    target_transform  log1p | none: what the volume regression fits          [log1p]
                  (log1p(mL), decoded back to mL at prediction; see
                  :mod:`wmhkit.models.box`)
    standardise_target  true | false: the dense layer of a volume             [true]
                  regression acts in units of the training targets' SD
                  (GPUNet output_scale); without it the weak model's outputs
                  shrink towards the training mean (see :mod:`wmhkit.nn.gp_unet`)
    readout       least_squares | adam: after training set the dense layer    [least_squares]
                  of a volume regression to the ridge fit of the training
                  volumes on the best checkpoint's pooled features (adam: keep
                  the optimiser's; :func:`wmhkit.train.volume.refresh_readout`)
    voxel_loss    dice | dice_bce: loss of the strong twin (gold labels)    [dice]
                  dice_bce adds the voxel-wise binary cross-entropy, whose dense
                  gradients keep a soft Dice from collapsing to an empty mask
    n_bins        classes of volume_bins                                   [5]
    scanners      use only scans of these scanners ([] = all)              [[]]
    split         {train: 0.6, val: 0.2, test: 0.2, seed: 0, stratify: scanner,
                   use_manifest_split: true}  (a manifest ``split`` column of
                   train/val/test wins when use_manifest_split is true)
    box           {shape: [112, 128, 32], spacing_mm: [1.4, 1.5, 4.5] or null (fit),
                   percentiles: [1, 99] or null (keep the prepared intensities)}
    network       {base_channels: 16, levels: 3, pooling: mean | volume,  [mean]
                   pooled_norm: batch | none}                             [batch]
                  volume: sum pooling times the box voxel volume (mL), so the
                  attention map integrates to the output (needs box.spacing_mm);
                  pooled_norm batch: batch-normalise the pooled features before
                  the dense layer (weak labels; without it the weak model
                  collapses to the training mean; needs batch_size >= 2; see
                  :mod:`wmhkit.nn.gp_unet`)
    optimizer     {name: adadelta | adam | sgd, learning_rate: 1.0, weight_decay: 0.0}
    epochs        training epochs                                          [100]
    batch_size    scans per batch                                          [4]
    early_stopping  {patience: 20, min_delta: 0.0} or null: stop after patience  [null]
                  epochs in which the validation loss fell by no more than min_delta
    augmentation  {translation: 0.2, rotation_deg: 10.0, flip: true}
    device        auto | cpu | cuda                                        [auto]
    threads       torch CPU threads (0 = torch's default)                  [0]
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wmhkit.models.box import TARGET_TRANSFORMS, BoxSpec
from wmhkit.train.config import DEVICES, EarlyStopping
from wmhkit.train.config_reader import ConfigReader, RecordedConfig, is_finite_number, is_whole, read_config_yaml

LABELS = ("volume", "fazekas", "volume_bins", "gold")
TASKS = ("regression", "classification", "ordinal")
OPTIMIZERS = ("adadelta", "adam", "sgd")
POOLINGS = ("mean", "volume")
POOLED_NORMS = ("batch", "none")
VOXEL_LOSSES = ("dice", "dice_bce")
READOUTS = ("least_squares", "adam")
#: Fazekas grades the severity variant learns (0–3).
FAZEKAS_GRADES = 4
#: Keys that change how a run executes but not what it computes (left out of the config hash).
EXECUTION_KEYS = ("manifest", "device", "threads", "seeds")


@dataclass(frozen=True)
class SplitConfig:
    """Train/validation/test fractions, their seed and stratification column."""

    train: float = 0.6
    val: float = 0.2
    test: float = 0.2
    seed: int = 0
    stratify: str | None = "scanner"
    use_manifest_split: bool = True


@dataclass(frozen=True)
class GPUNetConfig:
    """The ``network`` section: GP-Unet width and depth, pooling and pooled-feature normalisation."""

    base_channels: int = field(default=16, metadata={"minimum": 1})
    levels: int = field(default=3, metadata={"minimum": 2, "maximum": 3})
    pooling: str = field(default="mean", metadata={"choices": POOLINGS})
    pooled_norm: str = field(default="batch", metadata={"choices": POOLED_NORMS})


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer name, learning rate and L2 weight decay."""

    name: str = field(default="adadelta", metadata={"choices": OPTIMIZERS})
    learning_rate: float = field(default=1.0, metadata={"open": True})
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Augmentation:
    """On-the-fly augmentation settings of GP-Unet boxes (see :func:`wmhkit.train.data.augment_box`).

    Attributes
    ----------
    translation
        Largest shift as a fraction of each box size (the paper: 0.2).
    rotation_deg
        Largest rotation about the slice (third) axis, degrees.
    flip
        Mirror left-right (first axis) with probability 1/2.
    """

    translation: float = field(default=0.2, metadata={"maximum": 0.5})
    rotation_deg: float = field(default=10.0, metadata={"maximum": 180.0})
    flip: bool = True

    @property
    def active(self) -> bool:
        """True when any augmentation is on."""
        return self.translation > 0 or self.rotation_deg > 0 or self.flip


@dataclass(frozen=True)
class VolumeConfig(RecordedConfig):
    """A validated ``train-volume`` config (see the module docstring)."""

    name: str
    seeds: tuple[int, ...]
    manifest: str | None
    labels: str
    task: str
    n_bins: int
    scanners: tuple[str, ...]
    split: SplitConfig
    box: BoxSpec
    network: GPUNetConfig
    optimizer: OptimizerConfig
    epochs: int
    batch_size: int
    early_stopping: EarlyStopping | None
    augmentation: Augmentation
    device: str
    threads: int
    target_transform: str = "log1p"
    standardise_target: bool = True
    readout: str = "least_squares"
    voxel_loss: str = "dice"
    source: str | None = field(default=None, compare=False)
    execution_keys = EXECUTION_KEYS

    @property
    def n_classes(self) -> int:
        """Number of ordered classes of a severity task (grades or bins); 0 for volume and gold."""
        return {"fazekas": FAZEKAS_GRADES, "volume_bins": self.n_bins}.get(self.labels, 0)

    @property
    def kind(self) -> str:
        """``model.yaml`` kind: ``segmentation-3d`` for the strong twin, else ``volume``."""
        return "segmentation-3d" if self.labels == "gold" else "volume"

    def network_spec(self) -> dict[str, Any]:
        """Constructor arguments of the :class:`~wmhkit.nn.gp_unet.GPUNet` this config trains."""
        network = self.network
        spec: dict[str, Any] = {"name": "gp_unet", "in_channels": 1, "base_channels": network.base_channels,
                                "levels": network.levels, "outputs": 1, "head": "pooled"}
        if self.labels == "gold":
            spec["head"] = "voxel"
        elif self.task == "classification":
            spec["outputs"] = self.n_classes
        elif self.task == "ordinal":
            spec["ordinal_levels"] = self.n_classes
        if network.pooling == "volume" and self.labels != "gold":
            spec["pool_scale"] = self.box_voxel_ml
        if network.pooled_norm == "batch" and self.labels != "gold":
            spec["pooled_norm"] = True
        return spec

    @property
    def box_voxel_ml(self) -> float:
        """Volume of one box voxel (mL); NaN for a fitted box (its voxel size varies per scan)."""
        if self.box.spacing_mm is None:
            return math.nan
        return math.prod(self.box.spacing_mm) / 1000.0


def parse_volume_config(raw: Any, *, source: str | os.PathLike[str] | None = None) -> VolumeConfig:
    """Validate a config mapping (as read from YAML) into a :class:`VolumeConfig`."""
    where = Path(source) if source is not None else None
    check = ConfigReader(where)
    top = check.top(raw, VolumeConfig)
    labels = check.choice(top, "", "labels", LABELS, "volume")
    default_task = {"volume": "regression", "gold": "regression"}.get(labels, "ordinal")
    task = check.choice(top, "", "task", TASKS, default_task)
    if labels in ("fazekas", "volume_bins") and task == "regression":
        check.fail("task", f"labels {labels!r} are ordered classes, not a volume", "use ordinal or classification")
    if labels == "volume" and task != "regression":
        check.fail("task", f"labels 'volume' are regressed, got task {task!r}",
                   "use task: regression, or labels: volume_bins for classes")
    seeds = top.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(is_whole(s) and s >= 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        check.fail("seeds", f"must be a non-empty list of distinct whole numbers >= 0, got {seeds!r}", "write e.g. [0, 1, 2]")
    config = VolumeConfig(
        name=check.string(top, "", "name", where.stem if where is not None else "volume"),
        seeds=tuple(int(s) for s in seeds),
        manifest=check.path(top, "", "manifest"),
        labels=labels,
        task=task,
        n_bins=check.integer(top, "", "n_bins", 5, minimum=2),
        scanners=tuple(check.string_list(top, "", "scanners", [])),
        split=_split(check, top),
        box=_box(check, top),
        network=check.dataclass_section(top, "network", GPUNetConfig),
        optimizer=check.dataclass_section(top, "optimizer", OptimizerConfig),
        epochs=check.integer(top, "", "epochs", 100, minimum=1),
        batch_size=check.integer(top, "", "batch_size", 4, minimum=1),
        early_stopping=None if top.get("early_stopping") is None else check.dataclass_section(
            top, "early_stopping", EarlyStopping, defaults={"patience": 20}),
        augmentation=check.dataclass_section(top, "augmentation", Augmentation),
        device=check.choice(top, "", "device", DEVICES, "auto"),
        threads=check.integer(top, "", "threads", 0, minimum=0),
        target_transform=check.choice(top, "", "target_transform", TARGET_TRANSFORMS, "log1p"),
        standardise_target=check.boolean(top, "", "standardise_target", True),
        readout=check.choice(top, "", "readout", READOUTS, "least_squares"),
        voxel_loss=check.choice(top, "", "voxel_loss", VOXEL_LOSSES, "dice"),
        source=None if where is None else str(where),
    )
    if config.network.pooling == "volume" and config.box.spacing_mm is None:
        check.fail("network.pooling", "volume pooling needs a box of fixed voxel size",
                   "give box.spacing_mm, or use pooling: mean")
    if config.network.pooled_norm == "batch" and config.labels != "gold" and config.batch_size < 2:
        check.fail("batch_size", "batch normalisation of the pooled features needs at least 2 scans per batch",
                   "use batch_size: 2 or more, or network.pooled_norm: none")
    multiple = 2 ** (config.network.levels - 1)
    if any(size % multiple for size in config.box.shape):
        check.fail("box.shape", f"{list(config.box.shape)} must be multiples of {multiple} for {config.network.levels} levels",
                   f"round each size to a multiple of {multiple}")
    return config


def _split(check: ConfigReader, top: Mapping[str, Any]) -> SplitConfig:
    section = check.section(top, "split", {f.name for f in dataclasses.fields(SplitConfig)})
    fractions = [check.number(section, "split", key, default, minimum=0.0, maximum=1.0)
                 for key, default in (("train", 0.6), ("val", 0.2), ("test", 0.2))]
    if abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] == 0 or fractions[1] == 0:
        check.fail("split", f"train/val/test fractions {fractions} must sum to 1 with train and val > 0",
                   "use e.g. train: 0.6, val: 0.2, test: 0.2")
    stratify = section.get("stratify", "scanner")
    if stratify is not None and not (isinstance(stratify, str) and stratify):
        check.fail("split.stratify", f"must be a column name or null, got {stratify!r}", "use scanner or null")
    return SplitConfig(*fractions, seed=check.integer(section, "split", "seed", 0, minimum=0), stratify=stratify,
                       use_manifest_split=check.boolean(section, "split", "use_manifest_split", True))


def _box(check: ConfigReader, top: Mapping[str, Any]) -> BoxSpec:
    section = check.section(top, "box", {"shape", "spacing_mm", "percentiles"})
    shape = section.get("shape", [112, 128, 32])
    if not isinstance(shape, list) or len(shape) != 3 or not all(is_whole(s) and s >= 2 for s in shape):
        check.fail("box.shape", f"must be three whole numbers >= 2, got {shape!r}", "write e.g. [112, 128, 32]")
    spacing = section.get("spacing_mm", [1.4, 1.5, 4.5])
    if spacing is not None and (not isinstance(spacing, list) or len(spacing) != 3
                                or not all(is_finite_number(s) and s > 0 for s in spacing)):
        check.fail("box.spacing_mm", f"must be three positive numbers (mm) or null, got {spacing!r}",
                   "write e.g. [1.4, 1.5, 4.5], or null to fit each brain into the box")
    percentiles = section.get("percentiles", [1.0, 99.0])
    if percentiles is not None and (
            not isinstance(percentiles, list) or len(percentiles) != 2 or not all(is_finite_number(p) for p in percentiles)
            or not 0 <= percentiles[0] < percentiles[1] <= 100):
        check.fail("box.percentiles", f"must be [low, high] with 0 <= low < high <= 100 or null, got {percentiles!r}",
                   "use [1, 99], or null to keep the prepared intensities")
    return BoxSpec(tuple(int(s) for s in shape), None if spacing is None else tuple(float(s) for s in spacing),
                   None if percentiles is None else tuple(float(p) for p in percentiles))


def load_volume_config(path: str | os.PathLike[str]) -> VolumeConfig:
    """Read and validate a ``train-volume`` config YAML file (errors: :func:`~wmhkit.train.config.load_config`)."""
    path = Path(path)
    return parse_volume_config(read_config_yaml(path, "volume-cpu"), source=path)
