"""The GP-Unet predictors (``volume`` and ``segmentation-3d`` kinds): volume, grade, attention map, segmentation.

For a weak-label model (``model.yaml`` ``kind: volume``) on one prepared scan:

1. the scan is put into the model's input box (:func:`wmhkit.models.box.box_scan`);
2. the network gives the volume (``labels: volume``; its output decoded to mL
   per ``model.yaml`` ``target.transform``, see
   :func:`~wmhkit.models.box.decode_volume`), or class probabilities
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

:func:`predict_gp_unet` is the one entry point for every GP-Unet kind;
:class:`wmhkit.models.predictors.GpUnetPredictor` turns it into the maps ``wmhkit predict`` writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from scipy.special import expit  # the logistic function without exp's overflow for logits below about -88

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.models.box import TARGET_TRANSFORMS, BoxScan, BoxSpec, box_scan, decode_volume, from_box
from wmhkit.models.folder import (
    KIND_3D, KIND_VOLUME, MODEL_YAML, SINGLE_WEIGHTS, ModelSpec, load_model, read_model_spec,
)
from wmhkit.nn.gp_unet import GPUNet


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
    if spec.kind not in (KIND_VOLUME, KIND_3D):
        raise InputError(yaml_path, f"model kind {spec.kind!r} is not a GP-Unet kind ({KIND_VOLUME!r}, {KIND_3D!r})",
                         "pass a model folder written by wmhkit train-volume")
    try:
        box = BoxSpec.from_dict(spec.record["box"])
        target = dict(spec.record.get("target") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(yaml_path, f"invalid GP-Unet entry ({exc})", "restore model.yaml from the training run") from exc
    labels = str(target.get("labels", "gold" if spec.kind == KIND_3D else "volume"))
    bin_volumes = tuple(float(v) for v in target.get("bin_volumes_ml") or ())
    if labels == "volume_bins" and len(bin_volumes) != int(target.get("n_classes", -1)):
        raise InputError(yaml_path, f"target.bin_volumes_ml has {len(bin_volumes)} values for "
                         f"{target.get('n_classes')} classes", "restore model.yaml from the training run")
    transform = str(target.get("transform", "none"))
    if transform not in TARGET_TRANSFORMS:
        raise InputError(yaml_path, f"target.transform {transform!r} is not one of {TARGET_TRANSFORMS}",
                         "restore model.yaml from the training run")
    loaded = load_model(folder, device=device)
    network = cast(GPUNet, loaded.networks[SINGLE_WEIGHTS])  # the kind registry admits only gp_unet networks
    return VolumeModel(folder, spec, network, loaded.device, loaded.model_hash, box,
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
    """Volume (mL), attention map and segmentation of one prepared scan (see the module docstring;
    arguments as in :func:`predict_gp_unet`).

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
                         "use wmhkit.models.predict_gp_unet.predict_severity, or a model trained on volume_ml")
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
    if model.labels != "volume_bins":
        return GpUnetPrediction(model.labels, voxel_map, volume_ml, segmentation)
    severity = predict_severity(model, prepared_flair, brain_mask)
    return GpUnetPrediction(model.labels, voxel_map, volume_ml, segmentation, severity.grade,
                            severity.expected_grade, severity.probabilities)
