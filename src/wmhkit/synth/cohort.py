"""Phantom cohorts: subjects drawn from a seed, written as NIfTI files plus ``manifest.tsv``.

Subject ``k`` (1-based, ``sub-00k``) draws everything from
``numpy.random.SeedSequence([seed, k])``, split into independent streams for
demographics, anatomy, lesions and acquisition, so a subject is the same
whatever the cohort size, and its anatomy and lesions are the same whatever
its scanner. Subject ``k`` is scanned on ``scanners[(k - 1) % len(scanners)]``.

Files per subject, under ``<out>/sub-00k/``: ``sub-00k_FLAIR.nii.gz`` (the
scanner's dtype and orientation), ``sub-00k_T1.nii.gz`` (on the FLAIR grid,
lesions hypointense), ``sub-00k_gold.nii.gz`` (uint8 lesion mask, lesion
fraction ≥ 0.5), ``sub-00k_brainmask.nii.gz`` (uint8 true brain mask) and
``sub-00k_FLAIR.json`` (provenance: seed and every drawn parameter).

Manifest columns: ``subject``, ``dataset`` (``phantom``), ``scanner``, ``stage``,
``age``, ``sex``, ``flair``, ``t1``, ``brain_mask`` (empty unless
``with_brain_mask``, so that ``prepare`` computes its own), ``gold``,
``volume_ml`` (gold voxels × voxel volume from the affine), ``fazekas`` (see
:mod:`wmhkit.synth.fazekas`), then ``true_brain_mask``, ``fazekas_pv``,
``fazekas_deep``, ``fat_suppressed`` (1 for fat-suppressed FLAIR: choose the
min–max normalisation for it), ``skull_stripped`` (1 when no head is in the
image), ``acquisition`` (2D/3D) and ``target_wmh_ml`` (the drawn burden).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wmhkit.errors import InputError
from wmhkit.io.manifest import relative_path, write_manifest
from wmhkit.io.nifti import save_mask
from wmhkit.io.provenance import write_sidecar
from wmhkit.synth.acquire import acquire
from wmhkit.synth.anatomy import draw_anatomy
from wmhkit.synth.fazekas import fazekas_grades
from wmhkit.synth.head import draw_head
from wmhkit.synth.lesions import generate_lesions, lesion_library_files, target_burden_ml
from wmhkit.synth.scanners import RANDOM_PROFILE, SCANNER_PROFILES, random_profile, scanner_profile
from wmhkit.synth.storage import save_scanner_image
from wmhkit.synth.template import load_template

log = logging.getLogger(__name__)

#: Probability of each clinical stage, and the mean and sd of age (years) in it.
STAGE_PROBABILITIES: dict[str, float] = {"CN": 0.4, "MCI": 0.3, "AD": 0.3}
STAGE_AGE_YEARS: dict[str, tuple[float, float]] = {"CN": (68.0, 7.0), "MCI": (72.0, 7.0), "AD": (75.0, 7.0)}
DATASET_NAME = "phantom"


@dataclass(frozen=True)
class SubjectDemographics:
    """Who subject ``index`` is: stage (CN/MCI/AD), age (years, 50–95) and sex (F/M)."""

    index: int
    subject: str
    stage: str
    age: float
    sex: str


def subject_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators of subject ``index`` for each purpose (same for any cohort size)."""
    children = np.random.SeedSequence([int(seed), int(index)]).spawn(4)
    names = ("demographics", "anatomy", "lesions", "acquisition")
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def draw_demographics(index: int, rng: np.random.Generator) -> SubjectDemographics:
    """Draw stage, age and sex of subject ``index`` (1-based)."""
    stages = list(STAGE_PROBABILITIES)
    stage = stages[int(rng.choice(len(stages), p=list(STAGE_PROBABILITIES.values())))]
    mean, sd = STAGE_AGE_YEARS[stage]
    age = round(float(np.clip(rng.normal(mean, sd), 50.0, 95.0)), 1)
    sex = "F" if rng.random() < 0.55 else "M"
    return SubjectDemographics(index=index, subject=f"sub-{index:03d}", stage=stage, age=age, sex=sex)


