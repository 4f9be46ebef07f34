"""The demo's cohort: phantoms shaped like the M3SL paper's data, plus optional real scans.

Phantom subject ``k`` is scanned on profile ``"ABCDE"[(k - 1) % 5]`` (see
:func:`wmhkit.synth.cohort.synthesize_cohort`), so every block of five subjects
covers all five scanners. The first ``unlabeled`` subjects lose their gold mask
(they keep ``volume_ml`` and ``fazekas``: the weak labels of the volume model),
the next ``gold_train`` keep it for the gold training stage, and the last
``test`` are held out of every training stage and only predicted and scored.

Two manifests are written under ``OUT``:

* ``training.tsv`` — every scan the label stages and the trainers see
  (unlabeled phantoms, gold training phantoms and, with real data, the real
  unlabeled clinical FLAIRs);
* ``test.tsv`` — the held-out scans with their gold masks (the test phantoms
  and, with real data, the three annotated Lesjak 2018 scans, ``dataset``
  ``lesjak2018``).

Real files are copied under ``OUT/real/`` (about 40 MB): a manifest may only
point into its own folder, and ``read_manifest`` refuses symlinks that leave it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wmhkit.errors import InputError
from wmhkit.io.manifest import read_manifest, write_manifest
from wmhkit.synth.cohort import synthesize_cohort
from wmhkit.synth.scanners import SCANNER_PROFILES

log = logging.getLogger(__name__)

TRAINING_MANIFEST = "training.tsv"
TEST_MANIFEST = "test.tsv"
#: Real scans: folder under ``--real-data``, dataset name and what they are used for.
LESJAK = "lesjak2018"
REAL_UNLABELED_OTHER = {"niivue-FLAIR.nii.gz": "niivue", "synthsr-demo-FLAIR.nii.gz": "synthsr"}


@dataclass(frozen=True)
class CohortPlan:
    """How many phantom subjects of each role, and their voxel size.

    Attributes
    ----------
    unlabeled
        Phantoms without gold (bronze/silver stages; volume weak labels). A
        multiple of five covers every scanner profile equally.
    gold_train
        Phantoms with gold for the gold training stage (train/validation split).
    test
        Held-out phantoms with gold, predicted and scored.
    resolution_mm
        Template resolution of :func:`~wmhkit.synth.cohort.synthesize_cohort`.
    with_brain_mask
        Give ``prepare`` the phantoms' true brain masks instead of computing them (faster).
    """

    unlabeled: int
    gold_train: int
    test: int
    resolution_mm: float
    with_brain_mask: bool = False

    def __post_init__(self) -> None:
        if self.unlabeled < len(SCANNER_PROFILES):
            raise ValueError(f"unlabeled must cover the {len(SCANNER_PROFILES)} scanner profiles, got {self.unlabeled}")
        if self.gold_train < 2 or self.test < 2:
            raise ValueError(f"gold_train and test need at least 2 scans each, got {self.gold_train}, {self.test}")

    @property
    def subjects(self) -> int:
        """Phantom subjects in all."""
        return self.unlabeled + self.gold_train + self.test

    def role(self, index: int) -> str:
        """Role of phantom subject ``index`` (1-based)."""
        if index <= self.unlabeled:
            return "unlabeled"
        return "gold-train" if index <= self.unlabeled + self.gold_train else "test"


@dataclass(frozen=True)
class CohortFiles:
    """The two manifests of :func:`build_cohort`."""

    training: Path
    test: Path


def build_cohort(
    out_dir: str | os.PathLike[str], plan: CohortPlan, *, seed: int, real_data: str | os.PathLike[str] | None = None,
) -> CohortFiles:
    """Synthesize the phantoms into ``out_dir`` (copying real scans too) and write both manifests.

    Parameters
    ----------
    out_dir
        Cohort folder (created).
    plan
        Subjects per role and resolution.
    seed
        Phantom cohort seed.
    real_data
        The shared real-data folder (holding ``lesjak2018/`` and ``unannotated-other/``), or None.

    Raises
    ------
    InputError
        When ``real_data`` lacks the Lesjak 2018 folders.
    """
    out_dir = Path(out_dir)
    phantoms = synthesize_cohort(out_dir, plan.subjects, seed=seed, resolution_mm=plan.resolution_mm,
                                 with_brain_mask=plan.with_brain_mask)
    table = read_manifest(phantoms).table.copy()
    table["demo_role"] = [plan.role(index) for index in range(1, len(table) + 1)]
    unlabeled = table["demo_role"] == "unlabeled"
    table.loc[unlabeled, "gold"] = ""
    training = table[table["demo_role"] != "test"]
    test = table[table["demo_role"] == "test"]
    if real_data is not None:
        real_unlabeled, real_test = copy_real_scans(Path(real_data), out_dir / "real")
        training = pd.concat([training, real_unlabeled], ignore_index=True)
        test = pd.concat([test, real_test], ignore_index=True)
    # The held-out scans are predicted from their FLAIR (and brain mask) only: no T1 to prepare.
    test = test.assign(t1="")
    return CohortFiles(
        training=write_manifest(training.fillna("").reset_index(drop=True), out_dir / TRAINING_MANIFEST),
        test=write_manifest(test.fillna("").reset_index(drop=True), out_dir / TEST_MANIFEST),
    )


def copy_real_scans(real_data: Path, copy_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copy the real scans under ``copy_dir`` and return their manifest rows (unlabeled, annotated).

    Unlabeled: every ``lesjak2018/unannotated/<patient>-<study>/FLAIR.nii.gz`` (raw
    clinical 2D FLAIR) and the 3D FLAIRs of ``unannotated-other``. Annotated: the
    ``lesjak2018/annotated/<patient>`` FLAIRs with their consensus masks as gold.
    Paths are relative to ``copy_dir``'s parent (the cohort folder).

    Raises
    ------
    InputError
        When the Lesjak 2018 folders are missing.
    """
    lesjak = real_data / LESJAK
    annotated = sorted((lesjak / "annotated").glob("patient*/FLAIR.nii.gz"))
    unannotated = sorted((lesjak / "unannotated").glob("patient*/FLAIR.nii.gz"))
    if not annotated or not unannotated:
        raise InputError(real_data, f"no {LESJAK}/annotated/*/FLAIR.nii.gz or {LESJAK}/unannotated/*/FLAIR.nii.gz",
                         "pass the shared real-data folder (e.g. ../shared/data/real) to --real-data")
    root = copy_dir.parent
    unlabeled_rows = []
    for flair in unannotated:
        patient, _, study = flair.parent.name.partition("-")
        unlabeled_rows.append(_real_row(f"lesjak-{patient}", study, LESJAK, "lesjak-clinical",
                                        {"flair": flair}, copy_dir / flair.parent.name, root, "unlabeled"))
    for name, dataset in REAL_UNLABELED_OTHER.items():
        flair = real_data / "unannotated-other" / name
        if flair.is_file():
            unlabeled_rows.append(_real_row(dataset, "", dataset, dataset, {"flair": flair}, copy_dir / dataset,
                                            root, "unlabeled"))
    test_rows = [
        _real_row(f"lesjak-{flair.parent.name}", "", LESJAK, "lesjak-mni",
                  {"flair": flair, "gold": flair.parent / "consensus.nii.gz"},
                  copy_dir / f"annotated-{flair.parent.name}", root, "test")
        for flair in annotated
    ]
    log.info("real data: %d unlabeled scans for the label stages, %d annotated scans held out",
             len(unlabeled_rows), len(test_rows))
    return pd.DataFrame(unlabeled_rows, dtype=str), pd.DataFrame(test_rows, dtype=str)


def _real_row(subject: str, session: str, dataset: str, scanner: str, files: dict[str, Path], folder: Path,
              root: Path, role: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    row = {"subject": subject, "session": session, "dataset": dataset, "scanner": scanner, "stage": "other",
           "demo_role": role}
    for column, source in files.items():
        copy = folder / source.name
        shutil.copyfile(source, copy)
        row[column] = copy.relative_to(root).as_posix()
    return row
