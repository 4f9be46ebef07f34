"""Training examples: lesion blocks of prepared scans, cut into 2D slices per plane.

Per scan (prepared, canonical RAS+): the FLAIR and its label volume are
zero-padded to ``pad_shape`` (256³ by default), cut into ``patch_size``³ blocks
(:func:`~wmhkit.preprocess.patches.extract_patches`), and the blocks holding
lesion voxels are kept. With ``data.background_fraction`` f > 0, lesion-free
blocks inside the brain are added, ``round(n f / (1 - f))`` per scan with n
lesion blocks (as many as the scan has), so that about a share f of the slices,
and of each epoch's uniformly drawn slices, shows lesion-free brain. With ``data.balance_by`` (a
manifest column such as ``dataset``) each of that column's groups gets an equal share of every epoch
and of the validation slices (:func:`epoch_order`). A plane's examples are
every 2D slice of those blocks along that plane's axis: images ``(M, P, P)``
float32, labels ``(M, P, P)`` uint8 (0, 1, and 2 = ignored, from MICCAI gold).

Label sources per stage (manifest columns of a *prepared* manifest):
``gold``; ``silver``; ``bronze_<method>`` combined as ``union`` (any method),
``majority`` (more than half of the methods present) or ``each`` (every
method's mask is a separate example of the same FLAIR).

All randomness (epoch order, augmentation) comes from the generator the caller
passes, derived from ``(seed, epoch, ...)``: MONAI's random transforms keep
their own internal state, which a resumed run would have to checkpoint, so the
few augmentations used are written here on a given generator instead. The GP-Unet's boxes
(:mod:`wmhkit.models.box`) are augmented by :func:`augment_box`: a random translation of up to
``translation`` × each box size, a rotation about the slice axis of up to ``rotation_deg`` and a
left-right flip, in one trilinear resampling (zero outside).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage

from wmhkit.errors import InputError
from wmhkit.io.manifest import Manifest
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.io.provenance import sidecar_path
from wmhkit.preprocess.geometry import load_native_geometry, on_prepared_grid
from wmhkit.preprocess.patches import (
    LESION_LABEL, extract_patches, keep_lesion_patches, pad_to_shape, slices_along,
)
from wmhkit.train.config import AugmentationConfig, DataConfig, StageConfig

if TYPE_CHECKING:
    from wmhkit.train.volume_config import Augmentation

log = logging.getLogger(__name__)

GOLD_LABELS = (0, 1, 2)
BINARY_LABELS = (0, 1)
#: Share of a block's voxels that must lie inside the brain (non-zero prepared FLAIR) for a background block.
BRAIN_BLOCK_SHARE = 0.25


@dataclass(frozen=True)
class LabelSource:
    """The label files of one scan for one stage and how to combine them."""

    scan_id: str
    flair: Path
    labels: tuple[Path, ...]
    combine: str  # "single", "union", "majority" or "each"
    #: The scan's value in the config's ``data.balance_by`` column ("" when not balancing).
    group: str = ""


def stage_label_sources(manifest: Manifest, scan_ids: list[str], stage: StageConfig,
                        balance_by: str | None = None) -> list[LabelSource]:
    """Label files of ``scan_ids`` for ``stage``, each with its ``balance_by`` column's value as group.

    Scans without that label are left out (logged). So are scans whose bronze or
    silver masks are all empty: only blocks with lesion are trained on, so such a
    scan adds nothing, and drawn into a validation split it could leave it without
    a single block. Empty gold masks stay (a gold scan without WMH is a real test case).

    Raises
    ------
    InputError
        When the manifest lacks the ``balance_by`` column or a stage's label column.
    """
    if balance_by is not None and balance_by not in manifest.table.columns:
        raise InputError(manifest.source, f"data.balance_by names column {balance_by!r}, which the manifest lacks",
                         f"add a {balance_by} column (e.g. dataset) or remove data.balance_by from the config")
    wanted = set(scan_ids)
    sources = []
    for row in manifest.rows():
        scan_id = manifest.scan_id(row)
        if scan_id not in wanted:
            continue
        paths = [manifest.path(row, column) for column in label_columns(manifest, stage)]
        paths = [p for p in paths if p is not None]
        if not paths:
            log.info("%s: no %s label; left out of stage %s", scan_id, stage.labels, stage.name)
            continue
        combine = stage.bronze_combine if stage.labels == "bronze" else "single"
        group = row.get(balance_by, "") if balance_by is not None else ""
        source = LabelSource(scan_id, manifest.path(row, "flair"), tuple(paths), combine, group)
        if stage.labels != "gold" and not has_lesion(source, allowed_labels=BINARY_LABELS):
            log.info("%s: its %s masks are empty; left out of stage %s", scan_id, stage.labels, stage.name)
            continue
        sources.append(source)
    return sources


def has_lesion(source: LabelSource, allowed_labels: tuple[int, ...] = GOLD_LABELS) -> bool:
    """True when any of the scan's label masks (holding only ``allowed_labels``) marks a lesion voxel (label 1)."""
    return any(bool((load_mask(p, allowed_labels=allowed_labels).array == 1).any()) for p in source.labels)


