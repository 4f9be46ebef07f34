"""Build a :class:`~wmhkit.io.manifest.Manifest` from a dataset folder laid out as BIDS or as
the MICCAI 2017 WMH challenge release.

BIDS (``layout="bids"``)
------------------------
* FLAIR: ``sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>][_<key>-<value>...]_FLAIR.nii[.gz]``.
  ``subject`` is ``sub-<s>`` and ``session`` is ``ses-<t>`` (prefixes kept, as in BIDS
  file names; no session folder: empty session). The ``sub``/``ses`` entities of the
  file name must agree with its folders.
* Several FLAIRs in one session (``acq-``, ``run-``... entities): each becomes its own
  row, and their session is the session label followed by the other entities, e.g.
  ``ses-01_acq-2D_run-2`` (or ``acq-2D_run-2`` without sessions), so every scan has a
  distinct ID. A lone FLAIR keeps the plain session label.
* T1: ``*_T1w.nii[.gz]`` in the same ``anat`` folder: the one whose entities other than
  ``sub``/``ses`` equal the FLAIR's; else the only T1w of the folder; else none (logged).
* Masks (suffix ``mask``, ``.nii[.gz]``) under ``derivatives/<pipeline>/`` or directly
  under ``derivatives/``, in ``sub-<s>/[ses-<t>/]anat/``:

  - ``gold``: ``desc-wmh`` or ``label-WMH`` (any case), e.g. ``sub-01_desc-wmh_mask.nii.gz``,
    ``sub-01_space-orig_label-WMH_mask.nii.gz``;
  - ``brain_mask``: ``desc-brain``, e.g. ``sub-01_ses-01_desc-brain_mask.nii.gz``.

  A mask belongs to a FLAIR when ``sub``/``ses`` match and every other entity it carries
  (``acq``, ``run``, ...; not ``desc``, ``label``, ``space``, ``res``, ``den``) equals the
  FLAIR's. Masks with a ``space-`` other than ``orig``, ``native``, ``individual`` or
  ``FLAIR`` are ignored (template space), as are masks whose header grid (shape and
  affine) differs from the FLAIR's (logged as a warning). Two candidates for one FLAIR
  are an error.
* ``participants.tsv`` (when present) is merged on ``participant_id`` (``sub-`` added if
  missing). ``n/a`` becomes empty. Its ``group`` column becomes ``stage`` when there is
  no ``stage`` column and every value is CN / MCI / AD / other; otherwise it is kept as
  ``group``. Columns named like manifest IDs or paths are skipped (logged); every other
  column (``age``, ``sex``, ``scanner``, ...) is kept. ``dataset`` defaults to the
  dataset folder's name.

MICCAI 2017 WMH (``layout="miccai"``)
-------------------------------------
* A case is any folder ``<case>`` holding ``pre/FLAIR.nii.gz`` (``pre/T1.nii.gz`` as
  ``t1``) and optionally ``wmh.nii.gz`` as ``gold`` (label 1 = WMH, label 2 = other
  pathology, which METRICS.md ignores in scoring and training). Cases may sit at any
  depth, as in the release: ``Utrecht/0``, ``Amsterdam/GE3T/100``.
* ``orig/``: a case with only ``orig/FLAIR.nii.gz`` uses it, without a ``t1`` (the
  challenge's own registered T1 is the one in ``pre/``); ``pre/`` wins when both exist.
* The folders between the root and the case are its site: ``subject`` is
  ``<site...>-<case>`` (``Amsterdam-GE3T-100``), ``scanner`` is the site folders joined
  with ``-``, ``dataset`` the first of them. A root that is itself one site folder
  (``Utrecht/``) gives its own name as the site. Characters outside the ID alphabet
  become ``_``.

Every layout ends in :func:`~wmhkit.io.manifest.validate_manifest` with paths relative
to the dataset root, so its rules (safe IDs, existing files) apply; a symlink is kept
under its own name wherever it points (DataLad/git-annex datasets).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pandas as pd

from wmhkit.errors import ManifestError
from wmhkit.io.manifest import (
    STAGES,
    Manifest,
    is_path_column,
    relative_path,
    validate_manifest,
    write_manifest,
)
from wmhkit.io.nifti import NIFTI_SUFFIXES, nifti_stem

log = logging.getLogger(__name__)

Layout = Literal["bids", "miccai", "auto"]
LAYOUTS: tuple[str, ...] = ("bids", "miccai")

#: What each reader looks for, as shown in "nothing found" errors.
LAYOUT_PATTERNS: dict[str, tuple[str, ...]] = {
    "bids": ("sub-*/anat/*_FLAIR.nii[.gz]", "sub-*/ses-*/anat/*_FLAIR.nii[.gz]"),
    "miccai": ("**/<case>/pre/FLAIR.nii.gz", "**/<case>/orig/FLAIR.nii.gz"),
}
_NATIVE_SPACES = frozenset({"orig", "native", "individual", "flair"})
_MASK_KEY_IGNORED = frozenset({"sub", "ses", "desc", "label", "space", "res", "den"})
_GRID_TOLERANCE_MM = 1e-3
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def read_layout(root: str | os.PathLike[str], layout: Layout = "auto") -> Manifest:
    """Build a manifest of the dataset at ``root``, paths relative to ``root``.

    Parameters
    ----------
    root
        The dataset folder (BIDS root, or the MICCAI ``training``/``test`` folder or a site).
    layout
        ``"bids"``, ``"miccai"`` or ``"auto"`` (:func:`detect_layout`).

    Returns
    -------
    Manifest
        One row per FLAIR found, ``root`` as its root; every file checked to exist.

    Raises
    ------
    ManifestError
        When ``root`` is not a folder, ``layout`` is unknown, no FLAIR is found (the
        error names the folder and the patterns looked for), or the rows break a
        manifest rule.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(root, "dataset folder does not exist", "give the folder holding the dataset")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in _READERS:
        raise ManifestError(root, f"unknown layout {layout!r}", f"use one of {', '.join((*LAYOUTS, 'auto'))}")
    records = _READERS[layout](root)
    if not records:
        raise ManifestError(root, _nothing_found(root, layout), _layout_hint(root, layout))
    log.info("%s layout: %d scan(s) in %s", layout, len(records), root)
    return validate_manifest(pd.DataFrame(records), root=root, check_files=True)