def synthesize_subject(
    out_dir: str | os.PathLike[str],
    index: int,
    *,
    seed: int = 0,
    scanner: str = "A",
    with_head: bool = True,
    lesion_library: str | os.PathLike[str] | None = None,
    with_brain_mask: bool = False,
    resolution_mm: float = 1.0,
) -> dict[str, str]:
    """Make and write subject ``index`` (1-based); return its manifest row.

    Parameters
    ----------
    out_dir
        Cohort folder; files go to ``out_dir/sub-NNN/`` and row paths are relative to ``out_dir``.
    index
        Subject number ≥ 1; with ``seed`` it fixes everything about the subject.
    seed
        Cohort seed.
    scanner
        Profile name (``"A"`` … ``"E"``, or ``"R"``: a scanner drawn for this subject; see
        :mod:`wmhkit.synth.scanners`).
    with_head
        Draw scalp, skull and CSF shell for profiles that are not skull-stripped.
    lesion_library
        Folder of real lesion masks in MNI space to draw part of the lesions from.
    with_brain_mask
        Also fill the ``brain_mask`` column with the true brain mask.
    resolution_mm
        Template resolution; the scanner voxel sizes are multiplied by it too.
        1.0 is the real phantom; 3.0 makes small quick ones (tests, previews).

    Returns
    -------
    dict
        The manifest row (all cells strings).
    """
    if index < 1:
        raise ValueError(f"subject index must be ≥ 1, got {index}")
    profile = (random_profile(np.random.default_rng([int(seed), int(index), 1]))
               if scanner == RANDOM_PROFILE else scanner_profile(scanner))
    library = lesion_library_files(lesion_library) if lesion_library is not None else ()
    out_dir = Path(out_dir)
    streams = subject_streams(seed, index)
    person = draw_demographics(index, streams["demographics"])
    template = load_template(float(resolution_mm))
    anatomy = draw_anatomy(person.stage, person.age, streams["anatomy"])
    burden_ml = target_burden_ml(person.stage, person.age, streams["lesions"])
    lesions = generate_lesions(template, burden_ml, streams["lesions"], library)
    head_geometry = draw_head(anatomy.cortical_atrophy, streams["anatomy"])
    head = head_geometry if with_head and not profile.skull_stripped else None
    scan = acquire(template, lesions, anatomy, head, profile, streams["acquisition"], scale=float(resolution_mm))
    grades = fazekas_grades(scan.gold, scan.ventricle_distance_mm)

    folder = out_dir / person.subject
    paths = {role: folder / f"{person.subject}_{role}.nii.gz" for role in ("FLAIR", "T1", "gold", "brainmask")}
    save_scanner_image(scan.flair, paths["FLAIR"], profile.dtype)
    save_scanner_image(scan.t1, paths["T1"], profile.dtype)
    save_mask(scan.gold, paths["gold"])
    save_mask(scan.brain_mask, paths["brainmask"])
    volume_ml = float(scan.gold.array.sum()) * scan.gold.voxel_volume_ml
    write_sidecar(
        paths["FLAIR"], step="synth",
        inputs={"lesion_library_mask": _chosen_library_file(library, lesions.parameters)},
        parameters={
            "subject": asdict(person), "scanner": scanner, "with_head": head is not None,
            "resolution_mm": float(resolution_mm), "anatomy": anatomy.as_dict(),
            "head": asdict(head_geometry) if head is not None else None,
            "lesions": lesions.parameters, "template_files": [p.name for p in template.files],
            **({"drawn_profile": asdict(profile)} if scanner == RANDOM_PROFILE else {}),
        },
        seed=int(seed),
        extra={"gold_volume_ml": round(volume_ml, 4), "fazekas_pv": grades.periventricular,
               "fazekas_deep": grades.deep},
    )
    relative = {role: relative_path(path, out_dir) for role, path in paths.items()}
    return {
        "subject": person.subject, "dataset": DATASET_NAME, "scanner": profile.name, "stage": person.stage,
        "age": f"{person.age:.1f}", "sex": person.sex, "flair": relative["FLAIR"], "t1": relative["T1"],
        "brain_mask": relative["brainmask"] if with_brain_mask else "", "gold": relative["gold"],
        "volume_ml": f"{volume_ml:.4f}", "fazekas": str(grades.overall),
        "true_brain_mask": relative["brainmask"], "fazekas_pv": str(grades.periventricular),
        "fazekas_deep": str(grades.deep), "fat_suppressed": str(int(profile.fat_suppressed)),
        "skull_stripped": str(int(head is None)), "acquisition": "2D" if profile.two_d else "3D",
        "target_wmh_ml": f"{burden_ml:.4f}",
    }


def synthesize_cohort(
    out_dir: str | os.PathLike[str],
    n_subjects: int,
    seed: int = 0,
    scanners: Sequence[str] = ("A", "B", "C", "D", "E"),
    with_head: bool = True,
    lesion_library: str | os.PathLike[str] | None = None,
    with_brain_mask: bool = False,
    resolution_mm: float = 1.0,
) -> Path:
    """Write a phantom cohort of ``n_subjects`` and its ``manifest.tsv``; return the manifest path.

    See the module docstring for the files and columns and
    :func:`synthesize_subject` for the parameters. A 1 mm subject takes
    about 4 s of CPU (single-threaded) plus writing; the template load (3 s) is
    paid once per process.

    Raises
    ------
    InputError
        For ``n_subjects`` < 1, an empty or unknown scanner list, or a lesion
        library folder that does not exist or has no masks.
    """
    if n_subjects < 1:
        raise InputError(None, f"n_subjects must be at least 1, got {n_subjects}", "ask for one or more subjects")
    scanners = tuple(scanners)
    if not scanners:
        raise InputError(None, "no scanner profile given", f"name one or more of {', '.join(sorted(SCANNER_PROFILES))}")
    for name in scanners:
        if name != RANDOM_PROFILE:
            scanner_profile(name)
    if lesion_library is not None:
        lesion_library_files(lesion_library)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a folder", "choose a folder for --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(1, n_subjects + 1):
        scanner = scanners[(index - 1) % len(scanners)]
        log.info("synth: subject %d/%d on scanner %s", index, n_subjects, scanner)
        rows.append(synthesize_subject(
            out_dir, index, seed=seed, scanner=scanner, with_head=with_head, lesion_library=lesion_library,
            with_brain_mask=with_brain_mask, resolution_mm=resolution_mm,
        ))
    return write_manifest(pd.DataFrame(rows), out_dir / "manifest.tsv")


def _chosen_library_file(library: tuple[Path, ...], parameters: dict[str, object]) -> Path | None:
    name = parameters.get("library_file")
    return next((path for path in library if path.name == name), None)
