"""The demo's models: shipped ``demo-*`` training configs, fitted to the demo's data, trained resumably.

Variants (M3SL paper): ``baseline`` (gold only, random init), ``m3sl`` (bronze →
silver → gold), ``transfer`` (gold only, ImageNet VGG16 encoder; only when the
weights file is given) and ``volume`` (the weak-label GP-Unet on ``volume_ml``).
The gold stages train on the demo's gold training scans with a train/validation
split (no cross-validation: the demo scores every model on scans held out of
training altogether).

Configs are the shipped ``demo-<variant>`` (full run) and
``demo-quick-<variant>`` (``--quick``) YAML files; the demo sets their seed
and fits ``data.pad_shape`` to the largest prepared scan (real clinical scans
at 0.6 mm in-plane need more room than 2 mm phantoms).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib

from wmhkit.io.manifest import read_manifest
from wmhkit.train.checkpoint import CheckpointError
from wmhkit.train.config import TrainConfig, load_config, resolve_config_path
from wmhkit.train.run_folder import RUN_JSON
from wmhkit.train.segmentation import Progress, train_run
from wmhkit.train.volume import train_volume
from wmhkit.train.volume_config import VolumeConfig, load_volume_config

log = logging.getLogger(__name__)

SEGMENTATION_VARIANTS: tuple[str, ...] = ("baseline", "m3sl", "transfer")
VOLUME_VARIANT = "volume"


def config_name(variant: str, *, quick: bool) -> str:
    """Shipped config of ``variant``: ``demo-quick-<variant>`` or ``demo-<variant>``."""
    return f"demo-quick-{variant}" if quick else f"demo-{variant}"


def fitted_pad_shape(manifest: str | os.PathLike[str], patch_size: int) -> tuple[int, int, int]:
    """Smallest pad shape holding every prepared FLAIR of ``manifest``, each axis a multiple of ``patch_size``.

    Only the NIfTI headers are read.
    """
    table = read_manifest(manifest)
    largest = [patch_size] * 3
    for row in table.rows():
        shape = nib.load(str(table.path(row, "flair"))).shape[:3]
        largest = [max(a, int(b)) for a, b in zip(largest, shape)]
    return tuple(int(math.ceil(size / patch_size) * patch_size) for size in largest)  # type: ignore[return-value]


def segmentation_config(
    variant: str, manifest: str | os.PathLike[str], *, quick: bool, seed: int,
    imagenet_weights: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """The demo config of a 2.5D variant with the demo's seed and a pad shape fitted to ``manifest``."""
    config = load_config(resolve_config_path(config_name(variant, quick=quick)))
    pad_shape = fitted_pad_shape(manifest, config.data.patch_size)
    overrides: dict[str, Any] = {"seed": seed, "data": dataclasses.replace(config.data, pad_shape=pad_shape)}
    if imagenet_weights is not None:
        overrides["imagenet_weights"] = str(imagenet_weights)
    return dataclasses.replace(config, **overrides)


def volume_config(*, quick: bool, seed: int) -> VolumeConfig:
    """The demo's weak-label volume config with the demo's seed (network and split)."""
    config = load_volume_config(resolve_config_path(config_name(VOLUME_VARIANT, quick=quick)))
    return dataclasses.replace(config, seeds=(seed,), split=dataclasses.replace(config.split, seed=seed))


def train_segmentation(config: TrainConfig, run_dir: Path, manifest: Path, *,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Train (or resume) a 2.5D variant into ``run_dir``; return its model folder and best validation IoUs."""
    resume = (run_dir / RUN_JSON).is_file()
    if run_dir.exists() and not resume:
        # Interrupted before the run was recorded: nothing in it can be resumed.
        shutil.rmtree(run_dir)
    try:
        result = train_run(config, run_dir, manifest=manifest, resume=resume, progress=progress)
    except CheckpointError as exc:
        # A retried label stage changed the training manifest: the old run cannot be continued.
        log.warning("%s cannot be resumed (%s); training again from the start", run_dir, exc)
        shutil.rmtree(run_dir)
        result = train_run(config, run_dir, manifest=manifest, resume=False, progress=progress)
    return {"model": str(result.model_dir), "resumed": resume,
            "best_val_iou": {key: unit.best_iou for key, unit in sorted(result.units.items())}}


def train_volume_model(config: VolumeConfig, run_dir: Path, manifest: Path) -> dict[str, Any]:
    """Train (or resume) the weak-label volume model into ``run_dir``; return its model folder."""
    resume = (run_dir / "config.yaml").is_file()
    result = train_volume(config, run_dir, manifest=manifest, resume=resume)
    seed = result.seeds[0]
    splits = {role: sum(1 for r in result.splits.values() if r == role) for role in ("train", "val", "test")}
    return {"model": str(seed.model_dir), "resumed": resume, "epochs": seed.epochs,
            "best_val_loss": seed.best_val_loss, "scans": splits}
