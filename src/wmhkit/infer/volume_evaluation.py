"""Evaluation of weak-label (GP-Unet) models on a prepared manifest: predictions and agreement tables.

Each model is scored on its own columns: a volume model's regressed volume against
``volume_ml``, a Fazekas model's grade against ``fazekas``, so one evaluation may mix
both kinds (:data:`SCORED_COLUMNS`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from wmhkit.infer.volume import predict_scans
from wmhkit.models.predict_gp_unet import load_volume_model
from wmhkit.stats.tables import write_csv, write_tables
from wmhkit.stats.volume_models import agreement_table, confounder_table

log = logging.getLogger(__name__)

#: (reference, predicted) columns scored per model ``labels``; every other label kind is scored on volumes.
SCORED_COLUMNS: dict[str, tuple[str, str]] = {"fazekas": ("fazekas", "predicted_grade")}
_VOLUME_COLUMNS = ("volume_ml", "predicted_volume_ml")


def evaluate_volume_models(models: Mapping[str, Path], manifest: Path, out: Path,
                           scan_sets: Mapping[str, Sequence[str]]) -> list[Path]:
    """Predict every (model, scan set); write ``predictions.csv``, ``agreement.*`` and ``confounders.*`` into ``out``.

    Parameters
    ----------
    models
        Display name → model folder written by ``wmhkit train-volume``.
    manifest
        Prepared manifest holding the reference columns.
    out
        Output folder.
    scan_sets
        Set name (e.g. ``test``) → scan IDs.

    Returns
    -------
    list of Path
        The files written. A table with too few scans in a group (ICC needs 3, the OLS 5)
        is left out with a warning.
    """
    frames: list[pd.DataFrame] = []
    scored: dict[str, tuple[str, str]] = {}
    for name, folder in models.items():
        model = load_volume_model(folder)
        scored[name] = SCORED_COLUMNS.get(model.labels, _VOLUME_COLUMNS)
        for set_name, scan_ids in scan_sets.items():
            frame = predict_scans(model, manifest, scan_ids=list(scan_ids))
            frame.insert(0, "set", set_name)
            frame.insert(0, "model", name)
            frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    written = [write_csv(predictions, out / "predictions.csv")]
    for table_name, build in (("agreement", agreement_table), ("confounders", confounder_table)):
        try:
            parts = [build(predictions[predictions["model"] == name], reference=reference, predicted=predicted)
                     for name, (reference, predicted) in scored.items()]
        except ValueError as exc:  # too few scans in a set for ICC (3) or the OLS (5)
            log.warning("%s table not written: %s", table_name, exc)
            continue
        written.extend(write_tables(pd.concat(parts, ignore_index=True), out, table_name))
    return written


def evaluate_test_split(models: Mapping[str, Path], manifest: Path, splits: Mapping[str, str],
                        out: Path) -> list[Path]:
    """:func:`evaluate_volume_models` on the scans a run held out (role ``test`` in ``splits``, scan → role).

    Returns the files written; none when the run has no test scans.
    """
    test_ids = [scan for scan, role in splits.items() if role == "test"]
    return evaluate_volume_models(models, manifest, out, {"test": test_ids}) if test_ids else []