def detect_layout(root: str | os.PathLike[str]) -> str:
    """``"bids"`` or ``"miccai"``: the one layout under which ``root`` holds FLAIR scans.

    Raises
    ------
    ManifestError
        When neither or both layouts find scans.
    """
    root = Path(root)
    found = [layout for layout in LAYOUTS if _FINDERS[layout](root)]
    if len(found) == 1:
        return found[0]
    if not found:
        patterns = "; ".join(f"{name}: {', '.join(LAYOUT_PATTERNS[name])}" for name in LAYOUTS)
        raise ManifestError(root, f"no FLAIR scans found (looked for {patterns})", "check the folder, or write manifest.tsv by hand")
    raise ManifestError(root, "folder holds scans of both the BIDS and the MICCAI layouts", "pass the layout explicitly")


def build_manifest(
    root: str | os.PathLike[str], layout: Layout = "auto", out_path: str | os.PathLike[str] | None = None
) -> Path:
    """Scan the dataset at ``root`` and write ``manifest.tsv``; return its path.

    Parameters
    ----------
    root
        The dataset folder.
    layout
        ``"bids"``, ``"miccai"`` or ``"auto"``.
    out_path
        The manifest to write (default ``root/manifest.tsv``; a folder gets
        ``manifest.tsv`` inside). It must lie in ``root`` or one of its parent folders,
        because manifest paths may not climb with ``..``.

    Raises
    ------
    ManifestError
        When ``out_path`` lies elsewhere, or as :func:`read_layout`.
    """
    root = Path(root)
    out = root / "manifest.tsv" if out_path is None else Path(out_path)
    if out.is_dir():
        out = out / "manifest.tsv"
    out_dir, data_dir = Path(os.path.abspath(out.parent)), Path(os.path.abspath(root))
    if out_dir != data_dir and out_dir not in data_dir.parents:
        raise ManifestError(
            out, f"the manifest must be in the dataset folder {data_dir} or above it (its paths may not use '..')",
            f"write it to {data_dir / 'manifest.tsv'} or into a parent folder of the dataset",
        )
    return write_manifest(read_layout(root, layout), out)


# --------------------------------------------------------------------------- BIDS


def _bids_flairs(root: Path) -> list[Path]:
    return [path for anat in _bids_anat_folders(root) for path in _niftis(anat) if _bids_suffix(path) == "FLAIR"]


def _bids_anat_folders(root: Path) -> list[Path]:
    folders = []
    for subject_dir in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        folders.append(subject_dir / "anat")
        folders.extend(sorted(p / "anat" for p in subject_dir.glob("ses-*") if p.is_dir()))
    return [f for f in folders if f.is_dir()]


