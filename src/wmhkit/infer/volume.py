"""Prediction with GP-Unet volume models and their strong-label twins: volume, attention map, segmentation.

For a weak-label model (``model.yaml`` ``kind: volume``) on one prepared scan:

1. the scan is put into the model's input box (:func:`wmhkit.train.volume_data.box_scan`);
2. the network gives the volume (``labels: volume``; its output decoded to mL
   per ``model.yaml`` ``target.transform``, see
   :func:`~wmhkit.train.volume_data.decode_volume`), or class probabilities
   whose expected bin volume is the volume (``labels: volume_bins``);
3. the class-activation **attention map** ``A = Σ_c W[o, c] F_c`` (dense weights
   times the last decoder feature maps; for classes the probability-weighted sum
   over classes) is resampled trilinearly onto the prepared grid;
4. the **segmentation** keeps the ``n = round(V / v)`` brain voxels of highest
   attention, ``v`` the prepared voxel volume: its voxel count times the voxel
   volume equals the predicted volume to within half a voxel (ties broken by voxel
   order, so the result is deterministic).

For the strong twin (``kind: segmentation-3d``) the sigmoid probability map is
resampled onto the prepared grid and thresholded at the model's threshold (0.5)
inside the brain; its volume is the voxel count times the voxel volume, and the
probability map is returned in place of an attention map.

Severity models (``labels: fazekas``) predict a grade, not a volume:
:func:`predict_severity`.

:func:`predict_gp_unet` is the one entry point for every GP-Unet kind (what
``wmhkit predict`` calls): a :class:`GpUnetPrediction` with the volume and
segmentation of a volume model or the twin, and the grade (with its attention
map, but no segmentation: a grade has no volume to match) of a Fazekas model.

:func:`predict_scans` runs a model over a prepared manifest and returns one row
per scan with the reference labels, the predictions, the Dice of the
segmentation against the gold, and ventricle, CSF and white-matter volumes (from
the manifest's ``vent_ml``/``csf_ml``/``wm_ml`` columns when present, else from
:func:`wmhkit.metrics.volume_eval.tissue_volumes`), ready for
:func:`wmhkit.stats.volume_models.volume_model_tables`.
:func:`score_segmentation_scans` gives the same rows for a ``segmentation-2.5d``
model (M3SL, baseline): its mask is the one ``wmhkit predict`` computes on the
prepared grid (:func:`wmhkit.infer.predict.segment_2_5d` with the model's fusion
and threshold), and its predicted volume is that mask's voxel count times the
voxel volume, so that voxel-wise segmenters and volume models are scored alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.special import expit  # the logistic function without exp's overflow for logits below about -88

from wmhkit.errors import InputError
from wmhkit.infer.model_folder import (
    KIND_2_5D,
    KIND_3D,
    KIND_VOLUME,
    MODEL_YAML,
    LoadedModel,
    ModelSpec,
    load_model,
    model_hash,
    read_model_spec,
    resolve_device,
    weights_path,
)
from wmhkit.infer.predict import PredictSettings, segment_2_5d
from wmhkit.infer.volumes import estimate_ventricles
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.metrics.segmentation import dice
from wmhkit.metrics.volume_eval import TISSUE_COLUMNS, tissue_volumes
from wmhkit.nn.gp_unet import GPUNet, build_network
from wmhkit.nn.planes import DEFAULT_BATCH_SIZE
from wmhkit.train.volume_data import (
    TARGET_TRANSFORMS,
    BoxScan,
    BoxSpec,
    box_scan,
    decode_volume,
    from_box,
)

log = logging.getLogger(__name__)

#: Columns of :func:`predict_scans`, in order.
SCAN_COLUMNS: tuple[str, ...] = (
    "scan_id", "subject", "session", "scanner", "split", "volume_ml", "fazekas", "predicted_volume_ml",
    "segmentation_ml", "predicted_grade", "dice", *TISSUE_COLUMNS,
)


@dataclass(frozen=True, eq=False)
class VolumeModel:
    """A loaded GP-Unet model folder (network in eval mode on ``device``).

    Attributes
    ----------
    folder, spec, network, device, model_hash
        The folder, its ``model.yaml``, the network, where it runs, and its hash.
    box
        Input box geometry.
    labels, task
        What the model was trained on (``volume``, ``volume_bins``, ``fazekas``, ``gold``) and how.
    bin_volumes_ml
        Volume each ``volume_bins`` class stands for (mL); empty otherwise.
    target_transform
        How the volume output is decoded to mL (``log1p`` or ``none``).
    """

    folder: Path
    spec: ModelSpec
    network: GPUNet
    device: torch.device
    model_hash: str
    box: BoxSpec
    labels: str
    task: str
    bin_volumes_ml: tuple[float, ...]
    target_transform: str = "none"


def load_volume_model(folder: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> VolumeModel:
    """Read a ``volume`` or ``segmentation-3d`` GP-Unet model folder and load its weights safely.

    Raises
    ------
    InputError
        For a folder that is not such a model, or weights that are unsafe, corrupt or
        do not fit the network of ``model.yaml``.
    """
    folder = Path(folder)
    spec = read_model_spec(folder)
    yaml_path = folder / MODEL_YAML
    if spec.kind not in (KIND_VOLUME, KIND_3D) or spec.network.get("name") != "gp_unet":
        raise InputError(yaml_path, f"model kind {spec.kind!r} with network {spec.network.get('name')!r} is not a GP-Unet",
                         "pass a model folder written by wmhkit train-volume")
    try:
        network = build_network(spec.network)
        box = BoxSpec.from_dict(spec.record["box"])
        target = dict(spec.record.get("target") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(yaml_path, f"invalid GP-Unet entry ({exc})", "restore model.yaml from the training run") from exc
    path = weights_path(folder, "model")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except Exception as exc:  # unpickling refusals, corrupt files and shape mismatches all mean "unusable weights"
        raise InputError(path, f"cannot load the weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                         "restore weights/model.pt from the training run") from exc
    labels = str(target.get("labels", "gold" if spec.kind == KIND_3D else "volume"))
    bin_volumes = tuple(float(v) for v in target.get("bin_volumes_ml") or ())
    if labels == "volume_bins" and len(bin_volumes) != int(target.get("n_classes", -1)):
        raise InputError(yaml_path, f"target.bin_volumes_ml has {len(bin_volumes)} values for "
                         f"{target.get('n_classes')} classes", "restore model.yaml from the training run")
    transform = str(target.get("transform", "none"))
    if transform not in TARGET_TRANSFORMS:
        raise InputError(yaml_path, f"target.transform {transform!r} is not one of {TARGET_TRANSFORMS}",
                         "restore model.yaml from the training run")
    target_device = resolve_device(device)
    return VolumeModel(folder, spec, network.to(target_device).eval(), target_device, model_hash(folder), box,
                       labels, str(target.get("task", "regression")), bin_volumes, transform)


def _as_model(model: VolumeModel | str | os.PathLike[str]) -> VolumeModel:
    return model if isinstance(model, VolumeModel) else load_volume_model(model)


def run_box(model: VolumeModel, box: BoxScan) -> tuple[np.ndarray, np.ndarray]:
    """Network output and attention maps of one box.

    Returns
    -------
    output : numpy.ndarray
        ``(outputs,)`` for the pooled head; ``(1, X, Y, Z)`` logits for the voxel head.
    attention : numpy.ndarray
        ``(outputs, X, Y, Z)`` class-activation maps (no bias).
    """
    image = torch.from_numpy(box.flair[None, None]).to(model.device)
    with torch.no_grad():
        output = model.network(image)[0].cpu().numpy()
        attention = model.network.attention(image)[0].cpu().numpy()
    return output, attention


def class_probabilities(output: np.ndarray, task: str) -> np.ndarray:
    """Probabilities of the ordered classes from classification logits or ordinal cumulative logits."""
    if task == "classification":
        shifted = np.exp(output - output.max())
        return shifted / shifted.sum()
    above = expit(output)  # P(grade > j), j = 0..K-2
    cumulative = np.concatenate([[1.0], np.minimum.accumulate(above), [0.0]])
    return np.clip(cumulative[:-1] - cumulative[1:], 0.0, 1.0)


def predicted_class(output: np.ndarray | torch.Tensor, task: str) -> np.ndarray | torch.Tensor:
    """The class a severity network's output stands for: one rule for training metrics and prediction.

    Parameters
    ----------
    output
        Logits with the classes on the last axis: ``(..., K)`` class logits
        (``classification``) or ``(..., K - 1)`` cumulative logits ``logit P(grade > j)``
        (``ordinal``); a numpy array or a torch tensor.
    task
        ``classification`` or ``ordinal``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(...)`` integer classes: the largest logit, or for ``ordinal`` the number of
        positive cumulative logits (the ``P(grade > j) > 1/2`` the training targets
        encode; it can differ from the argmax of :func:`class_probabilities` when the
        logits are not monotone).

    Examples
    --------
    >>> int(predicted_class(np.array([2.0, -0.5, 0.3]), "ordinal"))
    2
    >>> int(predicted_class(np.array([0.1, 0.7, 0.2]), "classification"))
    1
    """
    return output.argmax(-1) if task == "classification" else (output > 0).sum(-1)


def volume_matched_segmentation(attention: Image, brain_mask: Image, volume_ml: float) -> Image:
    """The brain voxels of highest attention whose total volume matches ``volume_ml``.

    Parameters
    ----------
    attention
        Attention map on the prepared grid, ``(X, Y, Z)``.
    brain_mask
        Brain mask on the same grid; only its voxels can be selected.
    volume_ml
        Target volume (mL); ≤ 0 gives an empty mask, more than the brain the whole brain.

    Returns
    -------
    Image
        uint8 mask with ``round(volume_ml / voxel_volume_ml)`` voxels (capped at the brain).

    Examples
    --------
    >>> grid = np.eye(4) * [2.0, 2.0, 2.0, 1.0]  # 8 mm³ voxels
    >>> attention = Image(np.arange(27, dtype=np.float32).reshape(3, 3, 3), grid)
    >>> mask = volume_matched_segmentation(attention, attention.with_array(np.ones((3, 3, 3), np.uint8)), 0.04)
    >>> int(mask.array.sum()), int(mask.array[2, 2, 2])
    (5, 1)
    """
    if not attention.same_grid(brain_mask):
        raise ValueError("attention map and brain mask must lie on one grid")
    brain = np.flatnonzero(np.asarray(brain_mask.array).ravel() > 0)
    count = int(np.clip(round(max(float(volume_ml), 0.0) / attention.voxel_volume_ml), 0, brain.size))
    values = np.asarray(attention.array, dtype=np.float64).ravel()[brain]
    chosen = brain[np.argsort(-values, kind="stable")[:count]]
    mask = np.zeros(attention.array.size, np.uint8)
    mask[chosen] = 1
    return attention.with_array(mask.reshape(attention.shape))


def predict_volume(
    model: VolumeModel | str | os.PathLike[str], prepared_flair: Image, brain_mask: Image
) -> tuple[float, Image, Image]:
    """Volume (mL), attention map and segmentation of one prepared scan (see the module docstring).

    Parameters
    ----------
    model
        A :class:`VolumeModel` or a model folder.
    prepared_flair, brain_mask
        The scan as ``wmhkit prepare`` wrote it (same grid).

    Returns
    -------
    volume_ml : float
        Predicted WMH volume (≥ 0).
    attention : Image
        float32 attention map (probability map for the strong twin) on the prepared grid.
    segmentation : Image
        uint8 mask on the prepared grid.

    Raises
    ------
    InputError
        For a Fazekas-grade model (it predicts grades: :func:`predict_severity`).
    """
    model = _as_model(model)
    box = box_scan(prepared_flair, brain_mask, model.box)
    output, attention = run_box(model, box)
    brain = brain_mask.with_array((brain_mask.array > 0).astype(np.uint8))
    if model.labels == "gold":
        probability = from_box(expit(output[0]), box.affine, prepared_flair)
        probability = probability.with_array(np.where(brain.array > 0, probability.array, 0.0).astype(np.float32))
        segmentation = probability.with_array(((probability.array >= model.spec.threshold) & (brain.array > 0))
                                              .astype(np.uint8))
        return float(segmentation.array.sum()) * segmentation.voxel_volume_ml, probability, segmentation
    if model.labels == "fazekas":
        raise InputError(model.folder / MODEL_YAML, "this model predicts Fazekas grades, not a volume",
                         "use wmhkit.infer.volume.predict_severity, or a model trained on volume_ml")
    if model.labels == "volume":
        volume_ml, box_attention = float(decode_volume(output[0], model.target_transform)), attention[0]
    else:
        probabilities = class_probabilities(output, model.task)
        volume_ml = float(probabilities @ np.asarray(model.bin_volumes_ml))
        box_attention = attention[0] if model.task == "ordinal" else np.tensordot(probabilities, attention, axes=1)
    attention_map = from_box(box_attention, box.affine, prepared_flair)
    return volume_ml, attention_map, volume_matched_segmentation(attention_map, brain, volume_ml)


@dataclass(frozen=True)
class SeverityPrediction:
    """A severity model's prediction: the grade (:func:`predicted_class`), the expected grade, class
    probabilities, attention."""

    grade: int
    expected_grade: float
    probabilities: tuple[float, ...]
    attention: Image


def predict_severity(
    model: VolumeModel | str | os.PathLike[str], prepared_flair: Image, brain_mask: Image
) -> SeverityPrediction:
    """Grade (Fazekas, or volume bin) of one prepared scan with a severity model, and its attention map.

    Raises
    ------
    InputError
        For a model that regresses a volume or segments voxels.
    """
    model = _as_model(model)
    if model.labels not in ("fazekas", "volume_bins"):
        raise InputError(model.folder / MODEL_YAML, f"model trained on {model.labels!r} predicts no grade",
                         "use predict_volume")
    box = box_scan(prepared_flair, brain_mask, model.box)
    output, attention = run_box(model, box)
    probabilities = class_probabilities(output, model.task)
    grade = int(predicted_class(output, model.task))
    box_attention = attention[0] if model.task == "ordinal" else attention[grade]
    return SeverityPrediction(grade, float(probabilities @ np.arange(probabilities.size)),
                              tuple(float(p) for p in probabilities), from_box(box_attention, box.affine, prepared_flair))


@dataclass(frozen=True)
class GpUnetPrediction:
    """What any GP-Unet model says about one prepared scan (see :func:`predict_gp_unet`).

    Attributes
    ----------
    labels
        What the model was trained on: ``volume``, ``volume_bins``, ``fazekas`` or ``gold`` (the twin).
    voxel_map
        float32 map on the prepared grid: the attention map of a weak-label model
        (volume, bins, Fazekas), the sigmoid probability map of the strong twin.
    volume_ml
        Predicted WMH volume (mL); None for a Fazekas model.
    segmentation
        uint8 mask on the prepared grid (volume-matched for weak models, thresholded
        for the twin); None for a Fazekas model.
    grade, expected_grade, probabilities
        Predicted class (:func:`predicted_class`), probability-weighted class and class probabilities of a
        severity model (Fazekas grade or volume bin); None / () otherwise.
    """

    labels: str
    voxel_map: Image
    volume_ml: float | None = None
    segmentation: Image | None = None
    grade: int | None = None
    expected_grade: float | None = None
    probabilities: tuple[float, ...] = ()

    @property
    def weak(self) -> bool:
        """True for a weak-label model (its voxel map is an attention map, not a probability map)."""
        return self.labels != "gold"


def predict_gp_unet(
    model: VolumeModel | str | os.PathLike[str], prepared_flair: Image, brain_mask: Image
) -> GpUnetPrediction:
    """Run any GP-Unet model (volume, volume bins, Fazekas grade, strong twin) on one prepared scan.

    Parameters
    ----------
    model
        A :class:`VolumeModel` or a model folder.
    prepared_flair, brain_mask
        The scan as ``wmhkit prepare`` wrote it (same grid).

    Returns
    -------
    GpUnetPrediction
        Volume and segmentation (:func:`predict_volume`) for volume models and the twin,
        plus the grade for volume bins; grade and attention (:func:`predict_severity`)
        for a Fazekas model.
    """
    model = _as_model(model)
    if model.labels == "fazekas":
        severity = predict_severity(model, prepared_flair, brain_mask)
        return GpUnetPrediction(model.labels, severity.attention, grade=severity.grade,
                                expected_grade=severity.expected_grade, probabilities=severity.probabilities)
    volume_ml, voxel_map, segmentation = predict_volume(model, prepared_flair, brain_mask)
    voxel_map = voxel_map.with_array(voxel_map.array.astype(np.float32))
    if model.labels != "volume_bins":
        return GpUnetPrediction(model.labels, voxel_map, volume_ml, segmentation)
    severity = predict_severity(model, prepared_flair, brain_mask)
    return GpUnetPrediction(model.labels, voxel_map, volume_ml, segmentation, severity.grade,
                            severity.expected_grade, severity.probabilities)


class ScanScores(NamedTuple):
    """What a model says about one prepared scan; None where it does not apply.

    Attributes
    ----------
    volume_ml
        Predicted WMH volume (mL).
    segmentation
        uint8 mask on the prepared grid.
    grade
        Predicted grade (Fazekas or volume bin).
    """

    volume_ml: float | None
    segmentation: Image | None
    grade: int | None = None


#: Scores one prepared scan from its images by role (``flair``, ``brain_mask``, and the model's other inputs).
Scorer = Callable[[Mapping[str, Image]], ScanScores]


def predict_scans(
    model: VolumeModel | str | os.PathLike[str], manifest: str | os.PathLike[str], *,
    scan_ids: Sequence[str] | None = None, splits: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Run a GP-Unet model over a prepared manifest: one row per scan with :data:`SCAN_COLUMNS`.

    Parameters
    ----------
    model
        A loaded model or a model folder.
    manifest
        Prepared manifest (``wmhkit prepare``), with any of ``volume_ml``, ``fazekas``, ``gold``.
    scan_ids
        Only these scans (default all).
    splits
        scan → split name written to the ``split`` column (default the manifest's ``split`` cell).

    Returns
    -------
    pandas.DataFrame
        Rows in manifest order. Empty cells (NaN) where a label or prediction does not apply.
    """
    model = _as_model(model)

    def score(images: Mapping[str, Image]) -> ScanScores:
        prediction = predict_gp_unet(model, images["flair"], images["brain_mask"])
        return ScanScores(prediction.volume_ml, prediction.segmentation, prediction.grade)

    return _score_scans(score, manifest, inputs=("flair",), scan_ids=scan_ids, splits=splits)


