"""Per-scan segmentation metrics with the MICCAI 2017 WMH challenge semantics.

Every function takes boolean masks of shape ``(X, Y, Z)`` on one voxel grid
(``Z`` is the slice axis) and, where distances or volumes are involved, the
4×4 voxel-to-world affine of that grid in mm. The exact definitions are those
of ``METRICS.md`` (Kuijf et al., IEEE TMI 2019, and the challenge's public
``evaluation.py``):

* Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN); NaN when both masks
  are empty. Voxel precision is NaN for an empty prediction, voxel recall for an
  empty gold.
* HD95 (mm): boundaries are each mask minus its in-plane erosion (3×3×1, image
  border counted as foreground); the 95th percentile (numpy's linear rule) of the
  nearest-boundary distances between voxel centres in world coordinates, the
  larger of the two directions; NaN when either mask is empty.
* AVD (%) = |V_gold − V_pred| / V_gold × 100; NaN when the gold is empty.
* Lesion recall / precision over 26-connected components (1.0 when there is no
  component to find), lesion F1 = 2PR / (P + R), 0 when P + R = 0.

Where the challenge script is wrong for some inputs (its gold threshold at 0.5
truncates to 0 on integer images) the definition, not the script, is followed:
see :func:`wmh_from_gold`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

#: Gold label of white matter hyperintensities.
WMH_LABEL = 1
#: Gold label of other pathology: ignored (background in the gold, removed from the prediction).
OTHER_PATHOLOGY_LABEL = 2
#: A prediction voxel is positive when its value lies in this closed range. For
#: integer images this is the challenge's [1, 1000]; for floats its [0.5, 1000].
PREDICTION_POSITIVE_RANGE = (0.5, 1000.0)
#: HD95 percentile (numpy's default linear interpolation).
HAUSDORFF_PERCENTILE = 95.0

# In-plane erosion element of the challenge (SimpleITK BinaryErode radius (1, 1, 0),
# whose ball of radius 1 is the full 3×3 square).
_INPLANE_ELEMENT = np.ones((3, 3, 1), dtype=bool)

#: Metric columns of one scan, in output order.
METRIC_COLUMNS: tuple[str, ...] = (
    "dice", "iou", "precision", "recall", "hd95_mm", "avd_pct",
    "lesion_recall", "lesion_precision", "lesion_f1", "vol_pred_ml", "vol_gold_ml",
)


def positive_prediction(values: np.ndarray) -> np.ndarray:
    """Binarise a prediction with the challenge's rule: positive when 0.5 ≤ value ≤ 1000.

    For integer-valued images this equals the challenge's integer rule [1, 1000]
    (no integer lies in [0.5, 1)), so the rule does not depend on the stored dtype.

    Parameters
    ----------
    values
        Prediction voxel values (mask, label or probability map), any shape.

    Returns
    -------
    numpy.ndarray
        Boolean array of the same shape.

    Examples
    --------
    >>> positive_prediction(np.array([0.49, 0.5, 1.0, 1000.0, 1001.0])).tolist()
    [False, True, True, True, False]
    """
    low, high = PREDICTION_POSITIVE_RANGE
    values = np.asarray(values)
    return (values >= low) & (values <= high)


def wmh_from_gold(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a gold label array into the WMH mask and the ignored (other pathology) mask.

    Labels are compared as whole numbers (``== 1``, ``== 2``), whatever the dtype;
    the challenge's ``BinaryThreshold(0.5, 1.5)`` on an integer image would call
    every voxel WMH, a bug deliberately not reproduced.

    Returns
    -------
    wmh, other_pathology
        Boolean arrays of the shape of ``labels``.
    """
    labels = np.asarray(labels)
    return labels == WMH_LABEL, labels == OTHER_PATHOLOGY_LABEL


@dataclass(frozen=True)
class Overlap:
    """Voxel overlap counts of a prediction against a gold mask.

    Attributes
    ----------
    tp, fp, fn
        True-positive, false-positive and false-negative voxel counts.
    """

    tp: int
    fp: int
    fn: int

    @classmethod
    def from_masks(cls, pred: np.ndarray, gold: np.ndarray) -> "Overlap":
        """Count TP/FP/FN of boolean ``pred`` against boolean ``gold`` (same shape)."""
        pred, gold = _check_pair(pred, gold)
        tp = int(np.count_nonzero(pred & gold))
        return cls(tp=tp, fp=int(np.count_nonzero(pred)) - tp, fn=int(np.count_nonzero(gold)) - tp)

    @property
    def dice(self) -> float:
        """2TP / (2TP + FP + FN); NaN when both masks are empty."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        """TP / (TP + FP + FN) (Jaccard); NaN when both masks are empty."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def precision(self) -> float:
        """TP / (TP + FP); NaN when the prediction is empty."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN) (sensitivity); NaN when the gold is empty."""
        return _ratio(self.tp, self.tp + self.fn)


