"""Challenge-exact per-scan segmentation metrics and volume agreement (no torch)."""

# The names are imported on first use (PEP 562): importing one light submodule, such as
# the table writer, must not pay for the statistics libraries the others need.
import importlib
from typing import Any

_SUBMODULE = {
    "BlandAltman": "wmhkit.metrics.volume",
    "ICV_COLUMNS": "wmhkit.metrics.evaluate",
    "IccResult": "wmhkit.metrics.volume",
    "LesionDetection": "wmhkit.metrics.segmentation",
    "METRIC_COLUMNS": "wmhkit.metrics.segmentation",
    "Overlap": "wmhkit.metrics.segmentation",
    "avd_pct": "wmhkit.metrics.segmentation",
    "bland_altman": "wmhkit.metrics.volume",
    "dice": "wmhkit.metrics.segmentation",
    "evaluate": "wmhkit.metrics.evaluate",
    "evaluate_cohort": "wmhkit.metrics.evaluate",
    "hd95_mm": "wmhkit.metrics.segmentation",
    "icc_2_1": "wmhkit.metrics.volume",
    "inplane_boundary": "wmhkit.metrics.segmentation",
    "lesion_detection": "wmhkit.metrics.segmentation",
    "pearson": "wmhkit.metrics.volume",
    "positive_prediction": "wmhkit.metrics.segmentation",
    "resample_nearest": "wmhkit.metrics.evaluate",
    "segmentation_metrics": "wmhkit.metrics.segmentation",
    "wmh_from_gold": "wmhkit.metrics.segmentation",
}

__all__ = sorted(_SUBMODULE)


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_SUBMODULE[name]), name)
