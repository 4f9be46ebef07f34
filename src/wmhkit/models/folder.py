"""Model folders: the one thing ``wmhkit predict`` needs. This module is their only reader and writer.

Layout (written by :func:`write_model_folder`: ``wmhkit train`` and ``wmhkit train-volume``
export through it)::

    MODEL/
        model.yaml          kind, network, inputs, planes, fusion, threshold, prepare, ...
        weights/<name>.pt   plain state_dicts: one per plane (``axial.pt``, ...) for
                            ``segmentation-2.5d``, ``model.pt`` for other kinds
        provenance.json     training config, config hash, data, seed, versions, metrics

``model.yaml`` keys read here:

``kind``
    One of :data:`KINDS`: ``"segmentation-2.5d"`` (one VGG16 U-Net per plane),
    ``"volume"`` (a weak-label GP-Unet: volume, volume bins or Fazekas grade, per
    ``target.labels``) or ``"segmentation-3d"`` (the GP-Unet's strong-label twin).
``network``
    ``{name: <network of :data:`wmhkit.models.networks.NETWORKS` the kind takes>, **constructor kwargs}``.
``inputs``
    Prepared images stacked as input channels, in order (default ``[flair]``).
``planes``
    For 2.5D models: the planes, one network each (default axial, sagittal, coronal).
``fusion``, ``threshold``
    Default fusion rule of the plane probabilities and binarisation threshold.
``thick_slice_planes``
    For 2.5D models, the planes run on a scan with one thick-slice axis (an axis of
    the prepared grid whose spacing is at least ``prepare.thick_slice_mm``):
    ``all`` (default) runs every plane; ``acquired`` runs only the plane whose slices
    are the acquired slices (the one across the thick axis: ``axial`` for an axial 2D
    FLAIR, whichever RAS axis it lies along), since the other planes' slices of an
    8 mm acquisition are 8 mm wide smears.
``prepare``
    The :class:`~wmhkit.preprocess.pipeline.PrepareOptions` used in training
    (``PrepareOptions.to_dict()``), so that predict prepares scans identically,
    including its working spacing (``working_spacing_mm``).

Other keys (``wmhkit_version``, ``trained_on``, input geometry, ...) are kept
in :attr:`ModelSpec.record` for provenance.

The model hash is the SHA-256 of the lines ``<relative path> <sha256 of file>``
over ``model.yaml`` and every ``weights/*.pt``, sorted by path: it changes when
the configuration or any weight changes, and not when the folder is moved.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from wmhkit.errors import InputError
from wmhkit.io.atomic import atomic_path, write_text_atomic
from wmhkit.io.provenance import sha256_file, software_versions
from wmhkit.models.networks import build_network, network_type
from wmhkit.nn import gp_unet, vgg_unet
from wmhkit.nn.plane_fusion import FUSION_RULES, check_threshold
from wmhkit.preprocess.patches import PLANE_AXIS
from wmhkit.preprocess.pipeline import PrepareOptions
from wmhkit.preprocess.resample import thick_axes

MODEL_YAML = "model.yaml"
WEIGHTS_DIR = "weights"
PROVENANCE_JSON = "provenance.json"
#: Weights name of single-network kinds (``weights/model.pt``).
SINGLE_WEIGHTS = "model"

KIND_2_5D = "segmentation-2.5d"
KIND_3D = "segmentation-3d"
KIND_VOLUME = "volume"


@dataclass(frozen=True)
class ModelKind:
    """A registered model kind: the ``networks`` (names in :data:`wmhkit.models.networks.NETWORKS`) a folder of
    this kind may name, and whether it holds one ``per_plane`` (``weights/<plane>.pt``) or one (``weights/model.pt``)."""

    networks: tuple[str, ...]
    per_plane: bool


#: The kind registry: ``model.yaml`` ``kind`` → what its folder holds (its predictor:
#: :data:`wmhkit.models.predictors.PREDICTORS`).
KINDS: dict[str, ModelKind] = {
    KIND_2_5D: ModelKind((vgg_unet.NETWORK_NAME,), per_plane=True),
    KIND_3D: ModelKind((gp_unet.NETWORK_NAME,), per_plane=False),
    KIND_VOLUME: ModelKind((gp_unet.NETWORK_NAME,), per_plane=False),
}

DEFAULT_PLANES: tuple[str, ...] = ("axial", "sagittal", "coronal")
DEFAULT_INPUTS: tuple[str, ...] = ("flair",)
#: Prepared images a network may take as input channels.
INPUT_ROLES: tuple[str, ...] = ("flair", "t1")
#: ``thick_slice_planes`` rules (see the module docstring).
THICK_SLICE_RULES: tuple[str, ...] = ("all", "acquired")

@dataclass(frozen=True)
class ModelSpec:
    """The validated content of ``model.yaml``: its keys (see the module docstring; ``planes`` empty for
    kinds other than 2.5D, ``threshold`` in (0, 1]) and ``record``, the whole parsed file."""

    kind: str
    network: dict[str, Any]
    inputs: tuple[str, ...]
    planes: tuple[str, ...]
    fusion: str
    threshold: float
    prepare: PrepareOptions
    record: dict[str, Any]
    thick_slice_planes: str = "all"

    @property
    def weight_names(self) -> tuple[str, ...]:
        """Stems of the weights files: the planes for 2.5D models, else ``("model",)``."""
        return self.planes if KINDS[self.kind].per_plane else (SINGLE_WEIGHTS,)

    def planes_for(self, spacing_mm: tuple[float, float, float]) -> tuple[str, ...]:
        """The planes to run on a prepared scan of voxel size ``spacing_mm`` (RAS order, mm).

        Every plane, unless the rule is ``acquired`` and exactly one axis is thick
        (``>= prepare.thick_slice_mm``) and the model has the plane across it.

        Examples
        --------
        >>> spec = ModelSpec(KIND_2_5D, {}, ("flair",), DEFAULT_PLANES, "mean", 0.5, PrepareOptions(), {}, "acquired")
        >>> spec.planes_for((1.0, 1.0, 6.5)), spec.planes_for((1.0, 8.0, 1.0)), len(spec.planes_for((1.0, 1.0, 1.0)))
        (('axial',), ('coronal',), 3)
        """
        thick = thick_axes(spacing_mm, self.prepare.thick_slice_mm)
        if self.thick_slice_planes == "all" or len(thick) != 1:
            return self.planes
        across = [plane for plane in self.planes if PLANE_AXIS[plane] == thick[0]]
        return tuple(across) or self.planes


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ``folder`` and its ``spec``, with its ``networks`` (weights name: plane, or ``"model"`` → network)
    built, weights loaded, in eval mode on ``device``; the networks' input height and width must be multiples of
    ``size_multiple``; ``model_hash``: :func:`model_hash`."""

    folder: Path
    spec: ModelSpec
    networks: dict[str, nn.Module]
    size_multiple: int
    model_hash: str
    device: torch.device


