"""Provenance sidecars: what made an output, from which inputs, with which settings.

Every sidecar follows ``wmhkit/schemas/sidecar.schema.json`` (checked by
:func:`validate_sidecar`; :func:`write_sidecar` refuses to write one that does
not): the step, the inputs as paths relative to the output's folder with their
sha256, the parameters, the seed, the software versions, the compute device and,
when a model was used, the model hash.

Sidecars are byte-deterministic: keys sorted, fixed indentation, UTF-8, no
timestamps, host names, user names or absolute paths, so the same inputs and
parameters give byte-identical JSON wherever and whenever they are run. Nothing
time-dependent is recorded (run times belong in logs), so no field has to be
excluded from the determinism guarantee.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema

from wmhkit.errors import InputError
from wmhkit.io.atomic import write_text_atomic

_HASH_CHUNK_BYTES = 1 << 20
_VERSIONED_PACKAGES = ("wmhkit", "numpy", "nibabel", "SimpleITK", "scipy", "torch")
#: Schema file (package data) every sidecar must validate against.
SIDECAR_SCHEMA = "sidecar.schema.json"
#: Device of the steps that run on numpy/SciPy/SimpleITK only (steps using torch pass their own).
CPU_DEVICE = {"type": "cpu"}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of Python and the packages whose behaviour shapes outputs (absent ones omitted)."""
    versions = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """The JSON sidecar path of an output: ``x.nii.gz`` → ``x.json``, ``x.csv`` → ``x.csv.json``."""
    output = Path(output)
    name = output.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def describe_inputs(
    inputs: Mapping[str, str | os.PathLike[str] | None], relative_to: str | os.PathLike[str]
) -> dict[str, dict[str, str]]:
    """Map input roles to ``{"path": relative path, "sha256": hash}`` (None entries skipped)."""
    base = Path(relative_to).resolve()
    described = {}
    for role, path in sorted(inputs.items()):
        if path is None:
            continue
        resolved = Path(path).resolve()
        described[role] = {"path": os.path.relpath(resolved, base), "sha256": sha256_file(resolved)}
    return described


def write_sidecar(
    output: str | os.PathLike[str],
    *,
    step: str,
    inputs: Mapping[str, str | os.PathLike[str] | None],
    parameters: Mapping[str, Any],
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the provenance sidecar of ``output`` atomically and return its path.

    Parameters
    ----------
    output
        The file being described (it should already exist).
    step
        Pipeline step that produced it (``"prepare"``, ``"synth"``, ...).
    inputs
        Role → input file; stored as a path relative to the output's folder plus sha256.
    parameters
        JSON-serialisable settings that determine the output.
    seed
        Random seed, when the step is stochastic.
    extra
        Further JSON-serialisable facts; keys must not repeat the standard ones.
        Steps that use a model give ``model`` (a mapping with its ``hash``) and
        ``device`` (``{"type": "cuda", "name": ..., "cuda": ...}``); without
        ``device`` the step is recorded as run on the CPU.

    Raises
    ------
    ValueError
        When ``extra`` repeats a standard key or a value is NaN/Inf.
    InputError
        When the record does not validate against the sidecar schema (e.g. a
        ``model`` input without a model hash); nothing is written then.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "flair.nii.gz").write_bytes(b"scan")
    >>> _ = (folder / "out").mkdir()
    >>> _ = (folder / "out" / "wmh.nii.gz").write_bytes(b"mask")
    >>> sidecar = write_sidecar(folder / "out" / "wmh.nii.gz", step="predict",
    ...                         inputs={"flair": folder / "flair.nii.gz"}, parameters={"threshold": 0.5})
    >>> sidecar.name
    'wmh.json'
    >>> json.loads(sidecar.read_text())["inputs"]["flair"]["path"]
    '../flair.nii.gz'
    """
    output = Path(output)
    record: dict[str, Any] = {
        "step": step,
        "output": output.name,
        "inputs": describe_inputs(inputs, output.parent),
        "parameters": _jsonable(dict(parameters)),
        "seed": seed,
        "versions": software_versions(),
    }
    if output.exists():
        record["output_sha256"] = sha256_file(output)
    if extra:
        clashes = sorted(set(extra) & set(record))
        if clashes:
            raise ValueError(f"extra provenance keys {clashes} would overwrite the standard fields; rename them")
        record.update(_jsonable(dict(extra)))
    record.setdefault("device", dict(CPU_DEVICE))
    try:
        text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"provenance of {output.name} holds NaN or Inf, which JSON cannot store: {exc}") from exc
    path = sidecar_path(output)
    _check_against_schema(json.loads(text), path)
    write_text_atomic(path, text + "\n")
    return path


def validate_sidecar(sidecar: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Check a sidecar (file or already-parsed record) against the sidecar schema.

    Parameters
    ----------
    sidecar
        Path of a ``.json`` sidecar, or its parsed content.

    Returns
    -------
    dict
        The record.

    Raises
    ------
    InputError
        When the file cannot be read or parsed, or the record breaks the schema
        (the message names the first offending field, e.g. ``inputs/flair/sha256``).

    Examples
    --------
    >>> validate_sidecar({"step": "predict", "output": "wmh.nii.gz", "inputs": {}, "parameters": {},
    ...                   "seed": None, "versions": {}, "device": {"type": "cpu"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    wmhkit.errors.InputError: sidecar breaks the schema at versions: 'python' is a required property...
    """
    path = None
    if isinstance(sidecar, Mapping):
        record = json.loads(json.dumps(sidecar))  # a plain copy, as it would be read back
    else:
        path = Path(sidecar)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"sidecar cannot be read as JSON ({exc})", "rerun the step that wrote it") from exc
    _check_against_schema(record, path)
    return record


@functools.cache
def _sidecar_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(files("wmhkit").joinpath("schemas", SIDECAR_SCHEMA).read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _check_against_schema(record: Any, path: Path | None) -> None:
    error = jsonschema.exceptions.best_match(_sidecar_validator().iter_errors(record))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        raise InputError(
            path, f"sidecar breaks the schema at {where}: {error.message}",
            f"sidecars must follow wmhkit/schemas/{SIDECAR_SCHEMA}; rerun the step that wrote it",
        )


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
