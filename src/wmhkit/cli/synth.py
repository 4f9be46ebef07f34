"""``wmhkit synth``: write a phantom cohort (FLAIR, T1, gold, true brain mask, manifest.tsv)."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app


@app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Output folder (created); gets manifest.tsv and sub-NNN/ folders."),
    subjects: int = typer.Option(10, "--subjects", min=1, help="Number of phantom subjects."),
    seed: int = typer.Option(0, "--seed", help="Cohort seed; subject k is the same for any --subjects."),
    scanners: str = typer.Option("A,B,C,D,E", "--scanners",
                                 help="Comma-separated scanner profiles, used in turn (A–E)."),
    no_head: bool = typer.Option(False, "--no-head", help="Skull-stripped images for every profile."),
    lesion_library: Path | None = typer.Option(
        None, "--lesion-library", help="Folder of real lesion masks in MNI space to draw lesions from."),
    with_brain_mask: bool = typer.Option(
        False, "--with-brain-mask", help="Fill the brain_mask column with the true mask (else prepare computes one)."),
    resolution_mm: float = typer.Option(1.0, "--resolution-mm", min=0.5, max=8.0,
                                        help="Template resolution; >1 makes coarse quick phantoms."),
) -> None:
    """Synthesize a phantom cohort from the MNI ICBM152 anatomy with known WMH."""
    from wmhkit.synth import synthesize_cohort

    names = tuple(name.strip().upper() for name in scanners.split(",") if name.strip())
    manifest = synthesize_cohort(
        out, subjects, seed=seed, scanners=names, with_head=not no_head, lesion_library=lesion_library,
        with_brain_mask=with_brain_mask, resolution_mm=resolution_mm,
    )
    typer.echo(f"Wrote {subjects} phantom subjects: {manifest}")