def label_columns(manifest: Manifest, stage: StageConfig) -> list[str]:
    """Manifest columns holding ``stage``'s labels.

    Raises
    ------
    InputError
        When a requested bronze method (or any bronze/silver/gold column) is absent.
    """
    columns = list(manifest.table.columns)
    if stage.labels == "bronze":
        methods = list(stage.bronze_methods) or manifest.bronze_methods
        wanted = [f"bronze_{m}" for m in methods]
    else:
        wanted = [stage.labels]
    missing = [c for c in wanted if c not in columns]
    if missing or not wanted:
        raise InputError(manifest.source, f"stage {stage.name!r} needs manifest column(s) {missing or ['bronze_<method>']}",
                         "run `wmhkit bronze` / `wmhkit silver` and `wmhkit prepare`, or change the stage's labels")
    return wanted


def scan_blocks(source: LabelSource, data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lesion blocks of one scan, followed by its lesion-free brain blocks when ``data.background_fraction`` > 0.

    Returns
    -------
    images : numpy.ndarray
        float32 ``(N, P, P, P)``.
    labels : numpy.ndarray
        uint8 ``(N, P, P, P)``; N is 0 when no block holds lesion (no
        background block is added to a scan without lesion blocks).
    """
    flair = load_image(source.flair)
    geometry = load_native_geometry(source.flair) if sidecar_path(source.flair).exists() else None
    allowed = GOLD_LABELS if source.combine == "single" else BINARY_LABELS
    masks = []
    for path in source.labels:
        # Bronze and silver masks live on the native grid; gold was prepared with the FLAIR.
        mask = on_prepared_grid(load_mask(path, allowed_labels=allowed), flair, geometry, path)
        masks.append(mask.array)
    label_volumes = _combined_labels(masks, source.combine)
    image = _padded(flair.array.astype(np.float32), data, source.flair)
    image_patches, origins = extract_patches(image, data.patch_size, data.patch_size)
    kept_images, kept_labels = [], []
    for labels in label_volumes:
        label_patches, _ = extract_patches(_padded(labels, data, source.flair), data.patch_size, data.patch_size)
        images, labels_kept, _ = keep_lesion_patches(image_patches, label_patches, origins,
                                                     min_lesion_voxels=data.min_lesion_voxels)
        background = background_blocks(image_patches, label_patches, images.shape[0], data.background_fraction)
        kept_images += [images, image_patches[background]]
        kept_labels += [labels_kept, label_patches[background]]
    return np.concatenate(kept_images).astype(np.float32), np.concatenate(kept_labels).astype(np.uint8)


def background_blocks(image_patches: np.ndarray, label_patches: np.ndarray, n_lesion_blocks: int,
                      fraction: float) -> np.ndarray:
    """Indices of the lesion-free brain blocks that join ``n_lesion_blocks`` lesion blocks.

    Parameters
    ----------
    image_patches, label_patches
        ``(N, P, P, P)`` blocks of one scan (prepared FLAIR, zero outside the brain).
    n_lesion_blocks
        Lesion blocks kept from the scan.
    fraction
        Wanted background share in [0, 1) of all kept blocks.

    Returns
    -------
    numpy.ndarray
        Sorted int indices into the blocks: ``round(n_lesion_blocks * fraction / (1 - fraction))``
        blocks without lesion voxels and with at least ``BRAIN_BLOCK_SHARE`` of their
        voxels inside the brain, spread evenly over the scan's candidates (fewer
        when the scan has fewer). Deterministic: which blocks are chosen needs no
        random generator, so resumed runs see the same examples.
    """
    wanted = round(n_lesion_blocks * fraction / (1.0 - fraction)) if fraction > 0 else 0
    if wanted == 0:
        return np.zeros(0, dtype=np.int64)
    lesion_free = ~(label_patches == LESION_LABEL).any(axis=(1, 2, 3))
    in_brain = (image_patches != 0).mean(axis=(1, 2, 3)) >= BRAIN_BLOCK_SHARE
    candidates = np.flatnonzero(lesion_free & in_brain)
    if candidates.size <= wanted:
        return candidates
    return candidates[np.linspace(0, candidates.size - 1, wanted).round().astype(np.int64)]


def _combined_labels(masks: list[np.ndarray], combine: str) -> list[np.ndarray]:
    if combine in ("single", "each"):
        return [m.astype(np.uint8) for m in masks]
    votes = np.sum([m > 0 for m in masks], axis=0)
    if combine == "union":
        return [(votes >= 1).astype(np.uint8)]
    if combine == "majority":
        return [(votes * 2 > len(masks)).astype(np.uint8)]
    raise ValueError(f"unknown bronze combination {combine!r}; use each, union or majority")


def _padded(volume: np.ndarray, data: DataConfig, where: Path) -> np.ndarray:
    try:
        return pad_to_shape(volume, data.pad_shape)
    except ValueError as exc:
        raise InputError(where, str(exc), "raise data.pad_shape in the training config") from exc


@dataclass(frozen=True)
class SliceSet:
    """2D examples of one plane: ``images`` float32 ``(M, P, P)``, ``labels`` uint8 ``(M, P, P)`` and
    ``groups`` int64 ``(M,)``, each slice's balancing group (:func:`epoch_order`; all 0 when not balancing)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def empty(cls, size: int) -> SliceSet:
        """No slices, of ``size`` × ``size`` pixels."""
        return cls(np.zeros((0, size, size), np.float32), np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64))

    @classmethod
    def from_blocks(cls, images: np.ndarray, labels: np.ndarray, plane: str,
                    block_groups: np.ndarray | None = None) -> SliceSet:
        """Every slice along ``plane`` of blocks ``(N, P, P, P)`` (canonical axes); each slice gets its
        block's group of ``block_groups`` ``(N,)`` (None: group 0)."""
        if images.shape[0] == 0:
            return cls.empty(images.shape[1] if images.ndim == 4 else 0)
        stack = lambda blocks: np.concatenate([slices_along(b, plane) for b in blocks])  # noqa: E731
        slices = np.ascontiguousarray(stack(images))
        per_block = slices.shape[0] // images.shape[0]
        groups = np.zeros(images.shape[0], np.int64) if block_groups is None else np.asarray(block_groups, np.int64)
        return cls(slices, np.ascontiguousarray(stack(labels)), np.repeat(groups, per_block))

    def subset(self, indices: np.ndarray) -> SliceSet:
        return SliceSet(self.images[indices], self.labels[indices], self.groups[indices])


