"""Training config: a YAML file → validated, frozen dataclasses.

Every error is a :class:`ConfigError` naming the file and the key path
(``stages[1].epochs``), what was wrong and how to fix it. Unknown keys are
errors too (a typo must not silently fall back to a default).

Top-level keys (defaults in brackets)::

    name            run name                                    [file stem]
    seed            non-negative integer                        [0]
    manifest        prepared manifest, relative to the config   [none: give --manifest]
    network         {width: 1.0, decoder_batch_norm: true}
    init            random | imagenet | model                   [random]
    imagenet_weights  torchvision vgg16 weights file (init: imagenet)
    init_model      model folder whose per-plane weights the first stage starts
                    from (init: model; same network width); relative to the config
    planes          subset of [axial, sagittal, coronal]        [all three]
    fusion          mean | median | max                         [mean]
    threshold       probability threshold in (0, 1)             [0.5]
    parallel_planes planes trained at once in worker processes  [1]
    device          auto | cpu | cuda                           [auto]
    tensorboard     also log to TensorBoard when installed      [true]
    data            {pad_shape: [256,256,256], patch_size: 64, min_lesion_voxels: 1,
                     background_fraction: 0.0, balance_by: null}
                    background_fraction, in [0, 1): share of the training (and
                    validation) slices cut from lesion-free blocks inside the
                    brain; 0 keeps only the lesion blocks (M3SL).
                    balance_by: a manifest column (e.g. dataset) whose values
                    get equal shares of each epoch's slices and of the
                    validation slices, whatever their numbers of lesion blocks;
                    null draws every slice alike
    loss            {alpha: 0.25, gamma: 2.0, dice_weight: 1.0, focal_weight: 1.0}
    augmentation    {flip: true, rotate90: false, intensity_scale: 0.0, intensity_shift: 0.0, noise_std: 0.0}
    stages          list of stages, run in order (below)

Stage keys::

    name            unique stage name                           [labels]
    labels          bronze | silver | gold
    bronze_methods  bronze methods to use                       [every bronze_<m> column]
    bronze_combine  each | union | majority                     [union]
    scans           all | without_gold | with_gold              [all]
    freeze          conv layers frozen (0–13)                   [bronze 0, silver 5, gold 10]
    epochs, batch_size, learning_rate, weight_decay             [20, 16, 1e-4, 0.0]
    scheduler       constant | cosine                           [constant]
    val_fraction    bronze/silver validation share              [0.2]
    folds           gold cross-validation folds (1 = no CV)     [5]
    gold_val_fraction  gold validation share of all gold scans  [0.1]
    early_stopping  {patience: 10, min_delta: 0.0} or null      [patience 10]
    slices_per_epoch   train slices drawn per epoch (null = all) [null]
    val_slices      validation slices kept (null = all)         [null]

Gold splits are 70:10:20 with 5 folds: each fold's test set is a fifth of the
gold scans, validation a tenth of all gold scans, the rest trains. Silver
splits are stratified by ``scanner``.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wmhkit.train.config_reader import ConfigError, ConfigReader, RecordedConfig, read_config_yaml

LABEL_KINDS = ("bronze", "silver", "gold")
BRONZE_COMBINE = ("each", "union", "majority")
SCAN_SELECTIONS = ("all", "without_gold", "with_gold")
PLANES = ("axial", "sagittal", "coronal")
FUSIONS = ("mean", "median", "max")
SCHEDULERS = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
INITS = ("random", "imagenet", "model")
#: Conv layers frozen by default per label kind (issue 4: 0 / 5 / 10).
DEFAULT_FREEZE = {"bronze": 0, "silver": 5, "gold": 10}
#: Keys that change how a run is executed but not what it computes (left out of the config hash).
EXECUTION_KEYS = ("parallel_planes", "tensorboard", "manifest", "imagenet_weights")


@dataclass(frozen=True)
class NetworkConfig:
    width: float = 1.0
    decoder_batch_norm: bool = True


@dataclass(frozen=True)
class DataConfig:
    pad_shape: tuple[int, int, int] = (256, 256, 256)
    patch_size: int = 64
    min_lesion_voxels: int = 1
    #: Share of the slices cut from lesion-free brain blocks (0 = lesion blocks only, as in M3SL).
    background_fraction: float = 0.0
    #: Manifest column whose groups share each epoch's (and the validation) slices equally; None: uniform draw.
    balance_by: str | None = None


@dataclass(frozen=True)
class LossConfig:
    alpha: float = 0.25
    gamma: float = 2.0
    dice_weight: float = 1.0
    focal_weight: float = 1.0


@dataclass(frozen=True)
class AugmentationConfig:
    flip: bool = True
    rotate90: bool = False
    intensity_scale: float = 0.0
    intensity_shift: float = 0.0
    noise_std: float = 0.0


@dataclass(frozen=True)
class EarlyStopping:
    """Stop after ``patience`` epochs whose validation metric beat the best by no more than ``min_delta``
    (both families; :class:`wmhkit.train.loop.LoopSettings`)."""

    patience: int = field(default=10, metadata={"minimum": 1})
    min_delta: float = 0.0


@dataclass(frozen=True)
class StageConfig:
    name: str
    labels: str
    bronze_methods: tuple[str, ...] = ()
    bronze_combine: str = "union"
    scans: str = "all"
    freeze: int = 0
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    scheduler: str = "constant"
    val_fraction: float = 0.2
    folds: int = 5
    gold_val_fraction: float = 0.1
    early_stopping: EarlyStopping | None = EarlyStopping()
    slices_per_epoch: int | None = None
    val_slices: int | None = None

    @property
    def cross_validated(self) -> bool:
        """True for a gold stage with more than one fold."""
        return self.labels == "gold" and self.folds > 1


@dataclass(frozen=True)
class TrainConfig(RecordedConfig):
    name: str
    stages: tuple[StageConfig, ...]
    seed: int = 0
    manifest: str | None = None
    network: NetworkConfig = NetworkConfig()
    init: str = "random"
    imagenet_weights: str | None = None
    init_model: str | None = None
    planes: tuple[str, ...] = PLANES
    fusion: str = "mean"
    threshold: float = 0.5
    parallel_planes: int = 1
    device: str = "auto"
    tensorboard: bool = True
    data: DataConfig = DataConfig()
    loss: LossConfig = LossConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    source: str | None = field(default=None, compare=False)
    execution_keys = EXECUTION_KEYS

    def identity(self) -> dict[str, Any]:
        """The settings that determine the trained weights (for the config hash)."""
        record = super().identity()
        for option, unset in (("background_fraction", 0.0), ("balance_by", None)):
            if getattr(self.data, option) == unset:  # keeps the hash of configs written before the option
                record["data"].pop(option)
        return record


def shipped_configs() -> list[str]:
    """Names of the configs shipped in ``wmhkit/configs`` (``m3sl``, ``m3sl-cpu``, ...)."""
    folder = resources.files("wmhkit") / "configs"
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A config file path: an existing file as given, else the shipped config of that name.

    Raises
    ------
    ConfigError
        When it is neither a file nor a shipped config name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml")
    if name in shipped_configs():
        return Path(str(resources.files("wmhkit") / "configs" / f"{name}.yaml"))
    raise ConfigError(path, "is neither a config file nor a shipped config name",
                      f"give a YAML file or one of {', '.join(shipped_configs())}")


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a training config YAML file.

    Raises
    ------
    ConfigError
        For a missing or unreadable file and for any invalid key (named in the message).
    """
    path = Path(path)
    return parse_config(read_config_yaml(path, "m3sl, m3sl-cpu"), source=path)


