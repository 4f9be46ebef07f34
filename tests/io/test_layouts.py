"""Dataset layouts (BIDS, MICCAI 2017 WMH) → manifest, and the ``wmhkit manifest`` command."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from wmhkit.cli import app, main
from wmhkit.errors import ManifestError
from wmhkit.io.layouts import build_manifest, detect_layout, read_layout
from wmhkit.io.manifest import read_manifest

_AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def _nifti(path: Path, affine: np.ndarray = _AFFINE, shape: tuple[int, int, int] = (4, 4, 4)) -> Path:
    """A tiny real NIfTI file (uint8) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.uint8), affine), path)
    return path


def _bids(root: Path, names: list[str], participants: str | None = None) -> Path:
    """A BIDS tree: ``names`` are paths relative to ``root``; all NIfTI files are 4×4×4."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "toy", "BIDSVersion": "1.8.0"}')
    for name in names:
        _nifti(root / name)
    if participants is not None:
        (root / "participants.tsv").write_text(participants, encoding="utf-8")
    return root


def _miccai(root: Path, cases: list[str], *, t1: bool = True, gold: bool = True, variant: str = "pre") -> Path:
    for case in cases:
        _nifti(root / case / variant / "FLAIR.nii.gz")
        if t1:
            _nifti(root / case / variant / "T1.nii.gz")
        if gold:
            _nifti(root / case / "wmh.nii.gz")
    return root


def _rows(manifest) -> dict[str, dict[str, str]]:
    return {manifest.scan_id(row): row for row in manifest.rows()}


# --------------------------------------------------------------------------- BIDS


def test_bids_sessions_t1_masks_and_paths(tmp_path: Path) -> None:
    root = _bids(tmp_path / "study", [
        "sub-01/ses-01/anat/sub-01_ses-01_FLAIR.nii.gz",
        "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz",
        "sub-01/ses-02/anat/sub-01_ses-02_FLAIR.nii",
        "sub-02/ses-01/anat/sub-02_ses-01_FLAIR.nii.gz",
        "derivatives/manual/sub-01/ses-01/anat/sub-01_ses-01_desc-wmh_mask.nii.gz",
        "derivatives/manual/sub-02/ses-01/anat/sub-02_ses-01_space-orig_label-WMH_mask.nii.gz",
        "derivatives/synthstrip/sub-01/ses-02/anat/sub-01_ses-02_desc-brain_mask.nii.gz",
    ])
    manifest = read_layout(root, "bids")
    assert manifest.root == root
    rows = _rows(manifest)
    assert sorted(rows) == ["sub-01_ses-01", "sub-01_ses-02", "sub-02_ses-01"]
    first = rows["sub-01_ses-01"]
    assert (first["subject"], first["session"], first["dataset"]) == ("sub-01", "ses-01", "study")
    assert first["flair"] == "sub-01/ses-01/anat/sub-01_ses-01_FLAIR.nii.gz"
    assert first["t1"] == "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
    assert first["gold"] == "derivatives/manual/sub-01/ses-01/anat/sub-01_ses-01_desc-wmh_mask.nii.gz"
    assert first["brain_mask"] == ""
    assert rows["sub-01_ses-02"]["t1"] == ""  # missing T1 is fine
    assert rows["sub-01_ses-02"]["flair"].endswith("_FLAIR.nii")
    assert rows["sub-01_ses-02"]["brain_mask"] == "derivatives/synthstrip/sub-01/ses-02/anat/sub-01_ses-02_desc-brain_mask.nii.gz"
    assert rows["sub-02_ses-01"]["gold"].endswith("space-orig_label-WMH_mask.nii.gz")
    assert all(manifest.path(row, "flair").is_file() for row in manifest.rows())


def test_bids_without_sessions_and_with_masks_directly_under_derivatives(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", [
        "sub-A/anat/sub-A_FLAIR.nii.gz",
        "sub-B/anat/sub-B_FLAIR.nii.gz",
        "sub-B/anat/sub-B_T1w.nii.gz",
        "derivatives/sub-B/anat/sub-B_desc-WMH_mask.nii.gz",
    ])
    rows = _rows(read_layout(root, "auto"))
    assert sorted(rows) == ["sub-A", "sub-B"]
    assert rows["sub-A"]["session"] == "" and rows["sub-A"]["gold"] == ""
    assert rows["sub-B"]["gold"] == "derivatives/sub-B/anat/sub-B_desc-WMH_mask.nii.gz"
    assert rows["sub-B"]["t1"] == "sub-B/anat/sub-B_T1w.nii.gz"


def test_bids_several_flairs_in_one_session_become_distinct_rows(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", [
        "sub-01/ses-01/anat/sub-01_ses-01_acq-2D_FLAIR.nii.gz",
        "sub-01/ses-01/anat/sub-01_ses-01_acq-3D_run-2_FLAIR.nii.gz",
        "sub-01/ses-01/anat/sub-01_ses-01_acq-3D_run-2_T1w.nii.gz",
        "sub-01/ses-01/anat/sub-01_ses-01_acq-mprage_T1w.nii.gz",
        "sub-01/ses-01/anat/sub-01_ses-01_acq-3D_run-1_FLAIR.nii.gz",
        "derivatives/manual/sub-01/ses-01/anat/sub-01_ses-01_acq-3D_run-2_desc-wmh_mask.nii.gz",
        "sub-02/anat/sub-02_run-1_FLAIR.nii.gz",
        "sub-02/anat/sub-02_run-2_FLAIR.nii.gz",
    ])
    rows = _rows(read_layout(root, "bids"))
    assert sorted(rows) == [
        "sub-01_ses-01_acq-2D", "sub-01_ses-01_acq-3D_run-1", "sub-01_ses-01_acq-3D_run-2", "sub-02_run-1", "sub-02_run-2",
    ]
    run2 = rows["sub-01_ses-01_acq-3D_run-2"]
    assert run2["session"] == "ses-01_acq-3D_run-2"
    assert run2["t1"].endswith("acq-3D_run-2_T1w.nii.gz")  # same entities
    assert run2["gold"].endswith("acq-3D_run-2_desc-wmh_mask.nii.gz")
    assert rows["sub-01_ses-01_acq-3D_run-1"]["gold"] == ""  # the run-2 mask is not run-1's
    assert rows["sub-01_ses-01_acq-2D"]["t1"] == ""  # two T1w, none with matching entities


def test_bids_mask_on_another_grid_or_in_template_space_is_ignored(tmp_path: Path, caplog) -> None:
    root = _bids(tmp_path / "ds", [
        "sub-01/anat/sub-01_FLAIR.nii.gz",
        "derivatives/fmriprep/sub-01/anat/sub-01_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
        "derivatives/manual/sub-01/anat/sub-01_desc-wmh_mask.nii.gz",
    ])
    _nifti(root / "derivatives/fmriprep/sub-01/anat/sub-01_desc-brain_mask.nii.gz", shape=(5, 4, 4))
    layouts_log = logging.getLogger("wmhkit.io.layouts")
    layouts_log.addHandler(caplog.handler)  # the CLI may have stopped "wmhkit" from propagating to root
    try:
        rows = _rows(read_layout(root, "bids"))
    finally:
        layouts_log.removeHandler(caplog.handler)
    assert rows["sub-01"]["brain_mask"] == ""
    assert rows["sub-01"]["gold"] == "derivatives/manual/sub-01/anat/sub-01_desc-wmh_mask.nii.gz"
    assert "not on the grid" in caplog.text


def test_bids_two_candidate_masks_for_one_flair_is_an_error(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", [
        "sub-01/anat/sub-01_FLAIR.nii.gz",
        "derivatives/rater1/sub-01/anat/sub-01_desc-wmh_mask.nii.gz",
        "derivatives/rater2/sub-01/anat/sub-01_label-WMH_mask.nii.gz",
    ])
    with pytest.raises(ManifestError, match="several masks fit this FLAIR.*rater1.*rater2"):
        read_layout(root, "bids")


def test_bids_participants_are_merged_and_group_becomes_stage(tmp_path: Path) -> None:
    participants = (
        "participant_id\tage\tsex\tgroup\tscanner\tflair\n"
        "sub-01\t71\tF\tmci\tPrisma\tignored.nii\n"
        "02\tn/a\tM\tCN\tSkyra\t\n"
        "sub-03\t80\tM\tAD\tPrisma\t\n"
    )
    root = _bids(tmp_path / "ds", [
        "sub-01/ses-01/anat/sub-01_ses-01_FLAIR.nii.gz",
        "sub-01/ses-02/anat/sub-01_ses-02_FLAIR.nii.gz",
        "sub-02/anat/sub-02_FLAIR.nii.gz",
        "sub-04/anat/sub-04_FLAIR.nii.gz",
    ], participants)
    manifest = read_layout(root, "bids")
    rows = _rows(manifest)
    assert list(manifest.table.columns) == ["subject", "session", "dataset", "scanner", "stage", "age", "sex", "flair", "t1", "brain_mask", "gold"]
    assert [rows["sub-01_ses-02"][c] for c in ("age", "sex", "stage", "scanner")] == ["71", "F", "MCI", "Prisma"]
    assert [rows["sub-02"][c] for c in ("age", "sex", "stage", "scanner")] == ["", "M", "CN", "Skyra"]
    assert [rows["sub-04"][c] for c in ("age", "sex", "stage")] == ["", "", ""]  # not in participants.tsv
    assert rows["sub-01_ses-01"]["flair"] == "sub-01/ses-01/anat/sub-01_ses-01_FLAIR.nii.gz"


def test_bids_group_outside_the_stage_vocabulary_is_kept_as_group(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-01_FLAIR.nii.gz"], "participant_id\tgroup\nsub-01\tpatient\n")
    manifest = read_layout(root, "bids")
    assert "stage" not in manifest.table.columns and manifest.table.loc[0, "group"] == "patient"


@pytest.mark.parametrize(
    ("participants", "reason"),
    [
        ("id\tage\nsub-01\t70\n", "no participant_id column"),
        ("participant_id\tage\nsub-01\t70\n01\t71\n", "participant_id repeated"),
    ],
)
def test_bids_bad_participants_file_is_an_error(tmp_path: Path, participants: str, reason: str) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-01_FLAIR.nii.gz"], participants)
    with pytest.raises(ManifestError, match=reason) as info:
        read_layout(root, "bids")
    assert "participants.tsv" in str(info.value)


def test_bids_stage_column_with_bad_value_is_rejected_with_row(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-01_FLAIR.nii.gz"], "participant_id\tstage\nsub-01\tsick\n")
    with pytest.raises(ManifestError, match="row 1: stage 'sick'"):
        read_layout(root, "bids")


def test_bids_file_in_the_wrong_subject_folder_is_an_error(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-02_FLAIR.nii.gz"])
    with pytest.raises(ManifestError, match="sub-02_FLAIR.nii.gz: file name entities disagree"):
        read_layout(root, "bids")


def test_bids_hidden_files_and_other_suffixes_are_ignored(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", [
        "sub-01/anat/sub-01_FLAIR.nii.gz",
        "sub-01/anat/sub-01_T2w.nii.gz",
        "sub-01/anat/sub-01_acq-FLAIR_T2w.nii.gz",
    ])
    (root / "sub-01/anat/._sub-01_FLAIR.nii.gz").write_bytes(b"macOS metadata")
    (root / "sub-01/anat/sub-01_FLAIR.json").write_text("{}")
    manifest = read_layout(root, "bids")
    assert manifest.table["flair"].tolist() == ["sub-01/anat/sub-01_FLAIR.nii.gz"]


def test_bids_symlink_to_a_file_elsewhere_is_kept_under_its_own_name(tmp_path: Path) -> None:
    outside = _nifti(tmp_path / "elsewhere" / "flair.nii.gz")
    root = _bids(tmp_path / "ds", [])
    (root / "sub-01" / "anat").mkdir(parents=True)
    (root / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz").symlink_to(outside)
    manifest = read_layout(root, "bids")
    assert manifest.table.loc[0, "flair"] == "sub-01/anat/sub-01_FLAIR.nii.gz"
    assert manifest.path(0, "flair").resolve() == outside.resolve()


# --------------------------------------------------------------------------- MICCAI 2017


def test_miccai_two_sites_subjects_scanners_and_gold(tmp_path: Path) -> None:
    root = _miccai(tmp_path / "training", ["Utrecht/0", "Utrecht/2", "Amsterdam/GE3T/100"])
    _nifti(root / "Utrecht/2/orig/FLAIR.nii.gz")  # pre/ wins over orig/
    manifest = read_layout(root, "miccai")
    rows = _rows(manifest)
    assert sorted(rows) == ["Amsterdam-GE3T-100", "Utrecht-0", "Utrecht-2"]
    assert [rows["Amsterdam-GE3T-100"][c] for c in ("dataset", "scanner")] == ["Amsterdam", "Amsterdam-GE3T"]
    assert [rows["Utrecht-0"][c] for c in ("dataset", "scanner")] == ["Utrecht", "Utrecht"]
    utrecht2 = rows["Utrecht-2"]
    assert utrecht2["flair"] == "Utrecht/2/pre/FLAIR.nii.gz"
    assert utrecht2["t1"] == "Utrecht/2/pre/T1.nii.gz"
    assert utrecht2["gold"] == "Utrecht/2/wmh.nii.gz"
    assert "session" not in manifest.table.columns


def test_miccai_missing_t1_and_gold_and_orig_only_cases(tmp_path: Path) -> None:
    root = tmp_path / "test"
    _miccai(root, ["Singapore/51"], t1=False, gold=False)
    _miccai(root, ["Singapore/52"], variant="orig")  # orig/T1 is not used
    rows = _rows(read_layout(root, "auto"))
    assert [rows["Singapore-51"][c] for c in ("t1", "gold")] == ["", ""]
    assert rows["Singapore-52"]["flair"] == "Singapore/52/orig/FLAIR.nii.gz"
    assert rows["Singapore-52"]["t1"] == "" and rows["Singapore-52"]["gold"] == "Singapore/52/wmh.nii.gz"


def test_miccai_root_that_is_one_site_uses_its_name(tmp_path: Path) -> None:
    root = _miccai(tmp_path / "Utrecht", ["0", "11"])
    rows = _rows(read_layout(root, "miccai"))
    assert sorted(rows) == ["Utrecht-0", "Utrecht-11"] and rows["Utrecht-11"]["scanner"] == "Utrecht"


def test_miccai_folder_names_are_made_safe_ids(tmp_path: Path) -> None:
    root = _miccai(tmp_path / "ds", ["Site A/case 1"])
    assert read_layout(root, "miccai").table.loc[0, "subject"] == "Site_A-case_1"


# --------------------------------------------------------------------------- detection and errors


def test_auto_detects_each_layout(tmp_path: Path) -> None:
    bids = _bids(tmp_path / "bids", ["sub-01/anat/sub-01_FLAIR.nii.gz"])
    miccai = _miccai(tmp_path / "miccai", ["Utrecht/0"])
    assert (detect_layout(bids), detect_layout(miccai)) == ("bids", "miccai")


def test_wrong_layout_names_the_folder_patterns_and_the_right_layout(tmp_path: Path) -> None:
    miccai = _miccai(tmp_path / "miccai", ["Utrecht/0"])
    with pytest.raises(ManifestError) as info:
        read_layout(miccai, "bids")
    message = str(info.value)
    assert str(miccai) in message and "sub-*/anat/*_FLAIR.nii[.gz]" in message and "--layout miccai" in message
    bids = _bids(tmp_path / "bids", ["sub-01/anat/sub-01_FLAIR.nii.gz"])
    with pytest.raises(ManifestError, match="pre/FLAIR.nii.gz.*--layout bids"):
        read_layout(bids, "miccai")


def test_empty_dataset_is_an_error_naming_folder_and_patterns(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub-01" / "anat").mkdir(parents=True)
    with pytest.raises(ManifestError) as info:
        read_layout(tmp_path / "empty", "auto")
    message = str(info.value)
    assert str(tmp_path / "empty") in message and "no FLAIR scans found" in message
    assert "bids: sub-*/anat/*_FLAIR.nii[.gz]" in message and "miccai: **/<case>/pre/FLAIR.nii.gz" in message


def test_folder_with_both_layouts_needs_an_explicit_layout(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-01_FLAIR.nii.gz"])
    _miccai(root, ["extra/1"])
    with pytest.raises(ManifestError, match="both"):
        read_layout(root, "auto")
    assert len(read_layout(root, "bids")) == 1


def test_missing_folder_and_unknown_layout_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="dataset folder does not exist"):
        read_layout(tmp_path / "absent", "bids")
    with pytest.raises(ManifestError, match="unknown layout 'nnunet'"):
        read_layout(tmp_path, "nnunet")


# --------------------------------------------------------------------------- build_manifest


def test_build_manifest_defaults_to_the_dataset_folder_and_round_trips(tmp_path: Path) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-01_FLAIR.nii.gz", "sub-01/anat/sub-01_T1w.nii.gz"])
    written = build_manifest(root, "bids")
    assert written == root / "manifest.tsv"
    assert written.read_text(encoding="utf-8") == (
        "subject\tsession\tdataset\tflair\tt1\tbrain_mask\tgold\n"
        "sub-01\t\tds\tsub-01/anat/sub-01_FLAIR.nii.gz\tsub-01/anat/sub-01_T1w.nii.gz\t\t\n"
    )
    assert build_manifest(root, "auto").read_bytes() == written.read_bytes()  # rerun: same bytes, manifest ignored


def test_build_manifest_in_a_parent_folder_prefixes_the_paths(tmp_path: Path) -> None:
    root = _miccai(tmp_path / "data" / "wmh2017", ["Utrecht/0"])
    written = build_manifest(root, "miccai", tmp_path / "manifest.tsv")
    manifest = read_manifest(written)
    assert manifest.table.loc[0, "flair"] == "data/wmh2017/Utrecht/0/pre/FLAIR.nii.gz"
    assert manifest.path(0, "gold") == root / "Utrecht/0/wmh.nii.gz"


def test_build_manifest_outside_the_dataset_is_refused_with_the_fix(tmp_path: Path) -> None:
    root = _miccai(tmp_path / "data", ["Utrecht/0"])
    for out in (tmp_path / "results" / "manifest.tsv", root / "Utrecht" / "manifest.tsv"):
        with pytest.raises(ManifestError) as info:
            build_manifest(root, "miccai", out)
        assert "must be in the dataset folder" in str(info.value)
        assert f"write it to {root.resolve() / 'manifest.tsv'}" in str(info.value)
        assert not out.exists()


# --------------------------------------------------------------------------- CLI


def test_cli_writes_the_manifest_and_prints_the_count(tmp_path: Path, capsys) -> None:
    root = _miccai(tmp_path / "training", ["Utrecht/0", "Singapore/50"])
    assert main(["manifest", str(root), "--layout", "miccai"]) == 0
    assert "2 scan(s) found" in capsys.readouterr().out
    assert sorted(read_manifest(root / "manifest.tsv").table["subject"]) == ["Singapore-50", "Utrecht-0"]


def test_cli_out_option_and_auto_layout(tmp_path: Path, capsys) -> None:
    root = _bids(tmp_path / "ds", ["sub-01/anat/sub-01_FLAIR.nii.gz"])
    assert main(["manifest", str(root), "--out", str(tmp_path / "all.tsv")]) == 0
    assert str(tmp_path / "all.tsv") in capsys.readouterr().out
    assert read_manifest(tmp_path / "all.tsv").table.loc[0, "flair"] == "ds/sub-01/anat/sub-01_FLAIR.nii.gz"


def test_cli_empty_dataset_exits_2_naming_the_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["manifest", str(tmp_path / "empty"), "--layout", "bids"]) == 2
    err = "".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "noFLAIRscansfound" in err and "".join(str(tmp_path / "empty").split()) in err
    assert not (tmp_path / "empty" / "manifest.tsv").exists()


def test_cli_rejects_an_unknown_layout(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["manifest", str(tmp_path), "--layout", "nifti"])
    assert result.exit_code == 2 and "nifti" in result.output
