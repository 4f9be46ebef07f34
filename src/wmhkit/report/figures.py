"""Report figures drawn with matplotlib (Agg, no pyplot state) and returned as PNG data URIs.

Every function takes the per-scan metrics table (one row per scan and variant,
see :mod:`wmhkit.report.context`) and returns ``"data:image/png;base64,..."``
for an ``<img src>``, or None when the table lacks what the figure needs. NaN
values (undefined metrics) and infinities are left out of each figure, never
drawn as zero.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from wmhkit.metrics.volume import bland_altman, icc_2_1

#: Metrics of the box plots (column, axis label), as in the M3SL paper's Figures 5–7.
BOXPLOT_METRICS: tuple[tuple[str, str], ...] = (("dice", "F-measure"), ("iou", "IoU"), ("hd95_mm", "HD95 (mm)"))
#: Clinical stages in display order; other group labels follow, sorted.
STAGE_ORDER: tuple[str, ...] = ("CN", "MCI", "AD", "other")
VARIANT_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
IMPROVED_COLOUR = "#2ca02c"
WORSENED_COLOUR = "#d62728"
DPI = 100


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_data_uri(figure: Figure) -> str:
    """Render a matplotlib figure with the Agg backend and return its PNG data URI."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return png_data_uri(buffer.getvalue())


def ordered_groups(labels: Sequence[object]) -> list[str]:
    """Distinct non-empty labels: clinical stages first in :data:`STAGE_ORDER`, then the rest sorted.

    Examples
    --------
    >>> ordered_groups(["AD", "CN", "", "B", "MCI", "A", "CN"])
    ['CN', 'MCI', 'AD', 'A', 'B']
    """
    present = {str(label) for label in labels if str(label).strip() and str(label) != "nan"}
    staged = [stage for stage in STAGE_ORDER if stage in present]
    return staged + sorted(present - set(staged))


def metric_boxplots(
    table: pd.DataFrame,
    *,
    by: str,
    variant_column: str = "variant",
    metrics: Sequence[tuple[str, str]] = BOXPLOT_METRICS,
) -> str | None:
    """Box plots of F-measure, IoU and HD95, one panel per metric, grouped by ``by``.

    With a ``variant`` column and ``by`` another column (stage, scanner), each
    group holds one box per variant side by side (colour = variant); with ``by``
    the variant column itself, one box per variant.

    Returns
    -------
    str or None
        PNG data URI; None when ``by`` or every metric column is missing or empty.
    """
    panels = [(column, label) for column, label in metrics if column in table.columns]
    if by not in table.columns or not panels:
        return None
    groups = ordered_groups(table[by].tolist())
    hue = variant_column if variant_column in table.columns and by != variant_column else None
    variants = ordered_groups(table[hue].tolist()) if hue else [None]
    if not groups:
        return None
    figure = Figure(figsize=(4.6 * len(panels), 3.6), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    width = 0.8 / len(variants)
    drawn = False
    for ax, (column, label) in zip(axes, panels):
        values = pd.to_numeric(table[column], errors="coerce")
        for v_index, variant in enumerate(variants):
            samples, positions = [], []
            for g_index, group in enumerate(groups):
                selected = table[by].astype(str) == group
                if variant is not None:
                    selected &= table[hue].astype(str) == variant
                sample = values[selected].to_numpy(dtype=np.float64)
                sample = sample[np.isfinite(sample)]
                if sample.size:
                    samples.append(sample)
                    positions.append(g_index + (v_index - (len(variants) - 1) / 2) * width)
            if not samples:
                continue
            drawn = True
            # Colour by variant: the hue, or the box's own group when grouping by variant.
            colours = [VARIANT_COLOURS[(v_index if hue else round(p)) % len(VARIANT_COLOURS)] for p in positions]
            boxes = ax.boxplot(samples, positions=positions, widths=width * 0.85, patch_artist=True,
                               showfliers=True, manage_ticks=False,
                               flierprops={"marker": ".", "markersize": 4, "markeredgecolor": "#444444"},
                               medianprops={"color": "black"})
            for patch, colour in zip(boxes["boxes"], colours):
                patch.set_facecolor(colour)
                patch.set_alpha(0.75)
        labels = [_tick_label(group) for group in groups]
        crowded = max(len(label) for label in labels) * len(groups) > 36  # ~36 characters fit under a panel
        ax.set_xticks(range(len(groups)), labels, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlabel(by)
    if not drawn:
        return None
    if hue:
        handles = [Line2D([], [], color=VARIANT_COLOURS[i % len(VARIANT_COLOURS)], lw=8, label=v)
                   for i, v in enumerate(variants)]
        figure.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 6), frameon=False)
    return figure_data_uri(figure)