def dice(pred: np.ndarray, gold: np.ndarray) -> float:
    """Dice coefficient of two boolean masks; NaN when both are empty.

    Examples
    --------
    >>> dice(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    0.5
    """
    return Overlap.from_masks(pred, gold).dice


def inplane_boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of ``mask``: the mask minus its in-plane (3×3×1) erosion.

    Voxels beyond the image border count as foreground (SimpleITK's
    ``BinaryErode`` default), so a lesion touching the border has no boundary there.

    Parameters
    ----------
    mask
        Boolean array ``(X, Y, Z)``; ``Z`` (the slice axis) is not eroded.

    Returns
    -------
    numpy.ndarray
        Boolean array of the same shape.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D (X, Y, Z), got shape {mask.shape}")
    boundary = np.zeros_like(mask)
    box = _bounding_box(mask, margin=1)
    if box is None:
        return boundary
    crop = mask[box]
    # Inside the margin every voxel of the crop's edge is either background or the
    # image border, so eroding the crop equals eroding the whole image.
    eroded = ndimage.binary_erosion(crop, structure=_INPLANE_ELEMENT, border_value=1)
    boundary[box] = crop & ~eroded
    return boundary


def boundary_points_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the in-plane boundary voxel centres of ``mask``.

    Returns
    -------
    numpy.ndarray
        float64 array ``(N, 3)``; the full affine (spacing, direction, origin) is applied.
    """
    affine = np.asarray(affine, dtype=np.float64)
    indices = np.argwhere(inplane_boundary(mask)).astype(np.float64)
    return indices @ affine[:3, :3].T + affine[:3, 3]


def hd95_mm(pred: np.ndarray, gold: np.ndarray, affine: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance between mask boundaries, in mm.

    Parameters
    ----------
    pred, gold
        Boolean masks ``(X, Y, Z)`` on the grid of ``affine``.
    affine
        4×4 voxel-to-world matrix (mm).

    Returns
    -------
    float
        ``max(P95(pred → gold), P95(gold → pred))`` of nearest boundary distances;
        NaN when either mask is empty (or, degenerately, has no boundary voxel).
    """
    pred, gold = _check_pair(pred, gold)
    if not pred.any() or not gold.any():
        return math.nan
    pred_points = boundary_points_mm(pred, affine)
    gold_points = boundary_points_mm(gold, affine)
    if len(pred_points) == 0 or len(gold_points) == 0:
        log.warning("a mask fills whole slices and has no in-plane boundary; HD95 is undefined")
        return math.nan
    # A k-d tree on world coordinates is exact (eps=0) for any affine, sheared ones
    # included, unlike a distance transform, and as fast at these point counts.
    pred_to_gold = _nearest_distances(pred_points, gold_points)
    gold_to_pred = _nearest_distances(gold_points, pred_points)
    return float(max(np.percentile(pred_to_gold, HAUSDORFF_PERCENTILE),
                     np.percentile(gold_to_pred, HAUSDORFF_PERCENTILE)))


def avd_pct(vol_pred_ml: float, vol_gold_ml: float) -> float:
    """Absolute volume difference |V_gold − V_pred| / V_gold × 100 (%); NaN when V_gold is 0.

    Examples
    --------
    >>> avd_pct(1.5, 2.0)
    25.0
    """
    if vol_gold_ml == 0:
        return math.nan
    return abs(vol_gold_ml - vol_pred_ml) / vol_gold_ml * 100.0


@dataclass(frozen=True)
class LesionDetection:
    """Lesion-wise detection of a prediction against a gold mask (26-connected components).

    Attributes
    ----------
    n_gold, n_pred
        Number of gold and predicted components.
    n_gold_detected
        Gold components touched by at least one predicted voxel.
    n_pred_true
        Predicted components touching at least one gold voxel.
    """

    n_gold: int
    n_pred: int
    n_gold_detected: int
    n_pred_true: int

    @property
    def recall(self) -> float:
        """Fraction of gold lesions detected; 1.0 when the gold has none."""
        return 1.0 if self.n_gold == 0 else self.n_gold_detected / self.n_gold

    @property
    def precision(self) -> float:
        """Fraction of predicted lesions that touch gold; 1.0 when the prediction has none."""
        return 1.0 if self.n_pred == 0 else self.n_pred_true / self.n_pred

    @property
    def f1(self) -> float:
        """2PR / (P + R); 0 when P + R = 0."""
        total = self.precision + self.recall
        return 0.0 if total == 0 else 2.0 * self.precision * self.recall / total


