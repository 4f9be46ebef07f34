"""``wmhkit manifest DIR``: write ``manifest.tsv`` for a BIDS or MICCAI 2017 WMH dataset."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from wmhkit.cli import app
from wmhkit.io.layouts import build_manifest
from wmhkit.io.manifest import read_manifest


class LayoutChoice(str, Enum):
    """Dataset layouts ``wmhkit manifest`` reads."""

    auto = "auto"
    bids = "bids"
    miccai = "miccai"


@app.command("manifest")
def manifest(
    dataset: Path = typer.Argument(..., help="Dataset folder (BIDS root, or MICCAI 2017 training/test folder)."),
    layout: LayoutChoice = typer.Option(LayoutChoice.auto, "--layout", help="Dataset layout; auto detects it."),
    out: Path | None = typer.Option(
        None, "--out", help="Manifest to write, in DATASET or a parent folder (default: DATASET/manifest.tsv)."
    ),
) -> None:
    """Find the FLAIR scans (and T1, masks, participant data) of DATASET and write manifest.tsv."""
    written = build_manifest(dataset, layout.value, out)
    scans = len(read_manifest(written))
    typer.echo(f"{scans} scan(s) found; manifest written to {written}")
