"""The registry of wmhkit's own bronze methods: name → segmenter, parameters, T1 requirement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.growth import GrowthParameters, segment_growth
from wmhkit.bronze.lpa import LpaParameters, lpa_probability, segment_lpa
from wmhkit.bronze.outlier import OutlierParameters, segment_outlier
from wmhkit.bronze.t1hypo import T1HypoParameters, segment_t1hypo
from wmhkit.bronze.tophat import TophatParameters, segment_tophat


@dataclass(frozen=True)
class BronzeMethod:
    """A classical segmenter.

    Attributes
    ----------
    name
        Method name (manifest column ``bronze_<name>``).
    segment
        ``segment(scan, parameters) -> bool array`` on the prepared grid.
    parameters
        Default parameters (a frozen dataclass, recorded in every sidecar).
    needs_t1
        True when the method cannot run without a T1.
    summary
        One line for ``--help`` and reports.
    probability
        ``probability(scan, parameters) -> float32 array`` in [0, 1] for methods whose
        mask thresholds a lesion probability (written beside the mask), else None.
    """

    name: str
    segment: Callable[[ScanContext, Any], np.ndarray]
    parameters: Any
    needs_t1: bool
    summary: str
    probability: Callable[[ScanContext, Any], np.ndarray] | None = None

    def run(self, scan: ScanContext) -> np.ndarray:
        """Segment ``scan`` with the default parameters (bool ``(X, Y, Z)``)."""
        return self.segment(scan, self.parameters)

    def parameter_dict(self) -> dict[str, Any]:
        """Parameters as a JSON-ready dict."""
        return asdict(self.parameters)


METHODS: dict[str, BronzeMethod] = {
    "outlier": BronzeMethod("outlier", segment_outlier, OutlierParameters(), False,
                            "FLAIR outliers of normal-appearing WM inside the WM region (UBO-Detector-like)"),
    "growth": BronzeMethod("growth", segment_growth, GrowthParameters(), False,
                           "hysteresis growth from bright seeds over FLAIR relative to T1-defined WM, bounded by the cortex level (LST-LGA-like)"),
    "tophat": BronzeMethod("tophat", segment_tophat, TophatParameters(), False,
                           "in-plane white top-hat local contrast on a WM-like background"),
    "lpa": BronzeMethod("lpa", segment_lpa, LpaParameters(), False,
                        "logistic lesion probability of FLAIR contrast, local contrast and an MNI lesion prior (LST-LPA-like)",
                        lpa_probability),
    "t1hypo": BronzeMethod("t1hypo", segment_t1hypo, T1HypoParameters(), True,
                           "T1 hypointensities inside filled WM (FreeSurfer-like); needs a T1"),
}


#: Methods run when none are named: those whose masks improve the silver consensus.
#: ``t1hypo`` is left out (run it with ``--methods``): on the three real annotated
#: scans and on 30 phantoms it scored Dice 0.06 / 0.01, and STAPLE without it was as
#: good on real scans and better on phantoms (BENCHMARKS.md, "Bronze and silver labels").
#: ``lpa`` is in: alone it under-segments real scans (Dice 0.31 on the three annotated
#: Lesjak scans; 0.40 on 30 2 mm phantoms, the best single method there), and with it
#: STAPLE's Dice rose from 0.456 to 0.504 on the real scans and from 0.365 to 0.399 on
#: the phantoms (``benchmarks/bench_labels.py``, "silver variants").
DEFAULT_METHODS: tuple[str, ...] = ("outlier", "growth", "tophat", "lpa")


def bronze_method(name: str) -> BronzeMethod:
    """The method called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown bronze method {name!r}; choose from {', '.join(METHODS)}") from None
