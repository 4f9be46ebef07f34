"""Completion records: the proof that a scan's outputs are finished and still valid.

A stage commits one small JSON per scan, ``OUT/records/<step>/<scan>.json``,
*after* all of that scan's outputs are written (atomically). It holds what the
outputs depend on — the inputs' sha256, the parameters, the model (hash) and the
software versions — and the sha256 of every output file, plus the stage's own
summary of the scan (``result``) so that a skipped scan still contributes its row
to the cohort's manifest or ``volumes.csv``.

A rerun skips a scan only when :func:`is_complete` holds: the record exists, its
dependencies equal the expected ones, and every listed output exists with its
recorded hash. Anything else — outputs without a record (a run killed
mid-scan), a hand-edited or truncated output, another parameter, model, input or
version — means the scan is recomputed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wmhkit.io.atomic import resolve_output, write_text_atomic
from wmhkit.io.provenance import describe_inputs, sha256_file, software_versions

log = logging.getLogger(__name__)

#: Folder of the completion records inside an output folder.
RECORDS_FOLDER = "records"
#: The keys of a record that must equal the expected ones.
DEPENDENCY_KEYS: tuple[str, ...] = ("step", "inputs", "parameters", "model", "versions")


def record_path(out_dir: str | os.PathLike[str], step: str, scan: str) -> Path:
    """``out_dir/records/<step>/<scan>.json`` (``scan`` must be a safe name).

    Raises
    ------
    OutputError
        When ``scan`` would escape ``out_dir``.
    """
    return resolve_output(out_dir, f"{RECORDS_FOLDER}/{step}/{scan}.json")


def expected_record(
    record: str | os.PathLike[str],
    *,
    step: str,
    inputs: Mapping[str, str | os.PathLike[str] | None],
    parameters: Mapping[str, Any],
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the record of a scan must hold for its outputs to be reused.

    Parameters
    ----------
    record
        The record's path (input paths are stored relative to its folder).
    step
        Stage name (``prepare``, ``bronze``, ``silver``, ``predict``).
    inputs
        Role → input file (None entries skipped); each is hashed (sha256).
    parameters
        JSON-serialisable settings that determine the outputs.
    model
        The model's description, holding its hash (predict), else None.

    Returns
    -------
    dict
        JSON-ready, comparable with a stored record's dependency keys.
    """
    return {
        "step": step,
        "inputs": describe_inputs(inputs, Path(record).parent),
        "parameters": _plain_json(parameters),
        "model": None if model is None else _plain_json(model),
        "versions": software_versions(),
    }


def is_complete(record: str | os.PathLike[str], expected: Mapping[str, Any]) -> bool:
    """True when ``record`` matches ``expected`` and every output it lists is intact (same sha256)."""
    return completed_result(record, expected) is not None


def completed_result(record: str | os.PathLike[str], expected: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``result`` stored in a complete record (see :func:`is_complete`), else None."""
    record = Path(record)
    try:
        stored = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(stored, dict) or any(stored.get(key) != expected.get(key) for key in DEPENDENCY_KEYS):
        log.debug("%s: record missing or stale", record)
        return None
    outputs = stored.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    for relative, digest in outputs.items():
        path = record.parent / relative
        try:
            if sha256_file(path) != digest:
                log.info("%s: %s changed since it was written; recomputing", record.stem, path.name)
                return None
        except OSError:
            return None
    result = stored.get("result")
    return result if isinstance(result, dict) else None


def commit_record(
    record: str | os.PathLike[str],
    expected: Mapping[str, Any],
    outputs: Iterable[str | os.PathLike[str]],
    result: Mapping[str, Any],
) -> Path:
    """Write the record (atomically) once every file in ``outputs`` is written.

    Parameters
    ----------
    record
        Record path (:func:`record_path`).
    expected
        The scan's :func:`expected_record`, computed *before* the outputs.
    outputs
        Every file the scan wrote; each is hashed.
    result
        JSON-serialisable summary the stage needs to rebuild the scan's row without recomputing it.
    """
    record = Path(record)
    hashes = {
        Path(os.path.relpath(os.path.abspath(path), os.path.abspath(record.parent))).as_posix(): sha256_file(path)
        for path in outputs
    }
    content = {key: expected[key] for key in DEPENDENCY_KEYS}
    content |= {"outputs": dict(sorted(hashes.items())), "result": _plain_json(result)}
    return write_text_atomic(record, json.dumps(content, indent=2, sort_keys=True, allow_nan=False) + "\n")


def discard_record(record: str | os.PathLike[str]) -> None:
    """Remove a (stale) record before its scan is recomputed, so a run killed midway leaves no record."""
    Path(record).unlink(missing_ok=True)


def _plain_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` as it reads back from JSON (tuples → lists, paths → text), for comparison."""
    return json.loads(json.dumps(value, default=os.fspath, sort_keys=True))
