"""Write a model folder (the contract shared by ``train``, ``train-volume`` and ``predict``).

Layout::

    model.yaml        kind, network, planes, fusion, threshold, prepare, input geometry,
                      wmhkit_version, trained_on
    weights/<plane>.pt  plain state_dicts (torch.load(..., weights_only=True))
    provenance.json   config, config hash, data (manifest sha256), seed, versions,
                      device, per-stage best metric

:func:`model_hash` is the SHA-256 over ``model.yaml`` and the weights files, sorted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

import wmhkit
from wmhkit.io.atomic import atomic_path, write_text_atomic
from wmhkit.io.provenance import software_versions

KIND_SEGMENTATION_25D = "segmentation-2.5d"
MODEL_YAML = "model.yaml"
WEIGHTS_DIR = "weights"
PROVENANCE_JSON = "provenance.json"


def export_model_folder(
    out_dir: str | os.PathLike[str],
    *,
    network: Mapping[str, Any],
    plane_weights: Mapping[str, Mapping[str, torch.Tensor]],
    fusion: str,
    threshold: float,
    prepare: Mapping[str, Any] | None,
    input_geometry: Mapping[str, Any],
    trained_on: str,
    provenance: Mapping[str, Any],
) -> Path:
    """Write a 2.5D segmentation model folder and return it.

    Parameters
    ----------
    network
        ``{"name": "vgg16_unet", **constructor kwargs}``.
    plane_weights
        ``{plane: state_dict}``, one per trained plane (order kept in ``planes``).
    fusion, threshold
        How ``predict`` fuses the plane probability maps and binarises them.
    prepare
        The prepare options the training scans were prepared with (None when unknown).
    input_geometry
        ``patch_size``, ``pad_shape`` and the in-plane size multiple of inputs.
    trained_on
        Short description of the training data.
    provenance
        Config, config hash, data, seed, device, per-stage metrics (versions are added).
    """
    out_dir = Path(out_dir)
    (out_dir / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
    for plane, state in plane_weights.items():
        with atomic_path(out_dir / WEIGHTS_DIR / f"{plane}.pt") as tmp:
            torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    description = {
        "kind": KIND_SEGMENTATION_25D,
        "network": dict(network),
        "planes": list(plane_weights),
        "fusion": fusion,
        "threshold": float(threshold),
        "prepare": None if prepare is None else dict(prepare),
        "input": dict(input_geometry),
        "wmhkit_version": wmhkit.__version__,
        "trained_on": trained_on,
    }
    write_text_atomic(out_dir / MODEL_YAML, yaml.safe_dump(_plain(description), sort_keys=False))
    record = {**_plain(dict(provenance)), "versions": software_versions(), "model_hash": model_hash(out_dir)}
    write_text_atomic(out_dir / PROVENANCE_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out_dir


def model_hash(model_dir: str | os.PathLike[str]) -> str:
    """SHA-256 over ``model.yaml`` and ``weights/*`` (relative name and bytes, sorted by name)."""
    model_dir = Path(model_dir)
    files = [model_dir / MODEL_YAML, *sorted((model_dir / WEIGHTS_DIR).glob("*"))]
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(model_dir).as_posix()):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