def load_slice_set(sources: list[LabelSource], data: DataConfig, plane: str) -> SliceSet:
    """All slices of the blocks of ``sources`` (:func:`scan_blocks`) along ``plane``, in source order; slices
    of sources with the same :attr:`LabelSource.group` share a group number (numbered in sorted order)."""
    codes = {group: code for code, group in enumerate(sorted({source.group for source in sources}))}
    images, labels, groups = [], [], []
    for source in sources:
        block_images, block_labels = scan_blocks(source, data)
        log.debug("%s: %d blocks", source.scan_id, block_images.shape[0])
        images.append(block_images)
        labels.append(block_labels)
        groups.append(np.full(block_images.shape[0], codes[source.group], np.int64))
    if not images:
        return SliceSet.empty(data.patch_size)
    return SliceSet.from_blocks(np.concatenate(images), np.concatenate(labels), plane, np.concatenate(groups))


def epoch_order(n_slices: int, rng: np.random.Generator, slices_per_epoch: int | None = None,
                groups: np.ndarray | None = None) -> np.ndarray:
    """Shuffled slice indices of one epoch (``slices_per_epoch`` of them, without repeats while possible).

    With ``groups`` ``(n_slices,)`` of two or more values, every group gets an equal share of the
    epoch's ``slices_per_epoch`` (all ``n_slices`` when None), split as evenly as the count allows: a
    small group's slices repeat (each drawn once before any twice), a large group's are drawn without
    repeats. Without groups a group of many lesion blocks (say phantoms with large loads) would fill
    most of every epoch.
    """
    if groups is None or np.unique(groups).size < 2:
        order = rng.permutation(n_slices)
        if slices_per_epoch is not None and slices_per_epoch < n_slices:
            order = order[:slices_per_epoch]
        return order
    wanted = n_slices if slices_per_epoch is None else slices_per_epoch
    members = [np.flatnonzero(groups == value) for value in np.unique(groups)]
    quotas = np.full(len(members), wanted // len(members))
    quotas[: wanted % len(members)] += 1
    drawn = []
    for indices, quota in zip(members, quotas):
        rounds = -(-int(quota) // indices.size)
        drawn.append(np.concatenate([rng.permutation(indices) for _ in range(rounds)])[:quota])
    return rng.permutation(np.concatenate(drawn))


def augment(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
            settings: AugmentationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Randomly flip / rotate (image and label) and rescale / shift / add noise (image) per slice.

    Parameters
    ----------
    images, labels
        ``(B, H, W)`` batch (copied, not changed in place).
    rng
        Generator of this batch (from ``(seed, epoch, ...)``).

    Returns
    -------
    tuple of numpy.ndarray
        Augmented ``images`` (float32) and ``labels`` (uint8), same shapes.
    """
    images, labels = images.copy(), labels.copy()
    batch = images.shape[0]
    flips = rng.random((batch, 2)) < 0.5 if settings.flip else np.zeros((batch, 2), bool)
    turns = rng.integers(0, 4, batch) if settings.rotate90 and images.shape[1] == images.shape[2] else np.zeros(batch, int)
    scale = 1 + rng.uniform(-settings.intensity_scale, settings.intensity_scale, batch)
    shift = rng.uniform(-settings.intensity_shift, settings.intensity_shift, batch)
    for i in range(batch):
        for axis in (0, 1):
            if flips[i, axis]:
                images[i] = np.flip(images[i], axis)
                labels[i] = np.flip(labels[i], axis)
        if turns[i]:
            images[i] = np.rot90(images[i], turns[i])
            labels[i] = np.rot90(labels[i], turns[i])
    images = images * scale[:, None, None].astype(np.float32) + shift[:, None, None].astype(np.float32)
    if settings.noise_std > 0:
        images = images + rng.normal(0.0, settings.noise_std, images.shape).astype(np.float32)
    return images.astype(np.float32), labels


def to_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, W)`` arrays → ``(B, 1, H, W)`` float image and int64 label tensors on ``device``."""
    image_tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].to(device)
    label_tensor = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))[:, None].to(device)
    return image_tensor, label_tensor