def weights_path(folder: str | os.PathLike[str], name: str) -> Path:
    """``folder/weights/<name>.pt``."""
    return Path(folder) / WEIGHTS_DIR / f"{name}.pt"


def read_model_spec(folder: str | os.PathLike[str]) -> ModelSpec:
    """Read and validate ``model.yaml`` and check that every file of the folder is present.

    Raises
    ------
    InputError
        Naming the missing file (``model.yaml``, ``provenance.json``, a weights
        file) or the invalid ``model.yaml`` entry.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "model folder does not exist", "pass --model a folder written by wmhkit train")
    yaml_path = folder / MODEL_YAML
    _require_file(yaml_path, "the model folder has no model.yaml")
    try:
        record = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(yaml_path, f"not readable YAML ({exc})", "restore model.yaml from the training run") from exc
    if not isinstance(record, dict):
        raise InputError(yaml_path, "model.yaml is not a mapping of keys", "restore model.yaml from the training run")
    spec = _spec_from_record(record, yaml_path)
    _require_file(folder / PROVENANCE_JSON, "the model folder has no provenance.json")
    for name in spec.weight_names:
        _require_file(weights_path(folder, name), f"the model folder has no weights file for {name!r}")
    return spec


def model_hash(folder: str | os.PathLike[str]) -> str:
    """SHA-256 identifying a model: over ``model.yaml`` and ``weights/*.pt`` (see the module docstring).

    Returns
    -------
    str
        64 hex digits.
    """
    folder = Path(folder)
    files = [folder / MODEL_YAML, *sorted((folder / WEIGHTS_DIR).glob("*.pt"))]
    lines = [f"{path.relative_to(folder).as_posix()} {sha256_file(path)}\n" for path in files]
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()


def load_model(folder: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> LoadedModel:
    """Validate a model folder, build its networks and load their weights safely.

    Weights are read with ``torch.load(..., weights_only=True)``: a file carrying a
    pickle payload is refused, never executed.

    Parameters
    ----------
    folder
        The model folder.
    device
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    InputError
        For a missing or invalid file, unsafe or corrupt weights, or weights that
        do not fit the network named in ``model.yaml``.
    """
    folder = Path(folder)
    spec = read_model_spec(folder)
    target = resolve_device(device)
    networks: dict[str, nn.Module] = {}
    size_multiple = network_type(spec.network["name"]).size_multiple
    for name in spec.weight_names:
        try:
            network = build_network(spec.network)
        except (TypeError, ValueError) as exc:
            raise InputError(folder / MODEL_YAML, f"cannot build the network ({exc})",
                             "fix the network entry of model.yaml") from exc
        network.load_state_dict(_read_state_dict(weights_path(folder, name), network))
        networks[name] = network.to(target).eval()
    return LoadedModel(folder, spec, networks, size_multiple, model_hash(folder), target)


def write_model_folder(
    folder: str | os.PathLike[str],
    record: Mapping[str, Any],
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    provenance: Mapping[str, Any],
) -> str:
    """Write a model folder atomically file by file and return its model hash.

    The one writer of model folders (training exports through it), so that a folder
    written is a folder :func:`read_model_spec` and :func:`load_model` read.

    Parameters
    ----------
    folder
        Destination (created).
    record
        The ``model.yaml`` content (YAML-ready: lists, not tuples), written in its key
        order; validated as :func:`read_model_spec` would.
    weights
        Weights name (plane, or ``"model"``) → ``state_dict``.
    provenance
        The ``provenance.json`` content (JSON-ready); ``versions`` (the software versions)
        and ``model_hash`` are added.

    Raises
    ------
    InputError
        When ``record`` is invalid (an ``InputError`` is a ``ValueError``).
    ValueError
        When ``weights`` lacks or adds a name.
    """
    folder = Path(folder)
    spec = _spec_from_record(dict(record), folder / MODEL_YAML)
    if set(weights) != set(spec.weight_names):
        raise ValueError(f"weights for {sorted(weights)} given, model.yaml needs {sorted(spec.weight_names)}")
    (folder / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
    for name in spec.weight_names:
        save_weights(weights[name], weights_path(folder, name))
    write_text_atomic(folder / MODEL_YAML, yaml.safe_dump(dict(record), sort_keys=False))
    digest = model_hash(folder)
    record_json = {**provenance, "versions": software_versions(), "model_hash": digest}
    write_text_atomic(folder / PROVENANCE_JSON, json.dumps(record_json, indent=2, sort_keys=True) + "\n")
    return digest


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a ``state_dict`` (tensors moved to the CPU) atomically and byte-deterministically.

    Written through a file object: given a path, ``torch.save`` names the archive's
    records after the (random) temporary file name, and identical weights would get
    different bytes — and a different model hash.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save({key: tensor.detach().cpu() for key, tensor in state_dict.items()}, handle)
    return path


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device, refusing CUDA where none is available.

    Raises
    ------
    ValueError
        For an unknown device, or ``cuda`` on a machine without a usable GPU.
    """
    try:
        target = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}; use cpu or cuda") from exc
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but no CUDA GPU is available; use --device cpu")
    if target.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use cpu or cuda")
    return target


def _spec_from_record(record: dict[str, Any], yaml_path: Path) -> ModelSpec:
    def invalid(reason: str) -> InputError:
        return InputError(yaml_path, reason, "fix model.yaml (or re-export the model with wmhkit train)")

    kind = record.get("kind")
    if kind not in KINDS:
        raise invalid(f"kind {kind!r} is not one of {list(KINDS)}")
    network = record.get("network")
    if not isinstance(network, dict) or not isinstance(network.get("name"), str):
        raise invalid("network must be a mapping with a name, e.g. {name: vgg16_unet, width: 0.25}")
    try:
        network_type(network["name"])
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    if network["name"] not in KINDS[kind].networks:
        raise invalid(f"network {network['name']!r} does not make a {kind!r} model; use {list(KINDS[kind].networks)}")
    inputs = tuple(record.get("inputs") or DEFAULT_INPUTS)
    if not set(inputs) <= set(INPUT_ROLES) or len(set(inputs)) != len(inputs):
        raise invalid(f"inputs {list(inputs)} must be distinct names among {list(INPUT_ROLES)}")
    planes: tuple[str, ...] = ()
    if KINDS[kind].per_plane:
        planes = tuple(record.get("planes") or DEFAULT_PLANES)
        if not set(planes) <= set(PLANE_AXIS) or len(set(planes)) != len(planes):
            raise invalid(f"planes {list(planes)} must be distinct names among {sorted(PLANE_AXIS)}")
    fusion = record.get("fusion", "mean")
    if fusion not in FUSION_RULES:
        raise invalid(f"fusion {fusion!r} is not one of {list(FUSION_RULES)}")
    thick_slice_planes = record.get("thick_slice_planes", "all")
    if thick_slice_planes not in THICK_SLICE_RULES:
        raise invalid(f"thick_slice_planes {thick_slice_planes!r} is not one of {list(THICK_SLICE_RULES)}")
    try:
        threshold = check_threshold(record.get("threshold", 0.5))
        prepare = PrepareOptions.from_dict(record.get("prepare") or {})
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from exc
    return ModelSpec(kind, dict(network), inputs, planes, fusion, threshold, prepare, record, thick_slice_planes)


def _read_state_dict(path: Path, network: nn.Module) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for unsafe or corrupt files
        raise InputError(path, f"cannot load the weights safely ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                         "restore the weights file from the training run") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "the weights file is not a plain state_dict of tensors",
                         "export the model's state_dict (wmhkit train writes model folders)")
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise InputError(
            path,
            f"weights do not fit the network of model.yaml ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} wrong-shape tensors, e.g. {(missing + unexpected + mismatched)[:3]})",
            "use the model.yaml written with these weights",
        )
    return state


def _require_file(path: Path, reason: str) -> None:
    if not path.is_file():
        raise InputError(path, reason, "pass --model a complete folder written by wmhkit train")
