"""``wmhkit report`` on a ``wmhkit predict`` folder: the volumes table and predict's QC mosaics, no manifest needed."""

from __future__ import annotations

from wmhkit.cli import main
from wmhkit.report.context import gather_run


def test_report_of_a_predict_folder_shows_volumes_and_qc_mosaics(tiny_model, write_scan, tmp_path, caplog):
    flairs = [write_scan(tmp_path / "data" / name, "FLAIR")[0] for name in ("sub-01", "sub-02")]
    out = tmp_path / "out"
    with caplog.at_level("INFO"):
        assert main(["predict", "--model", str(tiny_model), *map(str, flairs), "--out", str(out)]) == 0
    assert "NaN" not in caplog.text  # empty cells of volumes.csv are not news (no "HD95 of an empty mask")
    context = gather_run(out)
    assert [overlay.scan_id for overlay in context.overlays] == ["sub-01_FLAIR", "sub-02_FLAIR"]
    assert context.overlays_axial_only and context.overlays[0].image_uri.startswith("data:image/png;base64,")
    volumes = context.predicted_volumes
    assert volumes is not None and volumes.columns[0] == "subject" and "wmh_ml" in volumes.columns
    assert [row[0].text for row in volumes.rows] == ["sub-01_FLAIR", "sub-02_FLAIR"] and "flags" in volumes.columns
    assert not any("manifest" in line for line in context.missing)
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Predicted WMH volumes" in html and html.count('alt="overlay of sub-0') == 2
