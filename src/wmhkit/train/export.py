"""Write a model folder (the contract shared by ``train``, ``train-volume`` and ``predict``).

Layout::

    model.yaml        kind, network, planes, fusion, threshold, prepare, input geometry,
                      wmhkit_version, trained_on
    weights/<plane>.pt  plain state_dicts (torch.load(..., weights_only=True))
    provenance.json   config, config hash, data (manifest sha256), seed, versions,
                      device, per-stage best metric

``provenance.json`` records the model hash of :func:`wmhkit.infer.model_folder.model_hash`,
the same one ``predict`` puts in its completion records and sidecars.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

import wmhkit
from wmhkit.infer.model_folder import (
    KIND_2_5D,
    MODEL_YAML,
    PROVENANCE_JSON,
    WEIGHTS_DIR,
    model_hash,
    save_weights,
)
from wmhkit.io.atomic import write_text_atomic
from wmhkit.io.manifest import Manifest
from wmhkit.io.provenance import sidecar_path, software_versions
from wmhkit.train.config_reader import plain

log = logging.getLogger(__name__)


def prepare_parameters(manifest: Manifest) -> dict[str, Any] | None:
    """The prepare options recorded in the first scan's FLAIR sidecar, for the exported ``model.yaml``.

    Both trainers record them so that ``predict`` prepares scans as training saw them.
    A manifest whose FLAIRs have no ``wmhkit prepare`` sidecar (scans prepared by another
    tool) trains, with a warning: predict then uses the default prepare options.
    """
    for row in manifest.rows():
        sidecar = sidecar_path(manifest.path(row, "flair"))
        if sidecar.is_file():
            return json.loads(sidecar.read_text(encoding="utf-8")).get("parameters")
        break
    log.warning("%s: the prepared FLAIRs have no wmhkit prepare sidecar; model.yaml records no prepare options "
                "(predict will prepare scans with the defaults)", manifest.source)
    return None


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
        save_weights(state, out_dir / WEIGHTS_DIR / f"{plane}.pt")
    description = {
        "kind": KIND_2_5D,
        "network": dict(network),
        "planes": list(plane_weights),
        "fusion": fusion,
        "threshold": float(threshold),
        "prepare": None if prepare is None else dict(prepare),
        "input": dict(input_geometry),
        "wmhkit_version": wmhkit.__version__,
        "trained_on": trained_on,
    }
    write_text_atomic(out_dir / MODEL_YAML, yaml.safe_dump(plain(description), sort_keys=False))
    record = {**plain(dict(provenance)), "versions": software_versions(), "model_hash": model_hash(out_dir)}
    write_text_atomic(out_dir / PROVENANCE_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out_dir