def parse_config(raw: Any, *, source: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Validate a config mapping (as read from YAML) into a :class:`TrainConfig`."""
    where = Path(source) if source is not None else None
    reader = ConfigReader(where)
    top = reader.top(raw, TrainConfig)
    default_name = where.stem if where is not None else "run"
    stages_raw = top.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(where, "key 'stages' must be a non-empty list of stages", "add at least one stage (labels: gold)")
    stages = tuple(_stage(reader, item, f"stages[{i}]") for i, item in enumerate(stages_raw))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(where, f"stages: names {names} are not unique", "give each stage its own name")
    for stage in stages[:-1]:
        if stage.cross_validated:
            raise ConfigError(where, f"stages: cross-validated gold stage {stage.name!r} must be the last stage",
                              "move it last or set folds: 1")
    init = reader.choice(top, "", "init", INITS, "random")
    init_model = reader.path(top, "", "init_model")
    if (init == "model") != (init_model is not None):
        raise ConfigError(where, "init: model and init_model go together",
                          "set init: model with init_model: MODEL_FOLDER, or remove init_model")
    planes = tuple(reader.string_list(top, "", "planes", list(PLANES)))
    for plane in planes:
        if plane not in PLANES:
            raise ConfigError(where, f"planes: {plane!r} is not one of {list(PLANES)}", "use axial, sagittal, coronal")
    if not planes or len(set(planes)) != len(planes):
        raise ConfigError(where, f"planes: {list(planes)} must be non-empty without repeats", "list each plane once")
    config = TrainConfig(
        name=reader.string(top, "", "name", default_name),
        stages=stages,
        seed=reader.integer(top, "", "seed", 0, minimum=0),
        manifest=reader.path(top, "", "manifest"),
        network=reader.dataclass_section(top, "network", NetworkConfig),
        init=init,
        imagenet_weights=reader.path(top, "", "imagenet_weights"),
        init_model=init_model,
        planes=planes,
        fusion=reader.choice(top, "", "fusion", FUSIONS, "mean"),
        threshold=reader.number(top, "", "threshold", 0.5, minimum=0.0, maximum=1.0, open_interval=True),
        parallel_planes=reader.integer(top, "", "parallel_planes", 1, minimum=1),
        device=reader.choice(top, "", "device", DEVICES, "auto"),
        tensorboard=reader.boolean(top, "", "tensorboard", True),
        data=reader.dataclass_section(top, "data", DataConfig),
        loss=reader.dataclass_section(top, "loss", LossConfig),
        augmentation=reader.dataclass_section(top, "augmentation", AugmentationConfig),
        source=None if where is None else str(where),
    )
    _check_values(reader, config)
    return config


def _stage(reader: ConfigReader, raw: Any, at: str) -> StageConfig:
    item = reader.mapping(raw, at)
    reader.known(item, at, {f.name for f in dataclasses.fields(StageConfig)})
    labels = reader.choice(item, at, "labels", LABEL_KINDS, None)
    early = item.get("early_stopping", {})
    early_stopping = None if early is None else reader.dataclass_section({"early_stopping": early}, "early_stopping",
                                                                         EarlyStopping, prefix=f"{at}.")
    slices = item.get("slices_per_epoch")
    val_slices = item.get("val_slices")
    return StageConfig(
        name=reader.string(item, at, "name", labels),
        labels=labels,
        bronze_methods=tuple(reader.string_list(item, at, "bronze_methods", [])),
        bronze_combine=reader.choice(item, at, "bronze_combine", BRONZE_COMBINE, "union"),
        scans=reader.choice(item, at, "scans", SCAN_SELECTIONS, "all"),
        freeze=reader.integer(item, at, "freeze", DEFAULT_FREEZE[labels], minimum=0, maximum=13),
        epochs=reader.integer(item, at, "epochs", 20, minimum=1),
        batch_size=reader.integer(item, at, "batch_size", 16, minimum=1),
        learning_rate=reader.number(item, at, "learning_rate", 1e-4, minimum=0.0, open_interval=True),
        weight_decay=reader.number(item, at, "weight_decay", 0.0, minimum=0.0),
        scheduler=reader.choice(item, at, "scheduler", SCHEDULERS, "constant"),
        val_fraction=reader.number(item, at, "val_fraction", 0.2, minimum=0.0, maximum=1.0, open_interval=True),
        folds=reader.integer(item, at, "folds", 5, minimum=1),
        gold_val_fraction=reader.number(item, at, "gold_val_fraction", 0.1, minimum=0.0, maximum=1.0,
                                        open_interval=True),
        early_stopping=early_stopping,
        slices_per_epoch=None if slices is None else reader.integer(item, at, "slices_per_epoch", 0, minimum=1),
        val_slices=None if val_slices is None else reader.integer(item, at, "val_slices", 0, minimum=1),
    )


def _check_values(reader: ConfigReader, config: TrainConfig) -> None:
    fail = reader.fail
    if not 0 < config.network.width <= 4:
        fail("network.width", f"must be in (0, 4], got {config.network.width}", "use 1.0 (VGG16) or e.g. 0.0625 on a CPU")
    patch = config.data.patch_size
    if patch < 16 or patch % 16:
        fail("data.patch_size", f"must be a multiple of 16 (the U-Net downsamples 16×), got {patch}", "use 32 or 64")
    if any(size < patch for size in config.data.pad_shape):
        fail("data.pad_shape", f"{list(config.data.pad_shape)} is smaller than patch_size {patch}",
             "make every size at least patch_size")
    if config.data.min_lesion_voxels < 1:
        fail("data.min_lesion_voxels", "must be at least 1", "use 1")
    if not 0.0 <= config.data.background_fraction < 1.0:
        fail("data.background_fraction", f"must be in [0, 1), got {config.data.background_fraction}",
             "use 0 (lesion blocks only) or e.g. 0.3 to add lesion-free brain blocks")
    if not 0 <= config.loss.alpha <= 1:
        fail("loss.alpha", f"must be in [0, 1], got {config.loss.alpha}", "use 0.25")
    if config.init == "imagenet" and config.network.width <= 0:
        fail("init", "imagenet needs a positive width", "use width 1.0")