def paired_improvement_plot(
    table: pd.DataFrame,
    *,
    baseline: str = "baseline",
    improved: str = "m3sl",
    variant_column: str = "variant",
    metric: str = "dice",
) -> str | None:
    """Per-subject F-measure of ``baseline`` and ``improved`` against age (M3SL paper, Figure 8).

    Each scan scored by both variants is one vertical line at its age from the
    baseline F-measure (open circle) to the improved one (filled circle, area
    proportional to the normalised WMH volume of :func:`normalised_wmh`); green
    where the improved variant scores at least as well, red where it scores worse.

    Returns
    -------
    str or None
        PNG data URI; None without ``variant``, ``age`` and ``metric`` columns or
        without a scan scored by both variants.
    """
    pairs = paired_scores(table, baseline=baseline, improved=improved, variant_column=variant_column, metric=metric)
    if pairs is None or pairs.empty:
        return None
    size = pairs["wmh_normalised"].to_numpy(dtype=np.float64)
    finite = np.isfinite(size)
    scale = np.nanmax(size) if finite.any() and np.nanmax(size) > 0 else 1.0
    areas = np.where(finite, 20.0 + 280.0 * np.clip(size, 0, None) / scale, 20.0)
    better = pairs["improved"].to_numpy() >= pairs["baseline"].to_numpy()
    colours = np.where(better, IMPROVED_COLOUR, WORSENED_COLOUR)

    figure = Figure(figsize=(9.0, 4.6), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    age = pairs["age"].to_numpy(dtype=np.float64)
    for x, y0, y1, colour in zip(age, pairs["baseline"], pairs["improved"], colours):
        ax.plot([x, x], [y0, y1], color=colour, lw=1.4, alpha=0.8)
    ax.scatter(age, pairs["baseline"], s=areas, facecolors="none", edgecolors=colours, linewidths=1.0)
    ax.scatter(age, pairs["improved"], s=areas, c=list(colours), alpha=0.8, edgecolors="black", linewidths=0.4)
    ax.set_xlabel("age (years)")
    ax.set_ylabel(f"F-measure ({metric})" if metric != "dice" else "F-measure")
    ax.grid(alpha=0.3)
    n_better = int(better.sum())
    size_label = pairs.attrs.get("size_label", "normalised WMH volume")
    handles = [
        Line2D([], [], color=IMPROVED_COLOUR, marker="o", label=f"{improved} ≥ {baseline} ({n_better})"),
        Line2D([], [], color=WORSENED_COLOUR, marker="o", label=f"{improved} < {baseline} ({len(better) - n_better})"),
        Line2D([], [], color="grey", marker="o", markerfacecolor="none", ls="", label=f"{baseline} (open)"),
        Line2D([], [], color="grey", marker="o", ls="", label=f"{improved} (filled); area ∝ {size_label}"),
    ]
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.8)
    return figure_data_uri(figure)


