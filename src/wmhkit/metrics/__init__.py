"""Challenge-exact per-scan segmentation metrics and volume agreement (no torch)."""

from wmhkit.metrics.evaluate import ICV_COLUMNS, evaluate, evaluate_cohort, resample_nearest
from wmhkit.metrics.segmentation import (
    METRIC_COLUMNS,
    LesionDetection,
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
from wmhkit.metrics.volume import BlandAltman, IccResult, bland_altman, icc_2_1, pearson

__all__ = [
    "ICV_COLUMNS", "METRIC_COLUMNS", "BlandAltman", "IccResult", "LesionDetection", "Overlap", "avd_pct",
    "bland_altman", "dice", "evaluate", "evaluate_cohort", "hd95_mm", "icc_2_1", "inplane_boundary",
    "lesion_detection", "pearson", "positive_prediction", "resample_nearest", "segmentation_metrics",
    "wmh_from_gold",
]
