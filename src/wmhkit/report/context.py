"""Gather what a run folder holds into the view model of the HTML report.

The run folder (``RUN_DIR``) contract; every file is optional, each report
section is drawn only when its inputs exist, and the report lists what is missing:

``RUN_DIR/metrics.csv``
    Per-scan metrics, one row per scan and model variant (``wmhkit evaluate``
    output, one run per variant, concatenated): ``subject`` [, ``session``], the
    metric columns (``dice``, ``iou``, ``hd95_mm``, ``avd_pct``, ``vol_pred_ml``,
    ``vol_gold_ml``, ...), and optionally ``variant`` (model name, e.g.
    ``baseline`` / ``m3sl``), ``stage`` (CN / MCI / AD / other), ``scanner``,
    ``dataset``, ``age`` (years), ``sex``, ``icv_ml`` and ``wmh_pct_icv``.
``RUN_DIR/stats/``
    ``wmhkit stats`` output: ``anova.csv``, ``pairwise.csv``, ``agreement.csv``,
    ``confounders.csv``. Without it, the report runs the same analysis on
    ``metrics.csv`` (grouped by those of ``variant``, ``stage``, ``scanner``
    present; volume agreement of ``vol_gold_ml`` vs ``vol_pred_ml``).
``RUN_DIR/manifest.tsv`` (else ``predicted/``, ``prepared/`` or ``cohort/manifest.tsv``)
    A manifest (``wmhkit.io.manifest``) for the overlay mosaics: ``flair`` plus
    any of ``gold``, ``silver``, ``bronze_<method>``, ``pred`` and
    ``pred_<variant>`` (one prediction column per model variant).
``RUN_DIR/volumes.csv`` and ``RUN_DIR/qc/*_wmh.png`` (a ``wmhkit predict`` folder)
    The predicted volumes, shown as a table, and predict's QC mosaics, shown as the
    overlay mosaics when there is no manifest.
``RUN_DIR/failures.tsv`` and ``RUN_DIR/<step>/failures.tsv``
    Scans a step could not process: ``subject``, ``session``, ``error`` (the
    ``prepare`` stage writes this file).
``RUN_DIR/*.json``, ``RUN_DIR/config.yaml``
    Provenance sidecars (``wmhkit.io.provenance``; e.g. ``metrics.csv.json``) and
    the run's configuration, shown as they are.
``dataset`` values
    Of the metrics table and the manifest; licences that require attribution are
    looked up in :data:`wmhkit.report.attribution.ATTRIBUTIONS`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wmhkit import __version__
from wmhkit.errors import InputError, WmhkitError
from wmhkit.io.manifest import Manifest, read_manifest
from wmhkit.report import figures
from wmhkit.report.figures import png_data_uri
from wmhkit.report.attribution import Attribution, attributions_for
from wmhkit.report.overlays import Overlay, OverlayFailure, choose_scans, render_overlays
from wmhkit.report.scans import TEXT_COLUMNS, flag_counts, scan_table, variant_summary
from wmhkit.report.views import TableView, table_view
from wmhkit.stats.analysis import analyse_metrics
from wmhkit.stats.tables import read_table

METRICS_FILE = "metrics.csv"
#: What ``wmhkit predict`` writes: the volumes table and a folder of QC mosaics.
PREDICT_VOLUMES_FILE = "volumes.csv"
PREDICT_QC_GLOB = "qc/*_wmh.png"
STATS_FOLDER = "stats"
#: Manifests looked for, in this order; the first that exists is used for overlays.
MANIFEST_CANDIDATES: tuple[str, ...] = (
    "manifest.tsv", "predicted/manifest.tsv", "prepared/manifest.tsv", "cohort/manifest.tsv",
)
FAILURES_FILE = "failures.tsv"
CONFIG_FILES: tuple[str, ...] = ("config.yaml", "config.yml")
#: Statistics tables in display order, with their headings.
STATS_TABLES: tuple[tuple[str, str], ...] = (
    ("anova", "One-way ANOVA"),
    ("pairwise", "Pairwise t-tests (pooled variance, Holm–Bonferroni)"),
    ("agreement", "Volume agreement: ICC(2,1), Bland–Altman, Pearson"),
    ("confounders", "Confounder analysis (OLS of reference volume)"),
    ("skipped", "Comparisons not run (too few scans per group, or no variation)"),
)
STATS_TEXT_COLUMNS = ("metric", "grouping", "subset", "group_a", "group_b", "reference", "predicted", "model", "term",
                      "reason")
#: Groupings of the box plots, with their headings (the M3SL paper's Figures 5–7).
BOXPLOT_GROUPINGS: tuple[tuple[str, str], ...] = (
    ("variant", "By model variant (cf. M3SL Figure 5)"),
    ("stage", "By clinical stage, per variant (cf. M3SL Figure 6)"),
    ("scanner", "By scanner, per variant (cf. M3SL Figure 7)"),
)
VOLUME_COLUMNS = ("vol_gold_ml", "vol_pred_ml")
DEFAULT_MAX_OVERLAYS = 8
#: Larger provenance or config files are not shown.
MAX_TEXT_BYTES = 1 << 20
_MAX_VALUE_CHARS = 400


@dataclass(frozen=True)
class FigureView:
    """A figure of the report: heading, caption and PNG data URI."""

    title: str
    caption: str
    image_uri: str


@dataclass(frozen=True)
class ProvenanceView:
    """One provenance file, as ``(field, value)`` text pairs."""

    name: str
    items: list[tuple[str, str]]


@dataclass(frozen=True)
class ReportContext:
    """Everything the report template shows; None / empty where the run lacks the inputs.

    ``missing`` holds one sentence per absent input (what is not shown and how to
    get it); ``problems`` one per input that exists but could not be used.
    """

    run_name: str
    wmhkit_version: str
    counts: dict[str, str] = field(default_factory=dict)
    provenance: list[ProvenanceView] = field(default_factory=list)
    config_name: str = ""
    config_text: str = ""
    summary: TableView | None = None
    predicted_volumes: TableView | None = None
    scans: TableView | None = None
    flag_counts: list[tuple[str, str, int]] = field(default_factory=list)
    overlays: list[Overlay] = field(default_factory=list)
    overlay_failures: list[OverlayFailure] = field(default_factory=list)
    overlay_note: str = ""
    overlays_axial_only: bool = False
    group_figures: list[FigureView] = field(default_factory=list)
    paired_figure: FigureView | None = None
    volume_figures: list[FigureView] = field(default_factory=list)
    stats_tables: list[TableView] = field(default_factory=list)
    stats_note: str = ""
    failures: TableView | None = None
    attributions: list[Attribution] = field(default_factory=list)
    unattributed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def gather_run(
    run_dir: str | os.PathLike[str],
    *,
    max_overlays: int = DEFAULT_MAX_OVERLAYS,
    baseline: str = "baseline",
    improved: str = "m3sl",
) -> ReportContext:
    """Read a run folder (see the module docstring) into a :class:`ReportContext`.

    Parameters
    ----------
    run_dir
        The run folder.
    max_overlays
        Most scans drawn as overlay mosaics (picked from worst to best Dice when
        metrics exist).
    baseline, improved
        Variant names compared per subject in the M3SL Figure 8 plot.

    Raises
    ------
    InputError
        When ``run_dir`` is not a folder, or holds none of the report's inputs.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run folder does not exist", "pass the folder a wmhkit run wrote its outputs to")
    missing: list[str] = []
    problems: list[str] = []
    metrics = _read_metrics(run_dir, missing, problems)
    predicted_volumes = _predicted_volumes(run_dir, problems)
    qc_mosaics = sorted(run_dir.glob(PREDICT_QC_GLOB))
    manifest = _read_run_manifest(run_dir, [] if qc_mosaics else missing, problems)
    failures = _failures_view(run_dir, missing, problems)
    provenance = _provenance(run_dir, problems)
    config_name, config_text = _config(run_dir, problems)
    if (metrics is None and manifest is None and failures is None and predicted_volumes is None
            and not provenance and not config_text):
        raise InputError(
            run_dir, "holds none of metrics.csv, volumes.csv, manifest.tsv, failures.tsv, provenance JSON or "
            "config.yaml", "point to a run folder (e.g. the output folder of `wmhkit predict` or `wmhkit demo`)",
        )
    if not provenance and not config_text:
        missing.append("No provenance JSON or config.yaml at the top of the run folder: provenance not shown.")

    overlays, overlay_failures, overlay_note = [], [], ""
    if manifest is not None:
        rows, ranked = choose_scans(manifest, metrics, max_overlays)
        overlays, overlay_failures = render_overlays(manifest, rows, _captions(manifest, rows, metrics))
        overlay_note = _overlay_note(manifest, run_dir, len(rows), ranked)
    elif qc_mosaics:
        overlays = [Overlay(path.name.removesuffix("_wmh.png"), path.name.removesuffix("_wmh.png"),
                            png_data_uri(path.read_bytes())) for path in qc_mosaics[:max_overlays]]
        overlay_note = (f"The QC mosaics `wmhkit predict` wrote ({len(overlays)} of {len(qc_mosaics)}; all are in "
                        f"{run_dir / 'qc'}): the axial slices with the most WMH, the predicted mask's contour.")

    datasets = []
    for table in (metrics, manifest.table if manifest is not None else None):
        if table is not None and "dataset" in table.columns:
            datasets.extend(table["dataset"].astype(str).tolist())
    attributions, unattributed = attributions_for(datasets)

    context = dict(
        run_name=run_dir.resolve().name, wmhkit_version=__version__, counts=_counts(metrics, manifest),
        predicted_volumes=predicted_volumes,
        provenance=provenance, config_name=config_name, config_text=config_text,
        overlays=overlays, overlay_failures=overlay_failures, overlay_note=overlay_note, failures=failures,
        overlays_axial_only=manifest is None and bool(qc_mosaics),
        attributions=attributions, unattributed=unattributed,
    )
    if metrics is not None:
        context.update(
            summary=variant_summary(metrics), scans=scan_table(metrics), flag_counts=flag_counts(metrics),
            group_figures=_group_figures(metrics, missing),
            paired_figure=_paired_figure(metrics, baseline, improved, missing),
            volume_figures=_volume_figures(metrics, missing),
        )
        stats_tables, stats_note, stats_problems = statistics_tables(run_dir, metrics)
        problems.extend(stats_problems)
        context.update(stats_tables=stats_tables, stats_note=stats_note)
    return ReportContext(missing=missing, problems=problems, **context)