def segmentation_scorer(
    model: LoadedModel | str | os.PathLike[str], *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Scorer:
    """The per-scan :class:`ScanScores` of a ``segmentation-2.5d`` model (the mask of ``wmhkit predict``).

    Parameters
    ----------
    model
        A loaded 2.5D model or its folder.
    batch_size
        Slices per forward pass (the mask does not depend on it).

    Returns
    -------
    Scorer
        Images by role (``brain_mask`` and the model's inputs, on one prepared grid) →
        the mask thresholded at the model's threshold after its fusion rule, and its volume
        (voxel count × voxel volume, mL).

    Raises
    ------
    InputError
        For a model of another kind.
    """
    model = _as_segmentation_model(model)
    parameters = PredictSettings().resolved(model.spec)

    def score(images: Mapping[str, Image]) -> ScanScores:
        wmh = segment_2_5d(model, images, fusion=parameters["fusion"], threshold=parameters["threshold"],
                           batch_size=batch_size, precision=parameters["precision"]).wmh
        return ScanScores(float(wmh.array.sum()) * wmh.voxel_volume_ml, wmh)

    return score


def score_segmentation_scans(
    model: LoadedModel | str | os.PathLike[str], manifest: str | os.PathLike[str], *,
    scan_ids: Sequence[str] | None = None, splits: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """Run a ``segmentation-2.5d`` model over a prepared manifest: the rows of :func:`predict_scans`.

    ``predicted_volume_ml`` and ``segmentation_ml`` are both the volume of the
    model's mask (:func:`segmentation_scorer`); ``predicted_grade`` is empty.
    The manifest's scans must be prepared as the model's ``prepare`` settings say
    (they are used as they are, not prepared again).

    Parameters
    ----------
    model
        A loaded 2.5D model or its folder.
    manifest, scan_ids, splits
        As in :func:`predict_scans`; the manifest needs a column for each model input.
    batch_size
        Slices per forward pass.

    Returns
    -------
    pandas.DataFrame
        :data:`SCAN_COLUMNS`, rows in manifest order.
    """
    model = _as_segmentation_model(model)
    return _score_scans(segmentation_scorer(model, batch_size=batch_size), manifest, inputs=model.spec.inputs,
                        scan_ids=scan_ids, splits=splits)


def _as_segmentation_model(model: LoadedModel | str | os.PathLike[str]) -> LoadedModel:
    """The loaded 2.5D model (its kind checked before any weights are read)."""
    spec = model.spec if isinstance(model, LoadedModel) else read_model_spec(model)
    if spec.kind != KIND_2_5D:
        folder = model.folder if isinstance(model, LoadedModel) else Path(model)
        raise InputError(folder / MODEL_YAML, f"model kind {spec.kind!r} is not {KIND_2_5D!r}",
                         "score GP-Unet models with predict_scans")
    return model if isinstance(model, LoadedModel) else load_model(model)


def _score_scans(
    score: Scorer, manifest: str | os.PathLike[str], *, inputs: Sequence[str],
    scan_ids: Sequence[str] | None, splits: dict[str, str] | None,
) -> pd.DataFrame:
    """:data:`SCAN_COLUMNS` rows of ``score`` on the manifest's scans (images ``inputs`` + flair + brain mask)."""
    table = read_manifest(manifest)
    wanted = None if scan_ids is None else set(scan_ids)
    rows = []
    for row in table.rows():
        scan_id = table.scan_id(row)
        if wanted is not None and scan_id not in wanted:
            continue
        paths = {role: table.path(row, role) for role in dict.fromkeys(("flair", *inputs))}
        images = {role: load_image(path) for role, path in paths.items() if path is not None}
        images["brain_mask"] = load_mask(table.path(row, "brain_mask"))
        record = {"scan_id": scan_id, "subject": row["subject"], "session": row.get("session", ""),
                  "scanner": row.get("scanner", ""), "split": (splits or {}).get(scan_id, row.get("split", "")),
                  "volume_ml": _number(row.get("volume_ml", "")), "fazekas": _number(row.get("fazekas", ""))}
        scores = score(images)
        segmentation = scores.segmentation
        if scores.grade is not None:
            record["predicted_grade"] = scores.grade
        if segmentation is not None:
            record["predicted_volume_ml"] = scores.volume_ml
            record["segmentation_ml"] = float(segmentation.array.sum()) * segmentation.voxel_volume_ml
        gold_path = table.path(row, "gold")
        if segmentation is not None and gold_path is not None:
            gold = load_mask(gold_path, allowed_labels=(0, 1, 2)).array
            record["dice"] = dice((segmentation.array > 0) & (gold != 2), gold == 1)
        record.update(_tissue(row, images["flair"], images["brain_mask"]))
        rows.append(record)
    frame = pd.DataFrame(rows)
    for column in SCAN_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    return frame[list(SCAN_COLUMNS)]


def _tissue(row: dict[str, str], flair: Image, brain_mask: Image) -> dict[str, float]:
    """Ventricle, CSF and WM volumes from the manifest when it has all three, else measured."""
    given = {column: _number(row.get(column, "")) for column in TISSUE_COLUMNS}
    if all(np.isfinite(v) for v in given.values()):
        return given
    return tissue_volumes(flair, brain_mask, estimate_ventricles(flair, brain_mask))


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return float("nan")
