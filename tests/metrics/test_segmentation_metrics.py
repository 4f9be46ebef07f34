"""Per-scan metric definitions pinned on hand-computed and analytic cases."""

import itertools
import math

import numpy as np
import pytest
import SimpleITK as sitk

from wmhkit.metrics.segmentation import (
    Overlap,
    avd_pct,
    dice,
    hd95_mm,
    inplane_boundary,
    lesion_detection,
    positive_prediction,
    segmentation_metrics,
    wmh_from_gold,
)


def _rotation(degrees_z: float, degrees_x: float) -> np.ndarray:
    a, b = np.radians(degrees_z), np.radians(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def _affine(spacing=(1.0, 1.0, 1.0), rotation=None, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _random_blobs(rng, shape, count, fill=0.35):
    """Small random lesion-like masks (smoothed noise thresholded around seeds)."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.random(shape), sigma=1.0)
    mask = noise > np.quantile(noise, 1 - fill)
    labels, n = ndimage.label(mask)
    keep = rng.permutation(np.arange(1, n + 1))[:count]
    return np.isin(labels, keep)


# --- voxel overlap -----------------------------------------------------------------------

def test_overlap_counts_and_ratios_by_hand():
    pred = np.array([1, 1, 1, 0, 0, 0, 1], bool).reshape(7, 1, 1)
    gold = np.array([1, 1, 0, 1, 0, 0, 0], bool).reshape(7, 1, 1)
    overlap = Overlap.from_masks(pred, gold)
    assert (overlap.tp, overlap.fp, overlap.fn) == (2, 2, 1)
    assert overlap.dice == pytest.approx(4 / 7, abs=1e-12)
    assert overlap.iou == pytest.approx(2 / 5, abs=1e-12)
    assert overlap.precision == pytest.approx(2 / 4, abs=1e-12)
    assert overlap.recall == pytest.approx(2 / 3, abs=1e-12)


def test_dice_matches_simpleitk_label_overlap_measures():
    rng = np.random.default_rng(3)
    pred = _random_blobs(rng, (16, 14, 6), 8)
    gold = _random_blobs(rng, (16, 14, 6), 8)
    measures = sitk.LabelOverlapMeasuresImageFilter()
    measures.Execute(sitk.GetImageFromArray(gold.astype(np.uint8)), sitk.GetImageFromArray(pred.astype(np.uint8)))
    overlap = Overlap.from_masks(pred, gold)
    assert overlap.dice == pytest.approx(measures.GetDiceCoefficient(), abs=1e-6)
    assert overlap.iou == pytest.approx(measures.GetJaccardCoefficient(), abs=1e-6)


def test_masks_must_be_boolean_and_same_shape():
    with pytest.raises(ValueError, match="boolean"):
        dice(np.ones((2, 2, 2), np.uint8), np.ones((2, 2, 2), bool))
    with pytest.raises(ValueError, match="shape"):
        dice(np.ones((2, 2, 2), bool), np.ones((2, 2, 3), bool))


# --- prediction and gold rules ------------------------------------------------------------

def test_positivity_rule_float_and_integer_edges():
    floats = np.array([0.0, 0.49, 0.4999, 0.5, 0.51, 999.9, 1000.0, 1000.5, -1.0], np.float32)
    assert positive_prediction(floats).tolist() == [False, False, False, True, True, True, True, False, False]
    integers = np.array([0, 1, 2, 255, 1000, 1001, 65535, -1], np.int64)
    assert positive_prediction(integers).tolist() == [False, True, True, True, True, False, False, False]


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32, np.float64])
def test_gold_split_is_dtype_independent(dtype):
    labels = np.array([0, 1, 2, 1, 0], dtype).reshape(5, 1, 1)
    wmh, other = wmh_from_gold(labels)
    assert wmh.ravel().tolist() == [False, True, False, True, False]
    assert other.ravel().tolist() == [False, False, True, False, False]


# --- empty masks --------------------------------------------------------------------------

def test_both_empty_gives_nan_overlap_and_perfect_lesion_scores():
    empty = np.zeros((4, 4, 2), bool)
    metrics = segmentation_metrics(empty, empty, np.eye(4))
    for name in ("dice", "iou", "precision", "recall", "hd95_mm", "avd_pct"):
        assert math.isnan(metrics[name]), name
    assert (metrics["lesion_recall"], metrics["lesion_precision"], metrics["lesion_f1"]) == (1.0, 1.0, 1.0)
    assert (metrics["vol_pred_ml"], metrics["vol_gold_ml"]) == (0.0, 0.0)


def test_empty_prediction():
    gold = np.zeros((6, 6, 2), bool)
    gold[1:3, 1:3, 0] = True
    metrics = segmentation_metrics(np.zeros_like(gold), gold, np.eye(4))
    assert metrics["dice"] == 0.0 and metrics["iou"] == 0.0 and metrics["recall"] == 0.0
    assert math.isnan(metrics["precision"]) and math.isnan(metrics["hd95_mm"])
    assert metrics["avd_pct"] == 100.0
    assert (metrics["lesion_recall"], metrics["lesion_precision"], metrics["lesion_f1"]) == (0.0, 1.0, 0.0)


def test_empty_gold():
    pred = np.zeros((6, 6, 2), bool)
    pred[1:3, 1:3, 0] = True
    metrics = segmentation_metrics(pred, np.zeros_like(pred), np.eye(4))
    assert metrics["dice"] == 0.0 and metrics["precision"] == 0.0
    assert math.isnan(metrics["recall"]) and math.isnan(metrics["hd95_mm"]) and math.isnan(metrics["avd_pct"])
    assert (metrics["lesion_recall"], metrics["lesion_precision"], metrics["lesion_f1"]) == (1.0, 0.0, 0.0)
    assert metrics["vol_pred_ml"] == pytest.approx(0.004)


def test_disjoint_nonempty_masks_have_zero_lesion_f1():
    pred = np.zeros((9, 3, 1), bool)
    gold = np.zeros((9, 3, 1), bool)
    pred[0, 1, 0] = gold[7, 1, 0] = True
    result = lesion_detection(pred, gold)
    assert (result.recall, result.precision, result.f1) == (0.0, 0.0, 0.0)


# --- volumes ------------------------------------------------------------------------------

def test_avd_and_volumes_from_anisotropic_affine():
    gold = np.zeros((10, 10, 4), bool)
    gold[2:6, 2:6, 1:3] = True  # 32 voxels
    pred = np.zeros_like(gold)
    pred[2:6, 2:6, 1] = True  # 16 voxels
    metrics = segmentation_metrics(pred, gold, _affine((0.5, 0.5, 3.0), _rotation(20, 10)))
    assert metrics["vol_gold_ml"] == pytest.approx(32 * 0.75 / 1000, abs=1e-12)
    assert metrics["vol_pred_ml"] == pytest.approx(16 * 0.75 / 1000, abs=1e-12)
    assert metrics["avd_pct"] == pytest.approx(50.0, abs=1e-9)
    assert avd_pct(3.0, 2.0) == pytest.approx(50.0) and math.isnan(avd_pct(1.0, 0.0))


# --- lesion detection ---------------------------------------------------------------------

def test_lesion_detection_counts_26_connected_components_by_hand():
    gold = np.zeros((10, 10, 3), bool)
    gold[1, 1, 1] = gold[2, 2, 2] = True  # corner-touching: one 26-connected lesion
    gold[6:8, 6:8, 0] = True  # second lesion, missed
    gold[1, 8, 0] = True  # third lesion, hit
    pred = np.zeros_like(gold)
    pred[2, 2, 2] = True  # hits lesion 1
    pred[1, 8, 0] = pred[1, 7, 0] = True  # hits lesion 3 (one component)
    pred[9, 0, 0] = True  # false positive lesion
    result = lesion_detection(pred, gold)
    assert (result.n_gold, result.n_pred, result.n_gold_detected, result.n_pred_true) == (3, 3, 2, 2)
    assert result.recall == pytest.approx(2 / 3, abs=1e-12)
    assert result.precision == pytest.approx(2 / 3, abs=1e-12)
    assert result.f1 == pytest.approx(2 / 3, abs=1e-12)


def test_lesion_detection_matches_challenge_style_simpleitk_counts():
    rng = np.random.default_rng(11)
    gold = _random_blobs(rng, (18, 18, 8), 12, fill=0.2)
    pred = _random_blobs(rng, (18, 18, 8), 12, fill=0.2)
    components = sitk.ConnectedComponentImageFilter()
    components.SetFullyConnected(True)
    gold_cc = sitk.GetArrayFromImage(components.Execute(sitk.GetImageFromArray(gold.astype(np.uint8))))
    pred_cc = sitk.GetArrayFromImage(components.Execute(sitk.GetImageFromArray(pred.astype(np.uint8))))
    # As the challenge script: labels of one mask multiplied by the other, distinct labels counted.
    recall = (len(np.unique(gold_cc * pred)) - 1) / (len(np.unique(gold_cc)) - 1)
    precision = (len(np.unique(pred_cc * gold)) - 1) / (len(np.unique(pred_cc)) - 1)
    result = lesion_detection(pred, gold)
    assert result.recall == pytest.approx(recall, abs=1e-6)
    assert result.precision == pytest.approx(precision, abs=1e-6)
    assert 0 < result.recall < 1 and 0 < result.precision < 1


# --- boundaries and HD95 ------------------------------------------------------------------

def test_inplane_boundary_of_a_cube_is_its_ring_on_every_slice():
    mask = np.zeros((9, 9, 5), bool)
    mask[2:7, 2:7, 1:4] = True
    boundary = inplane_boundary(mask)
    expected = mask.copy()
    expected[3:6, 3:6, :] = False  # in-plane interior; top and bottom slices keep only the ring
    np.testing.assert_array_equal(boundary, expected)
    assert boundary.sum() == 3 * (25 - 9)


def test_image_border_is_not_a_boundary():
    mask = np.zeros((6, 5, 1), bool)
    mask[0:3, :, 0] = True  # touches the x=0, y=0 and y=4 borders
    boundary = inplane_boundary(mask)
    expected = np.zeros_like(mask)
    expected[2, :, 0] = True  # only the side facing background
    np.testing.assert_array_equal(boundary, expected)
    assert not inplane_boundary(np.ones((4, 4, 2), bool)).any()


def test_hd95_single_voxels_is_their_world_distance():
    gold = np.zeros((8, 8, 6), bool)
    pred = np.zeros_like(gold)
    gold[2, 2, 2] = True
    pred[5, 6, 2] = True
    assert hd95_mm(pred, gold, _affine()) == pytest.approx(5.0, abs=1e-9)
    pred[:] = False
    pred[2, 2, 4] = True
    assert hd95_mm(pred, gold, _affine((1.0, 1.0, 3.0))) == pytest.approx(6.0, abs=1e-9)


def test_hd95_uses_numpy_linear_percentile_of_nearest_distances():
    gold = np.zeros((45, 3, 3), bool)
    gold[0:40:2, 1, 0] = True  # 20 isolated voxels (boundary = themselves)
    pred = np.zeros_like(gold)
    pred[0:40:2, 1, 1] = True  # the same, one 3 mm slice up
    affine = _affine((1.0, 1.0, 3.0))
    assert hd95_mm(pred, gold, affine) == pytest.approx(3.0, abs=1e-9)
    pred[44, 0, 2] = pred[44, 2, 2] = True  # two outliers: sorted distances 20×3 mm then 2×d
    d = math.hypot(44 - 38, 1, 6)
    expected = 3.0 + (0.95 * 21 - 19) * (d - 3.0)  # linear interpolation at rank 0.95·(22−1)
    assert hd95_mm(pred, gold, affine) == pytest.approx(expected, abs=1e-9)


def test_hd95_of_cubes_shifted_along_the_slice_axis():
    gold = np.zeros((10, 10, 12), bool)
    gold[2:8, 2:8, 2:8] = True
    pred = np.roll(gold, 2, axis=2)
    # Rings on every slice: 4 overlapping slices at 0 mm, then 3 mm and 6 mm slices of
    # 20 ring voxels each; the 95th percentile of these 120 distances is 6 mm.
    assert hd95_mm(pred, gold, _affine((0.9, 0.9, 3.0))) == pytest.approx(6.0, abs=1e-9)


def test_rotation_of_the_affine_does_not_change_hd95():
    rng = np.random.default_rng(5)
    gold = _random_blobs(rng, (16, 16, 6), 6)
    pred = _random_blobs(rng, (16, 16, 6), 6)
    spacing = (0.8, 1.1, 3.0)
    straight = hd95_mm(pred, gold, _affine(spacing))
    oblique = hd95_mm(pred, gold, _affine(spacing, _rotation(30, 20), origin=(-90, 12, 40)))
    assert straight > 0
    assert oblique == pytest.approx(straight, abs=1e-6)


def _brute_force_hd95(pred, gold, affine):
    """Independent HD95: boundary by the definition (a mask voxel with a background 8-neighbour
    in its slice, inside the image), all-pairs world distances."""

    def boundary_points(mask):
        points = []
        nx, ny, _ = mask.shape
        for x, y, z in zip(*np.nonzero(mask)):
            for dx, dy in itertools.product((-1, 0, 1), repeat=2):
                u, v = x + dx, y + dy
                if 0 <= u < nx and 0 <= v < ny and not mask[u, v, z]:
                    points.append((x, y, z))
                    break
        return np.array(points, float) @ affine[:3, :3].T + affine[:3, 3]

    a, b = boundary_points(pred), boundary_points(gold)
    distances = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_brute_force_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    gold = _random_blobs(rng, (14, 12, 5), 5)
    pred = _random_blobs(rng, (14, 12, 5), 5)
    pred[0, 3:6, 2] = True  # make sure something touches the border
    affine = _affine((0.7, 0.9, 2.5), _rotation(15 * seed, 7), origin=(10, -20, 5))
    assert hd95_mm(pred, gold, affine) == pytest.approx(_brute_force_hd95(pred, gold, affine), abs=1e-3)


def test_segmentation_metrics_columns_in_order():
    gold = np.zeros((5, 5, 2), bool)
    gold[1:3, 1:3, 0] = True
    metrics = segmentation_metrics(gold.copy(), gold, np.eye(4))
    assert list(metrics) == [
        "dice", "iou", "precision", "recall", "hd95_mm", "avd_pct",
        "lesion_recall", "lesion_precision", "lesion_f1", "vol_pred_ml", "vol_gold_ml",
    ]
    assert metrics["dice"] == 1.0 and metrics["hd95_mm"] == 0.0 and metrics["avd_pct"] == 0.0