def _read_metrics(run_dir: Path, missing: list[str], problems: list[str]) -> pd.DataFrame | None:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        missing.append(
            f"No {METRICS_FILE}: the per-scan table, box plots, paired plot, volume agreement and statistics "
            f"are not shown (score predictions with `wmhkit evaluate --out {METRICS_FILE}`)."
        )
        return None
    try:
        table = read_table(path, text_columns=TEXT_COLUMNS)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        problems.append(f"{METRICS_FILE} could not be read ({_one_line(exc)}).")
        return None
    if table.empty:
        problems.append(f"{METRICS_FILE} has no rows.")
        return None
    return table


def _predicted_volumes(run_dir: Path, problems: list[str]) -> TableView | None:
    """``wmhkit predict``'s ``volumes.csv`` as a table, or None when the folder has none."""
    path = run_dir / PREDICT_VOLUMES_FILE
    if not path.is_file():
        return None
    try:
        table = read_table(path, text_columns=("subject", "session", "flags"))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        problems.append(f"{PREDICT_VOLUMES_FILE} could not be read ({_one_line(exc)}).")
        return None
    columns = [c for c in table.columns if not table[c].isna().all() and not (table[c] == "").all()]
    return table_view(table, name="volumes-table", title="Predicted WMH volumes", columns=columns,
                      note=f"From {PREDICT_VOLUMES_FILE}: one row per scan, volumes in mL.")