def _read_bids(root: Path) -> list[dict[str, str]]:
    derivative_masks = _bids_derivative_masks(root)
    records: list[dict[str, str]] = []
    for anat in _bids_anat_folders(root):
        niftis = _niftis(anat)
        flairs = [p for p in niftis if _bids_suffix(p) == "FLAIR"]
        t1s = [p for p in niftis if _bids_suffix(p) == "T1w"]
        for flair in flairs:
            entities = _bids_entities(flair)
            _check_bids_folders(flair, entities, anat)
            extra = [f"{k}-{v}" for k, v in entities.items() if k not in ("sub", "ses")]
            session_parts = [f"ses-{entities['ses']}"] if "ses" in entities else []
            if len(flairs) > 1:
                session_parts += extra
            records.append({
                "subject": f"sub-{entities['sub']}",
                "session": "_".join(session_parts),
                "dataset": root.name,
                "flair": relative_path(flair, root),
                "t1": _relative_or_empty(_bids_t1(flair, entities, t1s), root),
                "brain_mask": _relative_or_empty(_bids_mask(flair, entities, derivative_masks["brain_mask"]), root),
                "gold": _relative_or_empty(_bids_mask(flair, entities, derivative_masks["gold"]), root),
            })
    return _merge_participants(records, root)


def _check_bids_folders(flair: Path, entities: dict[str, str], anat: Path) -> None:
    subject_dir = anat.parent if not anat.parent.name.startswith("ses-") else anat.parent.parent
    folder_session = anat.parent.name if anat.parent.name.startswith("ses-") else ""
    file_session = f"ses-{entities['ses']}" if "ses" in entities else ""
    if f"sub-{entities.get('sub', '')}" != subject_dir.name or file_session != folder_session:
        raise ManifestError(
            flair, f"file name entities disagree with its folders ({subject_dir.name}/{folder_session or '-'})",
            "rename the file or move it to the matching sub-/ses- folder",
        )


def _bids_t1(flair: Path, entities: dict[str, str], t1s: list[Path]) -> Path | None:
    def key(ents: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in ents.items() if k not in ("sub", "ses")}

    same = [t1 for t1 in t1s if key(_bids_entities(t1)) == key(entities)]
    if len(same) == 1:
        return same[0]
    if len(t1s) == 1:
        return t1s[0]
    if t1s:
        log.warning("%s: %d T1w images and none matches its entities; t1 left empty", flair, len(t1s))
    return None


def _bids_derivative_masks(root: Path) -> dict[str, list[Path]]:
    masks: dict[str, list[Path]] = {"gold": [], "brain_mask": []}
    derivatives = root / "derivatives"
    if not derivatives.is_dir():
        return masks
    for pipeline in [derivatives, *sorted(p for p in derivatives.iterdir() if p.is_dir() and not p.name.startswith("sub-"))]:
        for anat in _bids_anat_folders(pipeline):
            for path in _niftis(anat):
                kind = _bids_mask_kind(path)
                if kind:
                    masks[kind].append(path)
    return masks


def _bids_mask_kind(path: Path) -> str | None:
    if _bids_suffix(path) != "mask":
        return None
    entities = {k: v.lower() for k, v in _bids_entities(path).items()}
    if entities.get("space", "orig").lower() not in _NATIVE_SPACES:
        log.debug("%s: space-%s is not the scan's own space; ignored", path, entities["space"])
        return None
    if entities.get("desc") == "wmh" or entities.get("label") == "wmh":
        return "gold"
    if entities.get("desc") == "brain":
        return "brain_mask"
    return None


def _bids_mask(flair: Path, entities: dict[str, str], candidates: list[Path]) -> Path | None:
    matches = []
    for mask in candidates:
        mask_entities = _bids_entities(mask)
        same_scan = mask_entities.get("sub") == entities["sub"] and mask_entities.get("ses") == entities.get("ses")
        qualifiers = {k: v for k, v in mask_entities.items() if k not in _MASK_KEY_IGNORED}
        if same_scan and all(entities.get(k) == v for k, v in qualifiers.items()):
            if _same_grid(flair, mask):
                matches.append(mask)
            else:
                log.warning("%s: not on the grid of %s; ignored", mask, flair)
    if len(matches) > 1:
        raise ManifestError(
            flair, f"several masks fit this FLAIR: {', '.join(str(m) for m in matches)}",
            "keep one (e.g. add acq-/run- entities to the mask names) or write manifest.tsv by hand",
        )
    return matches[0] if matches else None


def _merge_participants(records: list[dict[str, str]], root: Path) -> list[dict[str, str]]:
    path = root / "participants.tsv"
    if not records or not path.is_file():
        return records
    try:
        participants = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(path, f"not a readable tab-separated file ({exc})", "save it as UTF-8 TSV with a header row") from exc
    if "participant_id" not in participants.columns:
        raise ManifestError(path, "no participant_id column", "add the participant_id column (sub-<label>)")
    participants = participants.replace({"n/a": ""})
    ids = [pid if pid.startswith("sub-") else f"sub-{pid}" for pid in participants["participant_id"].str.strip()]
    repeated = sorted({pid for pid in ids if ids.count(pid) > 1})
    if repeated:
        raise ManifestError(path, f"participant_id repeated: {repeated}", "keep one row per participant")
    columns = _participant_columns(path, participants)
    by_subject = dict(zip(ids, participants[list(columns)].to_dict(orient="records"), strict=True))
    merged = []
    for record in records:
        values = by_subject.get(record["subject"], {})
        merged.append(record | {columns[c]: values.get(c, "") for c in columns})
    return merged