def lesion_detection(pred: np.ndarray, gold: np.ndarray) -> LesionDetection:
    """Count 26-connected gold and predicted lesions and which of them overlap.

    Examples
    --------
    >>> gold = np.zeros((7, 1, 1), bool); gold[[0, 3, 6]] = True
    >>> pred = np.zeros((7, 1, 1), bool); pred[[0, 1]] = True
    >>> result = lesion_detection(pred, gold)
    >>> round(result.recall, 4), result.precision
    (0.3333, 1.0)
    """
    pred, gold = _check_pair(pred, gold)
    box = _bounding_box(pred | gold, margin=0)
    if box is None:
        return LesionDetection(n_gold=0, n_pred=0, n_gold_detected=0, n_pred_true=0)
    pred, gold = pred[box], gold[box]
    overlap = pred & gold
    gold_components, n_gold = _components(gold)
    pred_components, n_pred = _components(pred)
    return LesionDetection(
        n_gold=n_gold,
        n_pred=n_pred,
        n_gold_detected=_count_labels(gold_components[overlap]),
        n_pred_true=_count_labels(pred_components[overlap]),
    )


def segmentation_metrics(pred: np.ndarray, gold: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """All per-scan metrics of :data:`METRIC_COLUMNS` for one prediction/gold pair.

    Parameters
    ----------
    pred, gold
        Boolean masks ``(X, Y, Z)`` on one grid, already reduced to WMH (label 2 removed,
        positivity rule applied; see :func:`wmh_from_gold`, :func:`positive_prediction`).
    affine
        4×4 voxel-to-world matrix of that grid (mm); volumes and distances come from it.

    Returns
    -------
    dict
        ``{column: value}`` in :data:`METRIC_COLUMNS` order; volumes in mL, HD95 in mm,
        AVD in %.
    """
    pred, gold = _check_pair(pred, gold)
    affine = np.asarray(affine, dtype=np.float64)
    voxel_mm3 = round(abs(float(np.linalg.det(affine[:3, :3]))), 9)  # drop LU rounding noise (3.0000000000000004)
    overlap = Overlap.from_masks(pred, gold)
    lesions = lesion_detection(pred, gold)
    vol_pred_ml = (overlap.tp + overlap.fp) * voxel_mm3 / 1000.0
    vol_gold_ml = (overlap.tp + overlap.fn) * voxel_mm3 / 1000.0
    return {
        "dice": overlap.dice,
        "iou": overlap.iou,
        "precision": overlap.precision,
        "recall": overlap.recall,
        "hd95_mm": hd95_mm(pred, gold, affine),
        "avd_pct": avd_pct(vol_pred_ml, vol_gold_ml),
        "lesion_recall": lesions.recall,
        "lesion_precision": lesions.precision,
        "lesion_f1": lesions.f1,
        "vol_pred_ml": vol_pred_ml,
        "vol_gold_ml": vol_gold_ml,
    }


def _check_pair(pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gold = np.asarray(gold)
    if pred.dtype != bool or gold.dtype != bool:
        raise ValueError(
            f"masks must be boolean (got {pred.dtype} and {gold.dtype}); binarise them first with "
            "positive_prediction / wmh_from_gold"
        )
    if pred.shape != gold.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from gold shape {gold.shape}")
    return pred, gold


def _ratio(numerator: int, denominator: int) -> float:
    return math.nan if denominator == 0 else numerator / denominator


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding ``mask``'s voxels, grown by ``margin`` (clipped)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        if present.size == 0:
            return None
        box.append(slice(max(int(present[0]) - margin, 0), min(int(present[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def _nearest_distances(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each of ``points`` to its nearest of ``targets`` (exact k-d tree query)."""
    tree = cKDTree(targets, balanced_tree=False, compact_nodes=False)  # faster build, same answers
    return tree.query(points, k=1, workers=-1)[0]


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected component labels of ``mask`` (0 = background) and their count.

    SimpleITK's filter (the challenge's own) is multi-threaded, about twice as fast
    as ``scipy.ndimage.label`` with a 3×3×3 structure on a 256³ mask.
    """
    components = sitk.ConnectedComponentImageFilter()
    components.SetFullyConnected(True)
    labels = components.Execute(sitk.GetImageFromArray(mask.view(np.uint8)))
    return sitk.GetArrayFromImage(labels), int(components.GetObjectCount())


def _count_labels(labels: np.ndarray) -> int:
    """Number of distinct non-zero labels among ``labels``."""
    present = np.unique(labels)
    return int(np.count_nonzero(present))