def _read_run_manifest(run_dir: Path, missing: list[str], problems: list[str]) -> Manifest | None:
    for candidate in MANIFEST_CANDIDATES:
        path = run_dir / candidate
        if path.is_file():
            try:
                return read_manifest(path)
            except WmhkitError as exc:
                problems.append(f"{candidate} is not a valid manifest, so no overlays are drawn ({_one_line(exc)}).")
                return None
    missing.append(
        f"No manifest ({', '.join(MANIFEST_CANDIDATES)}): no overlay mosaics "
        "(they need flair and gold / bronze_* / silver / pred_<variant> columns)."
    )
    return None


def _failures_view(run_dir: Path, missing: list[str], problems: list[str]) -> TableView | None:
    files = [(run_dir / FAILURES_FILE, "run")] if (run_dir / FAILURES_FILE).is_file() else []
    files += [(path, path.parent.name) for path in sorted(run_dir.glob(f"*/{FAILURES_FILE}"))]
    if not files:
        missing.append(f"No {FAILURES_FILE} (in the run folder or a step's folder): failures cannot be listed.")
        return None
    parts = []
    for path, step in files:
        try:
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path.relative_to(run_dir)} could not be read ({_one_line(exc)}).")
            continue
        table.insert(0, "step", step)
        parts.append(table)
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True).fillna("")
    columns = ["step", *[c for c in ("subject", "session", "error") if c in table.columns]]
    columns += [c for c in table.columns if c not in columns]
    sources = ", ".join(str(path.relative_to(run_dir)) for path, _ in files)
    return table_view(table, name="failures", title="Failures", columns=columns, note=f"From {sources}.")


