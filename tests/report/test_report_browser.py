"""The report in headless Chromium: a screenshot is drawn, the table script runs and sorts.

Skipped when Chromium is not installed (CI installs the Debian ``chromium`` package).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1400, 3000)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium (apt-get install chromium)")


def _chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *arguments,
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class _ScanTable(HTMLParser):
    """Header names, sort keys of the rows, and table attributes of ``table-scans`` in a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.headers: list[dict[str, str | None]] = []
        self.rows: list[list[str]] = []
        self.tables: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self.tables.append(attributes)
            self.inside = attributes.get("id") == "table-scans"
        elif self.inside and tag == "th":
            self.headers.append(attributes)
        elif self.inside and tag == "tr" and self.headers:
            self.rows.append([])
        elif self.inside and tag == "td":
            self.rows[-1].append(attributes.get("data-sort") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False


def test_screenshot_shows_the_report(full_report: Path, tmp_path: Path):
    screenshot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", full_report.as_uri())
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    header = pixels[:60, :, :3]
    assert header.mean() < 0.3  # the dark title band is drawn at the top
    body = pixels[200:, :, :3]
    assert body.std() > 0.1  # text, tables and figures, not a blank page
    # The mosaics (black tiles) are laid out within the first screen.
    assert (body.max(axis=2) < 0.05).mean() > 0.02


def test_table_script_runs_and_sorts(full_report: Path, tmp_path: Path):
    dom = _chromium(tmp_path, "--dump-dom", full_report.as_uri() + "#sort=-hd95_mm").stdout
    table = _ScanTable()
    table.feed(dom)
    sortable = [attrs for attrs in table.tables if "sortable" in (attrs.get("class") or "")]
    assert len(sortable) >= 5 and all(attrs.get("data-sort-ready") == "true" for attrs in sortable)
    names = [attrs.get("data-column") for attrs in table.headers]
    column = names.index("hd95_mm")
    assert table.headers[column].get("aria-sort") == "descending"
    keys = [row[column] for row in table.rows]
    assert len(keys) == 30
    values = [float(key) for key in keys[:-1]]
    assert values == sorted(values, reverse=True)
    assert keys[-1] == ""  # sub-004's undefined HD95 (empty baseline prediction) sorts last
    subjects = [row[names.index("subject")] for row in table.rows]
    assert subjects[-1] == "sub-004"