def _participant_columns(path: Path, participants: pd.DataFrame) -> dict[str, str]:
    """``{participants.tsv column: manifest column}`` for the columns merged in."""
    columns: dict[str, str] = {}
    for column in participants.columns:
        if column == "participant_id":
            continue
        if column in ("subject", "session") or is_path_column(column):
            log.warning("%s: column %r would clash with manifest IDs or paths; skipped", path, column)
            continue
        columns[column] = column
    stages = {s.lower() for s in STAGES}
    group = participants.get("group")
    if "stage" not in columns and group is not None and all(v.strip().lower() in stages | {""} for v in group):
        columns["group"] = "stage"
    return columns


def _bids_entities(path: Path) -> dict[str, str]:
    """``{key: value}`` of a BIDS file name's ``key-value`` parts, in order (suffix excluded)."""
    entities = {}
    for part in _nifti_stem(path).split("_")[:-1]:
        key, sep, value = part.partition("-")
        if sep and key and value:
            entities[key] = value
    return entities


def _bids_suffix(path: Path) -> str:
    return _nifti_stem(path).split("_")[-1]


# --------------------------------------------------------------------------- MICCAI 2017


def _miccai_cases(root: Path) -> dict[Path, Path]:
    """``{case folder: FLAIR}``, ``pre/`` preferred over ``orig/``, sorted by case folder."""
    cases: dict[Path, Path] = {}
    for variant in ("orig", "pre"):  # pre last, so it replaces orig
        for extension in NIFTI_SUFFIXES:
            for flair in root.rglob(f"{variant}/FLAIR{extension}"):
                if not any(part.startswith(".") for part in flair.relative_to(root).parts):
                    cases[flair.parent.parent] = flair
    return dict(sorted(cases.items()))


def _read_miccai(root: Path) -> list[dict[str, str]]:
    records = []
    for case, flair in _miccai_cases(root).items():
        parts = case.relative_to(root).parts
        site = parts[:-1] or (root.name,)
        case_id = parts[-1] if parts else root.name
        t1 = _first_file(flair.parent, "T1") if flair.parent.name == "pre" else None
        records.append({
            "subject": _safe_id("-".join((*site, case_id))),
            "dataset": site[0],
            "scanner": "-".join(site),
            "flair": relative_path(flair, root),
            "t1": _relative_or_empty(t1, root),
            "gold": _relative_or_empty(_first_file(case, "wmh"), root),
        })
    return records


def _safe_id(text: str) -> str:
    return _UNSAFE_ID_CHARACTERS.sub("_", text)


# --------------------------------------------------------------------------- shared


_READERS: dict[str, Callable[[Path], list[dict[str, str]]]] = {"bids": _read_bids, "miccai": _read_miccai}
_FINDERS: dict[str, Callable[[Path], Iterable[object]]] = {"bids": _bids_flairs, "miccai": _miccai_cases}


def _nothing_found(root: Path, layout: str) -> str:
    return f"no FLAIR scans found for the {layout} layout (looked for {', '.join(LAYOUT_PATTERNS[layout])})"


def _layout_hint(root: Path, layout: str) -> str:
    others = [other for other in LAYOUTS if other != layout and _FINDERS[other](root)]
    if others:
        return f"this folder looks like the {others[0]} layout: use layout {others[0]!r} (--layout {others[0]})"
    return "check the folder, or write manifest.tsv by hand"


def _niftis(folder: Path) -> list[Path]:
    """NIfTI files of ``folder`` (not hidden ones such as macOS ``._`` files), sorted."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.endswith(NIFTI_SUFFIXES)
    )


def _nifti_stem(path: Path) -> str:
    stem = nifti_stem(path)
    return path.name if stem is None else stem


def _first_file(folder: Path, stem: str) -> Path | None:
    for extension in NIFTI_SUFFIXES:
        if (folder / f"{stem}{extension}").is_file():
            return folder / f"{stem}{extension}"
    return None


def _relative_or_empty(path: Path | None, root: Path) -> str:
    return relative_path(path, root) if path is not None else ""


def _same_grid(image: Path, mask: Path) -> bool:
    """True when the two headers declare the same 3D shape and affine (within 1e-3 mm).

    Only headers are read. When either header is unreadable this returns True, so
    that the mask stays in the manifest and the NIfTI validation of the stage that
    loads it reports the real problem.
    """
    try:
        first, second = nib.load(image), nib.load(mask)
    except Exception:  # nibabel raises many types on corrupt files; validation happens on load
        return True
    same_shape = first.shape[:3] == second.shape[:3]
    return same_shape and np.allclose(first.affine, second.affine, atol=_GRID_TOLERANCE_MM)