def augment_box(
    flair: np.ndarray, target: np.ndarray | None, rng: np.random.Generator, settings: Augmentation
) -> tuple[np.ndarray, np.ndarray | None]:
    """Randomly shift, rotate and flip a box image (and its voxel target alike).

    Parameters
    ----------
    flair
        Box image ``(X, Y, Z)``.
    target
        Voxel target of the same shape (soft lesion fraction), or None.
    rng
        Source of every random number (drawn in a fixed order: flip, angle, shift).
    settings
        Ranges.

    Returns
    -------
    tuple
        The augmented image and target (float32), zero where the moved image leaves the box.
    """
    shape = np.asarray(flair.shape, dtype=np.float64)
    flip = bool(rng.random() < 0.5) and settings.flip
    angle = np.deg2rad(rng.uniform(-settings.rotation_deg, settings.rotation_deg))
    shift = rng.uniform(-settings.translation, settings.translation, size=3) * shape
    # output voxel o samples input voxel R (o - c) + c - shift, optionally mirrored along x
    rotation = np.eye(3)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    if flip:
        rotation = rotation @ np.diag([-1.0, 1.0, 1.0])
    centre = (shape - 1) / 2.0
    offset = centre - rotation @ centre - shift

    def move(array: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(array.astype(np.float32), rotation, offset=offset, order=1,
                                        mode="constant", cval=0.0).astype(np.float32)

    return move(flair), None if target is None else move(target)