def _provenance(run_dir: Path, problems: list[str]) -> list[ProvenanceView]:
    views = []
    for path in sorted(run_dir.glob("*.json")):
        if not path.is_file():
            continue
        if path.stat().st_size > MAX_TEXT_BYTES:
            problems.append(f"{path.name} is larger than {MAX_TEXT_BYTES} bytes and is not shown.")
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            problems.append(f"{path.name} is not readable JSON ({_one_line(exc)}).")
            continue
        views.append(ProvenanceView(path.name, _provenance_items(record)))
    return views


def _provenance_items(record: object) -> list[tuple[str, str]]:
    """``(field, text)`` pairs of a JSON record; sidecar fields summarised, others shown compactly."""
    if not isinstance(record, dict):
        return [("value", _compact(record))]
    items = []
    for key, value in record.items():
        if key == "inputs" and isinstance(value, dict):
            items.append((key, f"{len(value)} file(s): " + ", ".join(sorted(map(str, value)))))
        elif key == "versions" and isinstance(value, dict):
            items.append((key, ", ".join(f"{name} {version}" for name, version in value.items())))
        else:
            items.append((str(key), _compact(value)))
    return items


def _compact(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + " …"


def _config(run_dir: Path, problems: list[str]) -> tuple[str, str]:
    for name in CONFIG_FILES:
        path = run_dir / name
        if path.is_file():
            if path.stat().st_size > MAX_TEXT_BYTES:
                problems.append(f"{name} is larger than {MAX_TEXT_BYTES} bytes and is not shown.")
                return "", ""
            return name, path.read_text(encoding="utf-8", errors="replace")
    return "", ""


def _counts(metrics: pd.DataFrame | None, manifest: Manifest | None) -> dict[str, str]:
    counts = {}
    if manifest is not None:
        counts["scans in manifest"] = str(len(manifest))
    if metrics is not None:
        counts["scored rows"] = str(len(metrics))
        counts["scored scans"] = str(figures.scan_keys(metrics).nunique())
        for column, label in (("variant", "variants"), ("stage", "stages"), ("scanner", "scanners")):
            if column in metrics.columns:
                counts[label] = ", ".join(figures.ordered_groups(metrics[column].tolist())) or "—"
    return counts


def _captions(manifest: Manifest, rows: list[dict[str, str]], metrics: pd.DataFrame | None) -> dict[str, str]:
    """Scan ID, scanner, stage, age and each variant's Dice, per drawn scan."""
    dice_by_scan: dict[str, list[str]] = {}
    if metrics is not None and "dice" in metrics.columns:
        keys = figures.scan_keys(metrics)
        for key, (_, record) in zip(keys, metrics.iterrows()):
            name = str(record["variant"]) if "variant" in metrics.columns else "Dice"
            value = pd.to_numeric(pd.Series([record["dice"]]), errors="coerce").iloc[0]
            dice_by_scan.setdefault(key, []).append(f"{name} {value:.3f}" if pd.notna(value) else f"{name} —")
    captions = {}
    for row in rows:
        scan_id = manifest.scan_id(row)
        parts = [scan_id]
        parts += [f"{label} {row[column]}" for column, label in (("scanner", "scanner"), ("stage", "stage"),
                                                                   ("age", "age")) if row.get(column, "")]
        if scan_id in dice_by_scan:
            parts.append("Dice: " + ", ".join(dice_by_scan[scan_id]))
        captions[scan_id] = " · ".join(parts)
    return captions


def _overlay_note(manifest: Manifest, run_dir: Path, drawn: int, ranked: bool) -> str:
    total = sum(1 for row in manifest.rows() if row.get("flair", ""))
    source = manifest.source.relative_to(run_dir) if manifest.source is not None else "the manifest"
    order = "spread from worst to best mean Dice" if ranked else "the first in manifest order"
    return f"{drawn} of {total} scans ({order}), from {source}."


def _group_figures(metrics: pd.DataFrame, missing: list[str]) -> list[FigureView]:
    views = []
    for column, title in BOXPLOT_GROUPINGS:
        if column not in metrics.columns:
            missing.append(f"No {column} column in {METRICS_FILE}: no box plots by {column}.")
            continue
        uri = figures.metric_boxplots(metrics, by=column)
        if uri is None:
            missing.append(f"No defined F-measure, IoU or HD95 values by {column}: no box plots.")
            continue
        views.append(FigureView(title, "F-measure (Dice), IoU and HD95 per scan; box = quartiles, "
                                "whiskers 1.5 IQR, undefined values left out.", uri))
    return views


def _paired_figure(metrics: pd.DataFrame, baseline: str, improved: str, missing: list[str]) -> FigureView | None:
    uri = figures.paired_improvement_plot(metrics, baseline=baseline, improved=improved)
    if uri is None:
        missing.append(
            f"No paired plot (cf. M3SL Figure 8): it needs {METRICS_FILE} rows with variant {baseline!r} and "
            f"{improved!r} for the same scans, an age column and defined F-measures."
        )
        return None
    return FigureView(
        f"{improved} against {baseline} per subject (cf. M3SL Figure 8)",
        f"One vertical line per scan at the subject's age, from the {baseline} F-measure (open circle) to the "
        f"{improved} F-measure (filled circle); green where {improved} is at least as good, red where it is "
        "worse; circle area proportional to the normalised WMH volume.",
        uri,
    )


def _volume_figures(metrics: pd.DataFrame, missing: list[str]) -> list[FigureView]:
    if any(column not in metrics.columns for column in VOLUME_COLUMNS):
        missing.append(f"No {' and '.join(VOLUME_COLUMNS)} columns: no volume agreement plots.")
        return []
    views = []
    scatter = figures.volume_scatter(metrics)
    if scatter is not None:
        views.append(FigureView("Predicted vs reference volume", "Each point one scan; dashed line identity; "
                                "ICC(2,1) (absolute agreement) per variant in the legend.", scatter))
    agreement = figures.bland_altman_plot(metrics)
    if agreement is not None:
        views.append(FigureView("Bland–Altman", "Difference predicted − reference against their mean (mL); "
                                "solid line bias, dashed lines 95 % limits of agreement.", agreement))
    if not views:
        missing.append("No scan has both volumes defined: no volume agreement plots.")
    return views


def statistics_tables(run_dir: Path, metrics: pd.DataFrame) -> tuple[list[TableView], str, list[str]]:
    """The statistics tables of a run: ``RUN_DIR/stats/*.csv``, else computed from ``metrics``.

    Returns
    -------
    tables, note, problems
        The tables of :data:`STATS_TABLES` that exist and have rows, a sentence
        saying where they came from, and one sentence per table that could not be
        read or computed.
    """
    problems: list[str] = []
    folder = run_dir / STATS_FOLDER
    results: dict[str, pd.DataFrame] = {}
    if folder.is_dir():
        note = f"From {STATS_FOLDER}/ (wmhkit stats)."
        for name, _ in STATS_TABLES:
            path = folder / f"{name}.csv"
            if path.is_file():
                try:
                    results[name] = read_table(path, text_columns=STATS_TEXT_COLUMNS)
                except (ValueError, OSError, UnicodeDecodeError) as exc:
                    problems.append(f"{STATS_FOLDER}/{name}.csv could not be read ({_one_line(exc)}).")
    else:
        by = [c for c in ("variant", "stage", "scanner") if c in metrics.columns]
        volumes = VOLUME_COLUMNS if all(c in metrics.columns for c in VOLUME_COLUMNS) else None
        note = (f"No {STATS_FOLDER}/ folder: computed by the report from {METRICS_FILE} "
                f"(groupings: {', '.join(by) or 'none'}).")
        try:
            results = analyse_metrics(metrics, by=by, volumes=volumes)
        except ValueError as exc:
            results, problem = _group_comparisons_only(metrics, by, volumes, exc)
            problems.append(problem)
    views = []
    for name, title in STATS_TABLES:
        if name in results and not results[name].empty:
            views.append(table_view(results[name], name=name, title=title,
                                    row_css=lambda row: "sig" if str(row.get("significant")) == "True" else ""))
    return views, note, problems


def _group_comparisons_only(
    metrics: pd.DataFrame, by: list[str], volumes: tuple[str, str] | None, error: ValueError
) -> tuple[dict[str, pd.DataFrame], str]:
    """After the full analysis failed: the group comparisons alone, and what went wrong."""
    if volumes is not None:
        try:
            results = analyse_metrics(metrics, by=by)
        except ValueError:
            pass
        else:
            return results, (f"Volume agreement could not be computed from {METRICS_FILE} ({_one_line(error)}); "
                             "the group comparisons are shown.")
    return {}, f"Statistics could not be computed from {METRICS_FILE} ({_one_line(error)})."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