def paired_scores(
    table: pd.DataFrame,
    *,
    baseline: str = "baseline",
    improved: str = "m3sl",
    variant_column: str = "variant",
    metric: str = "dice",
) -> pd.DataFrame | None:
    """Scans scored by both variants: ``scan``, ``age``, ``baseline``, ``improved``, ``wmh_normalised``.

    Rows with a NaN (or infinite) age or score are left out. ``attrs["size_label"]`` names what
    ``wmh_normalised`` holds (see :func:`normalised_wmh`).

    Returns
    -------
    pandas.DataFrame or None
        None when the ``variant``, ``age``, ``subject`` or ``metric`` column is missing.
    """
    needed = (variant_column, "age", "subject", metric)
    if any(column not in table.columns for column in needed):
        return None
    data = table.copy()
    data["scan"] = scan_keys(data)
    data["age"] = pd.to_numeric(data["age"], errors="coerce")
    data[metric] = pd.to_numeric(data[metric], errors="coerce")
    size, size_label = normalised_wmh(data)
    data["wmh_normalised"] = size
    variant = data[variant_column].astype(str)
    base = data[variant == baseline].drop_duplicates("scan").set_index("scan")
    better = data[variant == improved].drop_duplicates("scan").set_index("scan")
    scans = base.index.intersection(better.index)
    pairs = pd.DataFrame({
        "scan": scans,
        "age": base.loc[scans, "age"].to_numpy(),
        "baseline": base.loc[scans, metric].to_numpy(),
        "improved": better.loc[scans, metric].to_numpy(),
        "wmh_normalised": base.loc[scans, "wmh_normalised"].to_numpy(),
    })
    finite = np.isfinite(pairs[["age", "baseline", "improved"]].to_numpy(dtype=np.float64)).all(axis=1)
    pairs = pairs[finite].reset_index(drop=True)
    pairs.attrs["size_label"] = size_label
    return pairs


