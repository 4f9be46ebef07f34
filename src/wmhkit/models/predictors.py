"""One predictor per model kind behind one protocol: :class:`Predictor`, ``predict(prepared scan) -> ScanPrediction``.

``wmhkit predict`` (:func:`load_predictor`), the scoring harness of :mod:`wmhkit.infer.volume`
and the segmentation trainer's cross-validation all predict through these. A
``segmentation-2.5d`` model runs each plane's network slice by slice over the brain box
(:func:`wmhkit.nn.planes.predict_plane`), fuses the plane probabilities
(:mod:`wmhkit.nn.plane_fusion`) and thresholds them (:func:`segment_2_5d`); the GP-Unet
kinds are run by :func:`wmhkit.models.predict_gp_unet.predict_gp_unet`. Adding a model kind:
its predictor class, its entry in :data:`wmhkit.models.folder.KINDS` and one in :data:`PREDICTORS`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.models.folder import (
    DEFAULT_INPUTS, KIND_2_5D, KIND_3D, KIND_VOLUME, LoadedModel, ModelSpec, load_model, read_model_spec,
    resolve_device,
)
from wmhkit.models.networks import network_type
from wmhkit.models.predict_gp_unet import VolumeModel, load_volume_model, predict_gp_unet
from wmhkit.nn.plane_fusion import binarise, check_fusion_rule, check_threshold, fuse_probabilities
from wmhkit.nn.planes import DEFAULT_BATCH_SIZE, predict_plane
from wmhkit.preprocess.pipeline import PrepareOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanPrediction:
    """Maps of one scan on its prepared grid, and the regressed volume or grade of a GP-Unet model.

    ``wmh_prob`` and ``wmh`` are None for a model that predicts only a grade (Fazekas),
    which gives its ``attention`` map and ``grade``. ``threshold`` is set when ``wmh`` is
    ``wmh_prob >= threshold``: the native-grid mask is then made from the native-grid
    probability (see :func:`wmhkit.infer.predict.native_maps`).
    """

    wmh_prob: Image | None
    wmh: Image | None
    attention: Image | None = None
    model_volume_ml: float | None = None
    grade: int | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class PredictOptions:
    """How a predictor runs; the outputs depend on ``fusion``, ``threshold`` and ``precision`` only.

    Attributes
    ----------
    fusion, threshold
        Fusion rule of a 2.5D model's plane probabilities and threshold of the fused
        probability; None for the model's own (``model.yaml``).
    batch_size
        Slices per forward pass of a 2.5D model (memory vs speed).
    precision
        Arithmetic of a 2.5D model's forward pass: ``float32`` or ``bfloat16``.
    """

    fusion: str | None = None
    threshold: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    precision: str = "float32"


class Predictor(Protocol):
    """A loaded model of one kind (:data:`PREDICTORS`)."""

    def predict(self, prepared: Mapping[str, Image]) -> ScanPrediction:
        """Predict one prepared scan: images by role (``flair``, ``brain_mask``, ``t1``) on one grid."""
        ...


@dataclass(frozen=True, eq=False)
class SegmentationPredictor:
    """A loaded 2.5D ``model`` (plane networks from a model folder, or freshly trained ones) and the
    ``options`` it runs with (:class:`Predictor`)."""

    model: LoadedModel
    options: PredictOptions = field(default_factory=PredictOptions)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], device: torch.device,
             options: PredictOptions) -> SegmentationPredictor:
        """Load a ``segmentation-2.5d`` model folder onto ``device``."""
        return cls(load_model(folder, device=device), options)

    @classmethod
    def from_networks(cls, networks: Mapping[str, nn.Module], *, fusion: str, threshold: float, batch_size: int,
                      device: torch.device) -> SegmentationPredictor:
        """A predictor of freshly trained plane networks (plane → network in eval mode on ``device``;
        FLAIR input, every plane on every scan)."""
        network_spec = next(iter(networks.values())).network_spec()
        spec = ModelSpec(KIND_2_5D, network_spec, DEFAULT_INPUTS, tuple(networks), fusion, threshold,
                         PrepareOptions(), {})
        size_multiple = network_type(network_spec["name"]).size_multiple
        model = LoadedModel(Path(), spec, dict(networks), size_multiple, model_hash="", device=device)
        return cls(model, PredictOptions(batch_size=batch_size))

    def predict(self, prepared: Mapping[str, Image]) -> ScanPrediction:
        """:func:`segment_2_5d` with the options' (or the model's) fusion and threshold."""
        spec, options = self.model.spec, self.options
        return segment_2_5d(
            self.model, prepared,
            fusion=check_fusion_rule(spec.fusion if options.fusion is None else options.fusion),
            threshold=check_threshold(spec.threshold if options.threshold is None else options.threshold),
            batch_size=options.batch_size, precision=options.precision,
        )


def segment_2_5d(
    model: LoadedModel, prepared: Mapping[str, Image], *, fusion: str, threshold: float, batch_size: int,
    precision: str = "float32",
) -> ScanPrediction:
    """Run the planes' networks on a prepared scan, fuse and threshold.

    The planes are the model's, or on a thick-slice scan those of its
    ``thick_slice_planes`` rule (:meth:`~wmhkit.models.folder.ModelSpec.planes_for`,
    from the prepared grid's spacing: the thick axis may be any RAS axis).

    Parameters
    ----------
    model
        A loaded ``segmentation-2.5d`` model.
    prepared
        Prepared images by role: ``brain_mask`` and the model's ``inputs``.
    fusion, threshold
        Fusion rule and threshold of the fused probability.
    batch_size
        Slices per forward pass.
    precision
        Arithmetic of the forward pass: ``"float32"``, or ``"bfloat16"`` autocast
        (faster on CPUs with bfloat16 instructions; see :mod:`wmhkit.nn.planes`).

    Returns
    -------
    ScanPrediction
        On the prepared grid; 0 outside the brain mask; ``threshold`` set.

    Raises
    ------
    InputError
        When the model needs an input image (a T1) the scan does not have.
    """
    missing = [role for role in model.spec.inputs if role not in prepared]
    if missing:
        raise InputError(None, f"the model needs input image(s) {missing}, which this scan lacks",
                         "add them to the manifest (e.g. a t1 column)")
    brain_mask = prepared["brain_mask"]
    channels = np.stack([prepared[role].array.astype(np.float32) for role in model.spec.inputs])
    plane_probs = []
    planes = model.spec.planes_for(brain_mask.spacing_mm)
    if planes != model.spec.planes:
        log.info("thick slices (%s mm): running the %s plane(s) only", brain_mask.spacing_mm, ", ".join(planes))
    for plane in planes:
        # Channels-last weights match the channels-last inputs of predict_plane (faster oneDNN convolutions).
        network = model.networks[plane].to(memory_format=torch.channels_last)
        plane_probs.append(predict_plane(network, channels, brain_mask.array, plane,  # type: ignore[arg-type]
                                         size_multiple=model.size_multiple, batch_size=batch_size,
                                         device=model.device, precision=precision))
    wmh_prob = fuse_probabilities(plane_probs, fusion)
    return ScanPrediction(brain_mask.with_array(wmh_prob), brain_mask.with_array(binarise(wmh_prob, threshold)),
                          threshold=threshold)


@dataclass(frozen=True, eq=False)
class GpUnetPredictor:
    """A loaded GP-Unet model of any label kind (:class:`Predictor`)."""

    model: VolumeModel

    @classmethod
    def load(cls, folder: str | os.PathLike[str], device: torch.device, options: PredictOptions) -> GpUnetPredictor:
        """Load a ``volume`` or ``segmentation-3d`` model folder onto ``device`` (``options`` are for 2.5D models)."""
        return cls(load_volume_model(folder, device=device))

    def predict(self, prepared: Mapping[str, Image]) -> ScanPrediction:
        """:func:`predict_gp_unet` as maps: for a weak-label model its map is an attention map
        (written beside the mask, or alone for a Fazekas model, which has no mask), for the
        strong twin a probability map."""
        result = predict_gp_unet(self.model, prepared["flair"], prepared["brain_mask"])
        voxel_map = result.voxel_map  # float32
        if result.segmentation is None:
            return ScanPrediction(None, None, voxel_map, grade=result.grade)
        wmh = result.segmentation.with_array((result.segmentation.array > 0).astype(np.uint8))
        if not result.weak:
            return ScanPrediction(voxel_map, wmh)
        return ScanPrediction(wmh.with_array(wmh.array.astype(np.float32)), wmh, voxel_map, float(result.volume_ml),
                              result.grade)


#: Model kind → loader ``(folder, device, options) → predictor``.
PREDICTORS: dict[str, Callable[[Path, torch.device, PredictOptions], Predictor]] = {
    KIND_2_5D: SegmentationPredictor.load,
    KIND_VOLUME: GpUnetPredictor.load,
    KIND_3D: GpUnetPredictor.load,
}


def load_predictor(
    folder: str | os.PathLike[str], *, device: str | torch.device = "cpu", options: PredictOptions | None = None
) -> Predictor:
    """Load a model folder as the predictor of its kind (``options`` None: the model's defaults).

    Raises
    ------
    InputError
        For an invalid model folder or unusable weights.
    ValueError
        For a device that is unknown or not available.
    """
    folder = Path(folder)
    return PREDICTORS[read_model_spec(folder).kind](folder, resolve_device(device), options or PredictOptions())
