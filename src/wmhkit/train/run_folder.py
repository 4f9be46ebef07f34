"""A training run folder: started once, resumed only with the same identity.

Both trainers (``wmhkit train`` and ``wmhkit train-volume``) keep their run in one
folder whose ``run.json`` is written last, as the commit marker of a started run.
It records the run's identity hash over the config (without execution-only keys),
the manifest's SHA-256 and the device type, so a run resumed with another config,
another manifest or on another kind of device is refused instead of silently mixing
checkpoints. Files written before ``run.json`` (``config.yaml``, ``splits.tsv``) are
rewritten identically from the plan, so a folder killed before its commit marker
can be started again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from wmhkit.errors import OutputError
from wmhkit.io.atomic import is_temporary, write_text_atomic
from wmhkit.train.checkpoint import CheckpointError, config_hash

RUN_JSON = "run.json"


def run_identity(config: Mapping[str, Any], manifest_sha256: str, device: torch.device) -> str:
    """The identity hash of a run: config (execution-only keys left out), manifest content, device type.

    Examples
    --------
    >>> a = run_identity({"lr": 1e-3}, "ab" * 32, torch.device("cpu"))
    >>> a == run_identity({"lr": 1e-3}, "cd" * 32, torch.device("cpu"))
    False
    """
    return config_hash({"config": dict(config), "manifest_sha256": manifest_sha256, "device": device.type})


def start_run_folder(out_dir: Path, *, digest: str, setup_files: Mapping[str, str], record: Mapping[str, Any],
                     resume: bool) -> None:
    """Start ``out_dir`` as a new run, or check that a resumed one has the same ``digest``.

    Parameters
    ----------
    out_dir
        The run folder (created when missing).
    digest
        :func:`run_identity` of the run.
    setup_files
        File name → text written before ``run.json`` (e.g. ``config.yaml``, ``splits.tsv``).
    record
        Further ``run.json`` entries (manifest path, seed, name, device, ...).
    resume
        Continue an existing run.

    Raises
    ------
    OutputError
        When ``out_dir`` holds a run and ``resume`` is False, or holds other files.
    CheckpointError
        When the existing run has another identity (config, manifest or device).
    """
    run_json = out_dir / RUN_JSON
    if run_json.exists():
        if not resume:
            raise OutputError(f"{out_dir} already holds a training run; pass --resume to continue it or choose a new --out")
        recorded = json.loads(run_json.read_text(encoding="utf-8"))
        if recorded.get("config_hash") != digest:
            raise CheckpointError(run_json, "the run folder was started with another config, manifest or device",
                                  "resume with the original config, manifest and device, or choose a new --out")
        return
    if out_dir.exists() and not _is_unstarted(out_dir, setup_files):
        raise OutputError(f"{out_dir} exists and is not empty; choose a new or empty folder for --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in setup_files.items():
        write_text_atomic(out_dir / name, text)
    write_text_atomic(run_json, json.dumps({**record, "config_hash": digest}, indent=2, sort_keys=True) + "\n")


def _is_unstarted(out_dir: Path, setup_files: Mapping[str, str]) -> bool:
    """True for an empty folder, or one holding only what a killed :func:`start_run_folder` left."""
    return all(path.is_file() and (path.name in setup_files or is_temporary(path)) for path in out_dir.iterdir())
