"""Provenance sidecars: what made an output, from which inputs, with which settings.

Sidecars are deterministic (sorted keys, no timestamps) so that the same inputs
and parameters give byte-identical JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from wmhkit.io.atomic import write_text_atomic

_HASH_CHUNK_BYTES = 1 << 20
_VERSIONED_PACKAGES = ("wmhkit", "numpy", "nibabel", "SimpleITK", "scipy", "torch")


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
        Further JSON-serialisable facts (model hash, device, ...); keys must not
        repeat the standard ones.

    Raises
    ------
    ValueError
        When ``extra`` repeats a standard key or a value is NaN/Inf.

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
    try:
        text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"provenance of {output.name} holds NaN or Inf, which JSON cannot store: {exc}") from exc
    path = sidecar_path(output)
    write_text_atomic(path, text + "\n")
    return path


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
