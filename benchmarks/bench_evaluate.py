"""Benchmark: wmhkit's ``evaluate`` against the MICCAI 2017 WMH challenge's own approach.

A synthetic 256³ gold mask with hundreds of random lesion blobs (plus a label-2
region) and a perturbed prediction are written as NIfTI; both implementations
score the same files, and the table reports time and the metric values side by
side (they must agree).

The comparator (``challenge_*`` functions below) is a re-implementation of the
public challenge script ``evaluation.py`` (Kuijf et al., IEEE TMI 2019; MIT
licence): SimpleITK thresholding and masking, in-plane ``BinaryErode`` boundaries
converted to world points one by one with ``TransformIndexToPhysicalPoint``, a
k-d tree for distances, SimpleITK connected components for lesions. The gold is
stored as float32 so that the script's ``BinaryThreshold(0.5, 1.5)`` is not hit
by its integer truncation bug.

Run::

    python benchmarks/bench_evaluate.py [--size 256] [--lesions 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.spatial
import SimpleITK as sitk

from wmhkit.metrics.evaluate import evaluate


def synthetic_pair(size: int, lesions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels (0/1/2, float32) and a prediction (probabilities, float32), shape ``(size,)*3``."""
    rng = np.random.default_rng(seed)
    shape = (size, size, size)

    def blobs(count: int) -> np.ndarray:
        mask = np.zeros(shape, bool)
        centres = rng.integers(size // 8, size - size // 8, (count, 3))
        for centre, radius in zip(centres, rng.uniform(1.0, 6.0, count)):
            r = int(np.ceil(radius))
            box = tuple(slice(c - r, c + r + 1) for c in centre)
            grid = np.ogrid[-r:r + 1, -r:r + 1, -r:r + 1]
            mask[box] |= sum(g.astype(float) ** 2 for g in grid) <= radius**2
        return mask

    wmh = blobs(lesions)
    gold = wmh.astype(np.float32)
    gold[size // 2 - 8:size // 2 + 8, 20:36, 40:56][~wmh[size // 2 - 8:size // 2 + 8, 20:36, 40:56]] = 2
    missed = rng.random(lesions) < 0.2  # drop some lesions, shift the rest, add false positives
    kept = wmh & ~blobs(int(missed.sum()))
    pred = np.roll(kept, 1, axis=0) | blobs(lesions // 4)
    prob = np.where(pred, rng.uniform(0.5, 1.0, shape), rng.uniform(0.0, 0.49, shape)).astype(np.float32)
    return gold, prob


# --- the challenge script's approach (comparator) -----------------------------------------

def challenge_images(test_filename: str, result_filename: str) -> tuple[sitk.Image, sitk.Image]:
    test_image = sitk.ReadImage(test_filename)
    result_image = sitk.ReadImage(result_filename)
    result_image.CopyInformation(test_image)
    masked_test = sitk.BinaryThreshold(test_image, 0.5, 1.5, 1, 0)
    non_wmh = sitk.BinaryThreshold(test_image, 1.5, 2.5, 0, 1)
    masked_result = sitk.Mask(result_image, non_wmh)
    if "integer" in masked_result.GetPixelIDTypeAsString():
        binary_result = sitk.BinaryThreshold(masked_result, 1, 1000, 1, 0)
    else:
        binary_result = sitk.BinaryThreshold(masked_result, 0.5, 1000, 1, 0)
    return masked_test, binary_result


def challenge_dsc(test_image: sitk.Image, result_image: sitk.Image) -> float:
    test = sitk.GetArrayFromImage(test_image).flatten()
    result = sitk.GetArrayFromImage(result_image).flatten()
    return 1.0 - scipy.spatial.distance.dice(test, result)


def challenge_hausdorff(test_image: sitk.Image, result_image: sitk.Image) -> float:
    statistics = sitk.StatisticsImageFilter()
    statistics.Execute(result_image)
    if statistics.GetSum() == 0:
        return float("nan")
    e_test = sitk.BinaryErode(test_image, (1, 1, 0))
    e_result = sitk.BinaryErode(result_image, (1, 1, 0))
    h_test = sitk.GetArrayFromImage(sitk.Subtract(test_image, e_test))
    h_result = sitk.GetArrayFromImage(sitk.Subtract(result_image, e_result))
    test_points = [test_image.TransformIndexToPhysicalPoint(x.tolist())
                   for x in np.transpose(np.flipud(np.nonzero(h_test)))]
    result_points = [test_image.TransformIndexToPhysicalPoint(x.tolist())
                     for x in np.transpose(np.flipud(np.nonzero(h_result)))]

    def distances(a, b):
        return scipy.spatial.KDTree(a, leafsize=100).query(b, k=1, eps=0, p=2)[0]

    return max(np.percentile(distances(test_points, result_points), 95),
               np.percentile(distances(result_points, test_points), 95))


def challenge_lesions(test_image: sitk.Image, result_image: sitk.Image) -> tuple[float, float]:
    components = sitk.ConnectedComponentImageFilter()
    components.SetFullyConnected(True)
    cc_test = components.Execute(test_image)
    l_result = sitk.Multiply(cc_test, sitk.Cast(result_image, sitk.sitkUInt32))
    n_wmh = len(np.unique(sitk.GetArrayFromImage(cc_test))) - 1
    recall = 1.0 if n_wmh == 0 else (len(np.unique(sitk.GetArrayFromImage(l_result))) - 1) / n_wmh
    cc_result = components.Execute(result_image)
    l_test = sitk.Multiply(cc_result, sitk.Cast(test_image, sitk.sitkUInt32))
    n_detections = len(np.unique(sitk.GetArrayFromImage(cc_result))) - 1
    precision = 1.0 if n_detections == 0 else (len(np.unique(sitk.GetArrayFromImage(l_test))) - 1) / n_detections
    f1 = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return recall, f1


def challenge_avd(test_image: sitk.Image, result_image: sitk.Image) -> float:
    test_statistics, result_statistics = sitk.StatisticsImageFilter(), sitk.StatisticsImageFilter()
    test_statistics.Execute(test_image)
    result_statistics.Execute(result_image)
    return abs(test_statistics.GetSum() - result_statistics.GetSum()) / test_statistics.GetSum() * 100


def challenge_evaluate(gold_path: str, pred_path: str) -> dict[str, float]:
    test_image, result_image = challenge_images(gold_path, pred_path)
    recall, f1 = challenge_lesions(test_image, result_image)
    return {"dice": challenge_dsc(test_image, result_image), "hd95_mm": challenge_hausdorff(test_image, result_image),
            "avd_pct": challenge_avd(test_image, result_image), "lesion_recall": recall, "lesion_f1": f1}


# --- timing ---------------------------------------------------------------------------------

def _best_of(repeats: int, function):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--lesions", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gold, prob = synthetic_pair(args.size, args.lesions)
    affine = np.diag([0.9, 0.9, 1.2, 1.0])
    with tempfile.TemporaryDirectory() as folder:
        gold_path, pred_path = Path(folder) / "gold.nii.gz", Path(folder) / "pred.nii.gz"
        nib.save(nib.Nifti1Image(gold, affine), gold_path)
        nib.save(nib.Nifti1Image(prob, affine), pred_path)
        ours_time, ours = _best_of(args.repeats, lambda: evaluate(pred_path, gold_path))
        theirs_time, theirs = _best_of(args.repeats, lambda: challenge_evaluate(str(gold_path), str(pred_path)))
    print(f"{args.size}³ voxels, {args.lesions} gold lesion blobs, gold WMH {ours['vol_gold_ml']:.1f} mL, "
          f"best of {args.repeats}, NIfTI read included\n")
    print("| implementation | time (s) | Dice | HD95 (mm) | AVD (%) | lesion recall | lesion F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, seconds, m in (("wmhkit evaluate", ours_time, ours),
                             ("challenge evaluation.py approach", theirs_time, theirs)):
        print(f"| {name} | {seconds:.2f} | {m['dice']:.6f} | {m['hd95_mm']:.4f} | {m['avd_pct']:.4f} | "
              f"{m['lesion_recall']:.6f} | {m['lesion_f1']:.6f} |")
    print(f"\nspeed-up: {theirs_time / ours_time:.1f}×")


if __name__ == "__main__":
    main()