def normalised_wmh(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """Per-row normalised WMH burden for marker sizes, and what it is.

    The reference (gold) volume as % of intracranial volume when ``vol_gold_ml``
    and ``icv_ml`` exist, else the ``wmh_pct_icv`` column, else ``vol_gold_ml``
    (mL); NaN when none exists.
    """
    def numeric(column: str) -> pd.Series:
        return pd.to_numeric(table[column], errors="coerce")

    if "vol_gold_ml" in table.columns and "icv_ml" in table.columns:
        icv = numeric("icv_ml").where(lambda v: v > 0)
        return numeric("vol_gold_ml") / icv * 100.0, "gold WMH (% ICV)"
    if "wmh_pct_icv" in table.columns:
        return numeric("wmh_pct_icv"), "WMH (% ICV)"
    if "vol_gold_ml" in table.columns:
        return numeric("vol_gold_ml"), "gold WMH volume (mL)"
    return pd.Series(np.nan, index=table.index), "—"


def volume_scatter(
    table: pd.DataFrame,
    *,
    reference: str = "vol_gold_ml",
    predicted: str = "vol_pred_ml",
    variant_column: str = "variant",
) -> str | None:
    """Predicted against reference WMH volume (mL), one colour per variant, ICC(2,1) in the legend.

    Returns
    -------
    str or None
        PNG data URI; None without both volume columns or without a complete pair.
    """
    subsets = _volume_subsets(table, reference, predicted, variant_column)
    if not subsets:
        return None
    figure = Figure(figsize=(5.6, 5.0), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    high = 0.0
    for index, (name, ref, pred) in enumerate(subsets):
        label = f"{name} (n={len(ref)}" + (f", ICC {icc:.3f})" if (icc := _icc(ref, pred)) is not None else ")")
        ax.scatter(ref, pred, s=18, alpha=0.8, color=VARIANT_COLOURS[index % len(VARIANT_COLOURS)], label=label)
        high = max(high, float(np.max(ref)), float(np.max(pred)))
    high = high * 1.05 if high > 0 else 1.0
    ax.plot([0, high], [0, high], color="grey", ls="--", lw=1, label="identity")
    ax.set_xlim(0, high)
    ax.set_ylim(0, high)
    ax.set_aspect("equal")
    ax.set_xlabel(f"reference volume, {reference} (mL)")
    ax.set_ylabel(f"predicted volume, {predicted} (mL)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return figure_data_uri(figure)


def bland_altman_plot(
    table: pd.DataFrame,
    *,
    reference: str = "vol_gold_ml",
    predicted: str = "vol_pred_ml",
    variant_column: str = "variant",
) -> str | None:
    """Bland–Altman plots (predicted − reference against their mean, mL), one panel per variant.

    Each panel shows the bias and the 95 % limits of agreement of
    :func:`wmhkit.metrics.volume.bland_altman` (when at least two pairs exist).

    Returns
    -------
    str or None
        PNG data URI; None without both volume columns or without a complete pair.
    """
    subsets = _volume_subsets(table, reference, predicted, variant_column)
    if not subsets:
        return None
    columns = min(len(subsets), 3)
    rows = -(-len(subsets) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, (ax, (name, ref, pred)) in enumerate(zip(axes, subsets)):
        colour = VARIANT_COLOURS[index % len(VARIANT_COLOURS)]
        ax.scatter((ref + pred) / 2, pred - ref, s=18, alpha=0.8, color=colour)
        ax.axhline(0.0, color="grey", lw=0.8)
        if len(ref) >= 2:
            agreement = bland_altman(ref, pred)
            ax.axhline(agreement.mean_difference, color="black", lw=1.2,
                       label=f"bias {agreement.mean_difference:+.2f} mL")
            for limit in (agreement.loa_low, agreement.loa_high):
                ax.axhline(limit, color="black", ls="--", lw=1)
            ax.plot([], [], color="black", ls="--",
                    label=f"95% LoA [{agreement.loa_low:.2f}, {agreement.loa_high:.2f}]")
            ax.legend(fontsize=8, loc="best")
        ax.set_title(f"{name} (n={len(ref)})", fontsize=10)
        ax.set_xlabel("mean of volumes (mL)")
        ax.set_ylabel("predicted − reference (mL)")
        ax.grid(alpha=0.3)
    for ax in axes[len(subsets):]:
        ax.set_axis_off()
    return figure_data_uri(figure)


def _volume_subsets(
    table: pd.DataFrame, reference: str, predicted: str, variant_column: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(variant name, reference, predicted)`` complete pairs per variant (or ``"all"``)."""
    if reference not in table.columns or predicted not in table.columns:
        return []
    if variant_column in table.columns:
        names = ordered_groups(table[variant_column].tolist())
        parts = [(name, table[table[variant_column].astype(str) == name]) for name in names]
    else:
        parts = [("all", table)]
    subsets = []
    for name, rows in parts:
        ref = pd.to_numeric(rows[reference], errors="coerce").to_numpy(dtype=np.float64)
        pred = pd.to_numeric(rows[predicted], errors="coerce").to_numpy(dtype=np.float64)
        complete = np.isfinite(ref) & np.isfinite(pred)
        if complete.any():
            subsets.append((name, ref[complete], pred[complete]))
    return subsets


def _tick_label(group: str, limit: int = 14) -> str:
    """A group label short enough for an axis tick (longer ones end in "…")."""
    return group if len(group) <= limit else group[: limit - 1] + "…"


def _icc(reference: np.ndarray, predicted: np.ndarray) -> float | None:
    try:
        return icc_2_1(reference, predicted).icc
    except ValueError:  # fewer than 3 pairs or no variation: no ICC to show
        return None


def scan_keys(table: pd.DataFrame) -> pd.Series:
    """The scan ID of every row: ``subject``, or ``subject_session`` when a session is given."""
    subject = table["subject"].astype(str)
    if "session" not in table.columns:
        return subject
    session = table["session"].astype(object).fillna("").astype(str)
    return subject.where(session == "", subject + "_" + session)
