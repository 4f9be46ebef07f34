"""Export trained networks as a model folder: both trainers write through :func:`write_trained_model`."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import wmhkit
from wmhkit.io.manifest import Manifest
from wmhkit.io.provenance import sidecar_path
from wmhkit.models.folder import write_model_folder
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


def write_trained_model(
    out_dir: str | os.PathLike[str],
    record: Mapping[str, Any],
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    *,
    trained_on: str,
    provenance: Mapping[str, Any],
) -> Path:
    """Write a trained model's folder (:func:`wmhkit.models.folder.write_model_folder`) and return it.

    ``record``: the ``model.yaml`` entries of the model's kind, to which ``wmhkit_version`` and ``trained_on``
    (a short description of the training data) are appended; ``weights``: weights name (plane, or ``"model"``)
    → ``state_dict``; ``provenance``: config, config hash, data, seed, device, metrics (the writer adds the
    software versions and the model hash, the one ``predict`` puts in its records and sidecars).
    """
    description = plain({**record, "wmhkit_version": wmhkit.__version__, "trained_on": trained_on})
    write_model_folder(out_dir, description, weights, plain(dict(provenance)))
    return Path(out_dir)
