"""The registry of wmhkit's own bronze methods: name → segmenter, parameters, T1 requirement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.growth import GrowthParameters, segment_growth
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
    """

    name: str
    segment: Callable[[ScanContext, Any], np.ndarray]
    parameters: Any
    needs_t1: bool
    summary: str

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
    "t1hypo": BronzeMethod("t1hypo", segment_t1hypo, T1HypoParameters(), True,
                           "T1 hypointensities inside filled WM (FreeSurfer-like); needs a T1"),
}


#: Methods run when none are named: those whose masks improve the silver consensus.
#: ``t1hypo`` is left out (run it with ``--methods``): on the three real annotated
#: scans and on 30 phantoms it scored Dice 0.06 / 0.01, and STAPLE without it was as
#: good on real scans and better on phantoms (BENCHMARKS.md, "Bronze and silver labels").
DEFAULT_METHODS: tuple[str, ...] = ("outlier", "growth", "tophat")


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
