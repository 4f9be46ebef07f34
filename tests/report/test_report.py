"""The HTML report: sections present when their inputs exist, missing inputs named, data escaped."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wmhkit.cli import main
from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.io.nifti import save_image, save_mask
from wmhkit.report import attributions_for, gather_run, render_report, write_report
from wmhkit.report.context import statistics_tables
from wmhkit.report.figures import paired_scores
from wmhkit.report.scans import qc_flags
from wmhkit.stats.tables import read_table, write_csv


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, and the text of each element id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def _rows_of(html: str, table_id: str) -> int:
    body = html.split(f'id="table-{table_id}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr")


def test_full_run_has_every_section(full_run: Path, full_report: Path):
    html = full_report.read_text(encoding="utf-8")
    metrics = read_table(full_run / "metrics.csv")
    ids = {attrs.get("id") for _, attrs in _parse(html).tags}
    for section in ("provenance", "summary", "scans", "overlays", "boxplots", "paired", "volumes", "statistics",
                    "failures", "attribution", "config", "table-scans", "table-anova", "table-pairwise",
                    "table-agreement", "table-confounders", "table-failures"):
        assert section in ids, section
    assert "missing" not in ids and "problems" not in ids
    assert _rows_of(html, "scans") == len(metrics) == 30
    assert html.count('class="mosaic"') == 3
    # 3 box-plot figures + paired plot + scatter + Bland–Altman, and 3 mosaics: all embedded PNGs.
    images = [attrs["src"] for tag, attrs in _parse(html).tags if tag == "img"]
    assert len(images) == 9
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sub-099" in html and "truncated gzip stream" in html  # the failed scan
    assert "Lesjak" in html and "CC BY 4.0" in html and "Louis Collins" in html  # both datasets credited
    assert "evaluate" in html and "epochs: 2" in html  # sidecar and config shown
    assert "From stats/ (wmhkit stats)." in html


def test_report_is_self_contained(full_report: Path):
    html = full_report.read_text(encoding="utf-8")
    for tag, attrs in _parse(html).tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^\s*(https?:|//|file:)", value), (tag, name, value)
        assert tag != "link", "no external stylesheet"
    assert "default-src 'none'" in html  # the CSP forbids every network source


def test_qc_flags_mark_the_empty_prediction(full_run: Path, full_report: Path):
    metrics = read_table(full_run / "metrics.csv", text_columns=("subject", "variant"))
    flags = qc_flags(metrics)
    empty = (metrics["subject"] == "sub-004") & (metrics["variant"] == "baseline")
    assert flags[empty].iloc[0][:1] == ["empty_prediction"]
    assert "undefined_metric" in flags[empty].iloc[0]
    html = full_report.read_text(encoding="utf-8")
    assert "<b>empty_prediction</b> (1)" in html


def test_paired_scores_match_the_table(full_run: Path):
    metrics = read_table(full_run / "metrics.csv", text_columns=("subject", "variant"))
    pairs = paired_scores(metrics)
    assert len(pairs) == 15
    wide = metrics.pivot(index="subject", columns="variant", values="dice")
    np.testing.assert_allclose(pairs.set_index("scan")["improved"], wide.loc[pairs["scan"], "m3sl"])
    np.testing.assert_allclose(pairs.set_index("scan")["baseline"], wide.loc[pairs["scan"], "baseline"])
    better = int((wide["m3sl"] >= wide["baseline"]).sum())
    assert 0 < better < 15  # the fixture has scans going both ways: green and red lines
    # Marker size: the gold volume as % of the brain mask, the same for both variants.
    base = metrics[metrics["variant"] == "baseline"].set_index("subject")
    expected = base["vol_gold_ml"] / base["icv_ml"] * 100
    np.testing.assert_allclose(pairs.set_index("scan")["wmh_normalised"], expected.loc[pairs["scan"]])


def test_stats_computed_when_the_run_has_no_stats_folder(full_run: Path, tmp_path: Path):
    metrics = read_table(full_run / "metrics.csv", text_columns=("subject", "variant", "stage", "scanner"))
    tables, note, problems = statistics_tables(tmp_path, metrics)
    assert [view.name for view in tables] == ["anova", "pairwise", "agreement", "confounders", "skipped"]
    assert note.startswith("No stats/ folder") and problems == []
    assert all("fewer than two groups" in cell.text or "every value" in cell.text
               for row in tables[4].rows for cell in row[-1:]), "the report says why a comparison is missing"
    from_folder, _, _ = statistics_tables(full_run, metrics)  # the same analysis, read from stats/
    assert [cell.text for cell in tables[2].rows[0]] == [cell.text for cell in from_folder[2].rows[0]]


def _tiny_run(run: Path, scans: int) -> Path:
    """A prepare-like run folder: ``manifest.tsv`` with ``scans`` FLAIR + gold pairs, empty failures.tsv."""
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    rng = np.random.default_rng(1)
    lines = ["subject\tdataset\tflair\tgold"]
    for k in range(scans):
        (run / f"sub-{k}").mkdir(parents=True)
        gold = np.zeros((24, 24, 8), np.uint8)
        gold[10:14, 10:14, 3:5] = 1
        save_image(Image(rng.random((24, 24, 8)).astype(np.float32), affine), run / f"sub-{k}" / "flair.nii.gz")
        save_mask(Image(gold, affine), run / f"sub-{k}" / "gold.nii.gz")
        lines.append(f"sub-{k}\tmylab\tsub-{k}/flair.nii.gz\tsub-{k}/gold.nii.gz")
    (run / "manifest.tsv").write_text("\n".join(lines) + "\n")
    (run / "failures.tsv").write_text("subject\tsession\terror\n")
    return run


def test_prepare_only_run_reports_what_is_missing(tmp_path: Path):
    run = _tiny_run(tmp_path / "prepared", scans=1)
    html = write_report(run).read_text(encoding="utf-8")
    ids = {attrs.get("id") for _, attrs in _parse(html).tags}
    assert {"missing", "overlays", "failures"} <= ids
    assert not {"scans", "boxplots", "paired", "volumes", "statistics"} & ids
    assert "No metrics.csv" in html and "No scan failed." in html
    assert html.count('class="mosaic"') == 1
    assert "No attribution on record for: mylab" in html


def test_hostile_ids_and_metadata_are_escaped(tmp_path: Path):
    run = tmp_path / "hostile"
    run.mkdir()
    hostile = pd.DataFrame({
        "subject": ["<script>alert(1)</script>", "ok-1", "ok-2", 'x" onmouseover="alert(3)'],
        "variant": ["baseline", "baseline", "m3sl", "m3sl"],
        "stage": ["<img src=x onerror=alert(2)>", "CN", "AD", "CN"],
        "scanner": ['=HYPERLINK("http://evil.example","click")', "A", "B", "@SUM(A1)"],
        "dataset": ["</td><svg onload=alert(4)>", "phantom", "phantom", "phantom"],
        "age": [70.0, 71.0, np.nan, 80.0],
        "dice": [0.5, np.nan, 0.7, 0.6], "iou": [0.3, np.nan, 0.5, 0.4], "hd95_mm": [3.0, np.nan, 2.0, np.inf],
        "vol_pred_ml": [1.0, 0.0, 2.0, 3.0], "vol_gold_ml": [1.5, 1.0, 2.0, 2.5],
    })
    write_csv(hostile, run / "metrics.csv")
    (run / "failures.tsv").write_text("subject\tsession\terror\n<b>bold</b>\t\t<script>alert(5)</script>\n")

    html = write_report(run).read_text(encoding="utf-8")
    elements = _parse(html)
    scripts = [tag for tag, _ in elements.tags if tag == "script"]
    assert len(scripts) == 1  # only the report's own table script
    for tag, attrs in elements.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert tag not in ("svg", "a") or tag == "a" and attrs.get("href", "").startswith("#")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "=HYPERLINK(&#34;http://evil.example&#34;,&#34;click&#34;)" in html  # shown as text, not a link
    assert "&lt;/td&gt;&lt;svg onload=alert(4)&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "&lt;script&gt;alert(5)&lt;/script&gt;" in html
    # Too few volume pairs for an ICC: said so; groups of two scans are not compared, and the report says why.
    assert "Volume agreement could not be computed" in html and 'id="table-skipped"' in html
    assert "fewer than two groups with 3 or more scans (baseline: 1, m3sl: 2)" in html  # dice: one NaN


def test_script_hash_matches_the_inlined_script(full_report: Path):
    import hashlib

    html = full_report.read_text(encoding="utf-8")
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    assert f"script-src 'sha256-{digest}'" in html


def test_nan_only_metrics_still_render(tmp_path: Path):
    run = tmp_path / "nan"
    run.mkdir()
    table = pd.DataFrame({"subject": ["a", "b", "a", "b"], "variant": ["baseline", "baseline", "m3sl", "m3sl"],
                          "stage": ["CN", "AD", "CN", "AD"], "age": [70, 80, 70, 80],
                          "dice": [np.nan] * 4, "hd95_mm": [np.nan] * 4, "vol_pred_ml": [np.nan] * 4,
                          "vol_gold_ml": [np.nan] * 4})
    write_csv(table, run / "metrics.csv")
    context = gather_run(run)
    assert context.group_figures == [] and context.paired_figure is None and context.volume_figures == []
    assert any("No paired plot" in line for line in context.missing)
    html = render_report(context)
    assert _rows_of(html, "scans") == 4 and ">nan<" not in html.lower()


def test_attribution_registry():
    known, unknown = attributions_for(["lesjak2018", "phantom", "other", ""])
    assert [entry.dataset for entry in known] == ["lesjak2018", "phantom"]
    assert "Neuroinformatics 16:51–63 (2018)" in known[0].citation and known[0].licence == "CC BY 4.0"
    assert "ICBM" in known[1].title and unknown == ["other"]


def test_manifest_paths_outside_the_run_folder_are_drawn(tmp_path: Path):
    run = tmp_path / "run"
    (run / "s").mkdir(parents=True)
    affine = np.eye(4)
    save_image(Image(np.ones((8, 8, 4), np.float32), affine), run / "s" / "flair.nii.gz")
    save_mask(Image(np.zeros((8, 8, 4), np.uint8), affine), tmp_path / "outside.nii.gz")
    (run / "manifest.tsv").write_text("subject\tflair\tpred_m3sl\ns1\ts/flair.nii.gz\t../outside.nii.gz\n")
    context = gather_run(run)  # inputs may live anywhere (issue 20): a prediction beside the run folder is drawn
    assert [overlay.scan_id for overlay in context.overlays] == ["s1"] and context.overlay_failures == []


def test_cli_writes_the_report(tmp_path: Path):
    run = _tiny_run(tmp_path / "run", scans=3)
    out = tmp_path / "out.html"
    assert main(["report", str(run), "--out", str(out), "--max-overlays", "2"]) == 0
    assert out.read_text(encoding="utf-8").count('class="mosaic"') == 2
    assert main(["report", str(tmp_path / "absent")]) == 2


def test_empty_folder_is_an_error(tmp_path: Path):
    with pytest.raises(InputError, match="holds none of"):
        gather_run(tmp_path)
