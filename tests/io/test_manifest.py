"""manifest.tsv: reading, validation (paths, IDs, values), canonical order, round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from wmhkit.errors import ManifestError
from wmhkit.io.manifest import (
    MANIFEST_COLUMNS,
    Manifest,
    is_path_column,
    is_valid_id,
    read_manifest,
    relative_path,
    validate_manifest,
    write_manifest,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read by the manifest")
    return path


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A folder with two subjects' FLAIRs, one T1 and one gold mask."""
    for name in ("data/s1/flair.nii.gz", "data/s1/t1.nii.gz", "data/s1/wmh.nii.gz", "data/s2/flair.nii.gz"):
        _touch(tmp_path / name)
    return tmp_path


def _row_error(path: Path, header: list[str], rows: list[list[str]], **kwargs) -> ManifestError:
    _write_tsv(path, header, rows)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, **kwargs)
    return info.value


# --------------------------------------------------------------------------- reading


def test_paths_resolve_relative_to_the_manifest_folder(dataset: Path) -> None:
    manifest_path = _write_tsv(
        dataset / "manifest.tsv", ["subject", "flair", "t1"],
        [["s1", "data/s1/flair.nii.gz", "data/s1/t1.nii.gz"], ["s2", "data/s2/flair.nii.gz", ""]],
    )
    manifest = read_manifest(manifest_path)
    assert len(manifest) == 2
    assert manifest.root == dataset
    assert manifest.path(0, "flair") == dataset / "data/s1/flair.nii.gz"
    assert manifest.path(0, "t1").is_file()
    assert manifest.path(1, "t1") is None  # empty cell: not available


def test_manifest_in_a_subfolder_resolves_from_that_subfolder(dataset: Path) -> None:
    manifest_path = _write_tsv(dataset / "data" / "manifest.tsv", ["subject", "flair"], [["s1", "s1/flair.nii.gz"]])
    manifest = read_manifest(manifest_path)
    assert manifest.path(0, "flair") == dataset / "data/s1/flair.nii.gz"
    # The same relative cell read from the parent folder does not exist there.
    error = _row_error(dataset / "manifest.tsv", ["subject", "flair"], [["s1", "s1/flair.nii.gz"]])
    assert error.row == 1 and "does not exist" in str(error)


def test_missing_optional_columns_are_fine_and_cells_are_text(dataset: Path) -> None:
    manifest_path = _write_tsv(
        dataset / "manifest.tsv", ["subject", "flair", "age"], [["s1", "data/s1/flair.nii.gz", "070"]]
    )
    manifest = read_manifest(manifest_path)
    assert list(manifest.table.columns) == ["subject", "age", "flair"]
    assert manifest.table.loc[0, "age"] == "070"  # not re-typed to 70
    assert next(manifest.rows()) == {"subject": "s1", "age": "070", "flair": "data/s1/flair.nii.gz"}


def test_unknown_columns_are_kept_after_known_ones_in_their_order(dataset: Path) -> None:
    header = ["zeta", "flair", "bronze_lst", "site_note", "subject", "bronze_bianca", "split", "alpha"]
    row = ["z", "data/s1/flair.nii.gz", "data/s1/wmh.nii.gz", "note", "s1", "", "train", "a"]
    manifest = read_manifest(_write_tsv(dataset / "manifest.tsv", header, [row]))
    assert list(manifest.table.columns) == [
        "subject", "flair", "split", "bronze_bianca", "bronze_lst", "zeta", "site_note", "alpha",
    ]
    assert manifest.table.loc[0, "zeta"] == "z" and manifest.table.loc[0, "alpha"] == "a"
    assert manifest.bronze_methods == ["bianca", "lst"]


def test_all_known_columns_come_out_in_canonical_order(dataset: Path) -> None:
    header = list(reversed(MANIFEST_COLUMNS))
    values = {
        "subject": "s1", "session": "ses1", "dataset": "d", "scanner": "GE", "stage": "MCI", "age": "71",
        "sex": "F", "flair": "data/s1/flair.nii.gz", "t1": "data/s1/t1.nii.gz", "brain_mask": "",
        "gold": "data/s1/wmh.nii.gz", "silver": "", "volume_ml": "3.5", "fazekas": "2", "split": "test",
    }
    manifest = read_manifest(_write_tsv(dataset / "m.tsv", header, [[values[c] for c in header]]))
    assert tuple(manifest.table.columns) == MANIFEST_COLUMNS
    assert next(manifest.rows()) == values


def test_byte_order_mark_and_blank_padding_are_tolerated(dataset: Path) -> None:
    path = dataset / "manifest.tsv"
    path.write_text("\ufeffsubject\tflair\n s1 \tdata/s1/flair.nii.gz \n", encoding="utf-8")
    manifest = read_manifest(path)
    assert manifest.table.loc[0, "subject"] == "s1"
    assert manifest.path(0, "flair") == dataset / "data/s1/flair.nii.gz"


def test_stage_is_canonicalised_case_insensitively(dataset: Path) -> None:
    manifest = read_manifest(
        _write_tsv(dataset / "m.tsv", ["subject", "flair", "stage"], [["s1", "data/s1/flair.nii.gz", "mci"]])
    )
    assert manifest.table.loc[0, "stage"] == "MCI"


def test_scan_id_joins_subject_and_session() -> None:
    manifest = validate_manifest(
        pd.DataFrame({"subject": ["a", "b"], "session": ["s1", ""], "flair": ["a.nii", "b.nii"]}),
        root=".", check_files=False,
    )
    assert [manifest.scan_id(row) for row in manifest.rows()] == ["a_s1", "b"]


def test_validate_does_not_modify_the_callers_table() -> None:
    table = pd.DataFrame({"flair": [" x.nii "], "subject": ["s1"], "stage": ["ad"]})
    manifest = validate_manifest(table, root=".", check_files=False)
    assert list(table.columns) == ["flair", "subject", "stage"] and table.loc[0, "stage"] == "ad"
    assert manifest.table.loc[0, "stage"] == "AD" and manifest.table.loc[0, "flair"] == "x.nii"


def test_none_and_nan_cells_become_empty() -> None:
    table = pd.DataFrame({"subject": ["s1", "s2"], "flair": ["a.nii", "b.nii"], "t1": [None, float("nan")]})
    manifest = validate_manifest(table, root=".", check_files=False)
    assert manifest.table["t1"].tolist() == ["", ""]


# --------------------------------------------------------------------------- whole-file errors


def test_missing_manifest_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope.tsv: manifest file does not exist"):
        read_manifest(tmp_path / "nope.tsv")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "not a readable tab-separated file"),
        ("subject\tflair\n", "no scans"),
        ("subject\tflair\ns1\ta.nii\textra\n", "not a readable tab-separated file"),
        ("subject\tt1\ns1\ta.nii\n", "missing required column(s) ['flair']"),
        ("subject\tflair\tflair\ns1\ta.nii\tb.nii\n", "duplicate column(s) ['flair']"),
        ("subject\tflair\tbronze_\ns1\ta.nii\t\n", "does not name a method"),
        ("subject\tflair\tbronze_../x\ns1\ta.nii\t\n", "does not name a method"),
    ],
)
def test_malformed_files_are_rejected_without_a_row(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "manifest.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_files=False)
    assert reason in str(info.value) and info.value.row is None
    assert str(path) in str(info.value)


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "manifest.tsv"
    path.write_bytes("subject\tflair\nJos\u00e9\ta.nii\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="UTF-8"):
        read_manifest(path, check_files=False)


# --------------------------------------------------------------------------- row errors: IDs


@pytest.mark.parametrize(
    ("subject", "session"),
    [("Sub01", "sub01"), ("sub01", "SUB01")],
)
def test_duplicate_subjects_ignoring_case_are_rejected_with_row(dataset: Path, subject: str, session: str) -> None:
    error = _row_error(
        dataset / "m.tsv", ["subject", "flair"],
        [["s0", "data/s1/flair.nii.gz"], [subject, "data/s1/flair.nii.gz"], [session, "data/s2/flair.nii.gz"]],
    )
    assert error.row == 3
    assert "row 3:" in str(error) and "repeats row 2" in str(error)


def test_same_subject_in_two_sessions_is_fine_but_repeated_session_is_not(dataset: Path) -> None:
    rows = [["s1", "base", "data/s1/flair.nii.gz"], ["s1", "year2", "data/s2/flair.nii.gz"]]
    assert len(read_manifest(_write_tsv(dataset / "ok.tsv", ["subject", "session", "flair"], rows))) == 2
    error = _row_error(dataset / "bad.tsv", ["subject", "session", "flair"], [*rows, ["s1", "Base", "data/s1/flair.nii.gz"]])
    assert error.row == 3 and "repeats row 1" in str(error)


def test_scan_ids_that_collide_through_the_session_join_are_rejected(dataset: Path) -> None:
    error = _row_error(
        dataset / "m.tsv", ["subject", "session", "flair"],
        [["a", "b", "data/s1/flair.nii.gz"], ["a_b", "", "data/s2/flair.nii.gz"]],
    )
    assert error.row == 2 and "'a_b'" in str(error)


@pytest.mark.parametrize(
    "subject",
    ["../x", "a/b", "=cmd()", "..", ".hidden", "-rf", "a b", "a\\b", "+1", "@SUM(A1)", "süb", "x" * 65, "sub;rm"],
)
def test_hostile_subject_ids_are_rejected_with_row(dataset: Path, subject: str) -> None:
    error = _row_error(
        dataset / "m.tsv", ["subject", "flair"], [["ok1", "data/s1/flair.nii.gz"], [subject, "data/s2/flair.nii.gz"]]
    )
    assert error.row == 2 and "row 2:" in str(error)
    assert "not a safe ID" in str(error)


def test_hostile_session_ids_are_rejected_with_row(dataset: Path) -> None:
    error = _row_error(dataset / "m.tsv", ["subject", "session", "flair"], [["s1", "../up", "data/s1/flair.nii.gz"]])
    assert error.row == 1 and "session '../up'" in str(error)


def test_empty_subject_and_empty_flair_are_rejected(dataset: Path) -> None:
    error = _row_error(dataset / "a.tsv", ["subject", "flair"], [["s1", "data/s1/flair.nii.gz"], ["", "data/s2/flair.nii.gz"]])
    assert error.row == 2 and "empty subject" in str(error)
    error = _row_error(dataset / "b.tsv", ["subject", "flair"], [["s1", ""]])
    assert error.row == 1 and "no flair path" in str(error)


@pytest.mark.parametrize("value", ["sub-01", "S1", "2019-03", "a.b_c-d", "x" * 64])
def test_ordinary_ids_are_valid(value: str) -> None:
    assert is_valid_id(value)


def test_trailing_newline_is_not_a_valid_id() -> None:
    assert not is_valid_id("sub01\n")


# --------------------------------------------------------------------------- row errors: paths


def test_missing_file_is_rejected_with_row_and_column(dataset: Path) -> None:
    error = _row_error(
        dataset / "m.tsv", ["subject", "flair", "gold"],
        [["s1", "data/s1/flair.nii.gz", "data/s1/wmh.nii.gz"], ["s2", "data/s2/flair.nii.gz", "data/s2/wmh.nii.gz"]],
    )
    assert error.row == 2 and "gold file 'data/s2/wmh.nii.gz' does not exist" in str(error)


def test_missing_files_pass_when_not_checked(dataset: Path) -> None:
    path = _write_tsv(dataset / "m.tsv", ["subject", "flair"], [["s9", "data/s9/flair.nii.gz"]])
    assert read_manifest(path, check_files=False).path(0, "flair") == dataset / "data/s9/flair.nii.gz"


def test_folder_instead_of_file_is_rejected(dataset: Path) -> None:
    error = _row_error(dataset / "m.tsv", ["subject", "flair"], [["s1", "data/s1"]])
    assert error.row == 1 and "does not exist" in str(error)


def test_absolute_parent_and_symlinked_input_paths_are_accepted(tmp_path: Path) -> None:
    # Read-only datasets elsewhere on disk are the normal case (BIANCA, nnU-Net and FreeSurfer take them).
    elsewhere = _touch(tmp_path / "archive" / "sub-01" / "FLAIR.nii.gz")
    outside = _touch(tmp_path / "outside" / "t1.nii.gz")
    root = tmp_path / "study" / "manifests"
    (root / "s3").mkdir(parents=True)
    (root / "s3" / "flair.nii.gz").symlink_to(outside)
    (root / "linked").symlink_to(tmp_path / "archive", target_is_directory=True)
    manifest = read_manifest(_write_tsv(root / "m.tsv", ["subject", "flair", "t1"], [
        ["s1", str(elsewhere), "../../outside/t1.nii.gz"],
        ["s2", "linked/sub-01/FLAIR.nii.gz", ""],
        ["s3", "s3/flair.nii.gz", ""],
    ]))
    assert manifest.path(0, "flair") == elsewhere
    assert manifest.path(0, "t1").resolve() == outside.resolve()
    assert manifest.path(1, "flair").resolve() == elsewhere.resolve()
    assert manifest.path(2, "flair").resolve() == outside.resolve()


def test_missing_file_outside_the_manifest_folder_names_where_it_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "study").mkdir()
    error = _row_error(tmp_path / "study" / "m.tsv", ["subject", "flair"], [["s1", "../raw/flair.nii.gz"]])
    assert error.row == 1 and f"looked for {tmp_path / 'raw' / 'flair.nii.gz'}" in str(error)


@pytest.mark.skipif(os.name == "nt", reason="Windows paths are valid there")
@pytest.mark.parametrize("cell", ["C:\\data\\x.nii", "C:/x.nii", "\\\\server\\share\\x.nii"])
def test_windows_drive_paths_are_refused_on_posix_even_unchecked(dataset: Path, cell: str) -> None:
    error = _row_error(dataset / "m.tsv", ["subject", "flair"], [["s0", "data/s2/flair.nii.gz"], ["s1", cell]],
                       check_files=False)
    assert error.row == 2 and "Windows drive or network path" in str(error)


def test_symlink_inside_the_manifest_folder_is_accepted(tmp_path: Path) -> None:
    # DataLad / git-annex datasets store files as symlinks into the dataset's own .git.
    stored = _touch(tmp_path / ".git" / "annex" / "objects" / "ab" / "flair")
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "flair.nii.gz").symlink_to(stored)
    manifest = read_manifest(_write_tsv(tmp_path / "m.tsv", ["subject", "flair"], [["s1", "s1/flair.nii.gz"]]))
    assert manifest.path(0, "flair").resolve() == stored.resolve()


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\r", "\x7f"])
@pytest.mark.parametrize("column", ["flair", "stage", "note"])
def test_control_characters_in_any_cell_are_rejected(tmp_path: Path, character: str, column: str) -> None:
    path = tmp_path / "m.tsv"
    cells = {"subject": "s1", "flair": "a.nii", "stage": "CN", "note": "ok"}
    cells[column] = f"x{character}y"
    path.write_bytes(("subject\tflair\tstage\tnote\n" + "\t".join(cells.values()) + "\n").encode())
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_files=False)
    assert info.value.row == 1 and f"{column} cell has control characters" in str(info.value)


def test_quoted_newline_in_a_cell_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text('subject\tflair\ns1\t"a\nb.nii"\n', encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_files=False)
    assert info.value.row == 1 and "control characters" in str(info.value)


def test_newline_in_a_dataframe_subject_is_rejected() -> None:
    with pytest.raises(ManifestError, match="row 1: subject cell has control characters"):
        validate_manifest(pd.DataFrame({"subject": ["s\n1"], "flair": ["a.nii"]}), root=".", check_files=False)


# --------------------------------------------------------------------------- row errors: values


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("stage", "dementia", "stage 'dementia' is not one of CN, MCI, AD, other"),
        ("volume_ml", "-1", "not a finite number >= 0"),
        ("volume_ml", "nan", "not a finite number >= 0"),
        ("volume_ml", "inf", "not a finite number >= 0"),
        ("volume_ml", "12 ml", "not a finite number >= 0"),
        ("fazekas", "2.5", "whole number 0-6"),
        ("fazekas", "7", "whole number 0-6"),
        ("fazekas", "-1", "whole number 0-6"),
        ("fazekas", "high", "whole number 0-6"),
    ],
)
def test_bad_values_are_rejected_with_row(column: str, value: str, reason: str) -> None:
    table = pd.DataFrame({"subject": ["s1", "s2"], "flair": ["a.nii", "b.nii"], column: ["", value]})
    with pytest.raises(ManifestError) as info:
        validate_manifest(table, root=".", check_files=False)
    assert info.value.row == 2 and reason in str(info.value)


def test_good_values_pass() -> None:
    table = pd.DataFrame({
        "subject": ["s1", "s2", "s3"], "flair": ["a.nii", "b.nii", "c.nii"],
        "volume_ml": ["0", "12.75", ""], "fazekas": ["0", "3.0", "6"], "stage": ["other", "cn", ""],
    })
    manifest = validate_manifest(table, root=".", check_files=False)
    assert manifest.table["stage"].tolist() == ["other", "CN", ""]
    assert manifest.table["volume_ml"].tolist() == ["0", "12.75", ""]


# --------------------------------------------------------------------------- writing


def test_round_trip_write_then_read_is_identical(dataset: Path) -> None:
    table = pd.DataFrame({
        "note": ["first \"quoted\" note", ""],
        "subject": ["s1", "s2"],
        "flair": ["data/s1/flair.nii.gz", "data/s2/flair.nii.gz"],
        "gold": ["data/s1/wmh.nii.gz", ""],
        "bronze_lst": ["data/s1/wmh.nii.gz", ""],
        "age": ["070", "65.5"],
        "stage": ["CN", "AD"],
    })
    first = write_manifest(table, dataset / "manifest.tsv")
    manifest = read_manifest(first)
    assert list(manifest.table.columns) == ["subject", "stage", "age", "flair", "gold", "bronze_lst", "note"]
    assert manifest.table.loc[0, "note"] == 'first "quoted" note' and manifest.table.loc[0, "age"] == "070"
    second = write_manifest(manifest, dataset / "again.tsv")
    assert second.read_bytes() == first.read_bytes()
    pd.testing.assert_frame_equal(read_manifest(second).table, manifest.table)


def test_written_file_is_plain_tsv_with_canonical_header(dataset: Path) -> None:
    table = pd.DataFrame({"flair": ["data/s1/flair.nii.gz"], "extra": ["x"], "subject": ["s1"]})
    path = write_manifest(table, dataset / "manifest.tsv")
    assert path.read_text(encoding="utf-8") == "subject\tflair\textra\ns1\tdata/s1/flair.nii.gz\tx\n"


def test_writing_an_invalid_table_fails_and_writes_nothing(tmp_path: Path) -> None:
    table = pd.DataFrame({"subject": ["../x"], "flair": ["a.nii"]})
    with pytest.raises(ManifestError, match="not a safe ID"):
        write_manifest(table, tmp_path / "manifest.tsv")
    assert list(tmp_path.iterdir()) == []


def test_writing_a_manifest_into_a_parent_folder_rebases_its_paths(dataset: Path) -> None:
    inner = read_manifest(_write_tsv(dataset / "data" / "m.tsv", ["subject", "flair"], [["s1", "s1/flair.nii.gz"]]))
    outer = read_manifest(write_manifest(inner, dataset / "manifest.tsv"))
    assert outer.table.loc[0, "flair"] == "data/s1/flair.nii.gz"
    assert outer.path(0, "flair") == inner.path(0, "flair")


def test_writing_a_manifest_below_beside_or_far_from_its_root_keeps_every_path_valid(dataset: Path) -> None:
    manifest = read_manifest(_write_tsv(dataset / "data" / "m.tsv", ["subject", "flair"], [["s1", "s1/flair.nii.gz"]]))
    far = dataset / "a" / "b" / "c"
    expected = {
        dataset / "data" / "s1" / "m.tsv": "flair.nii.gz",
        dataset / "elsewhere" / "m.tsv": "../data/s1/flair.nii.gz",
        far / "m.tsv": (dataset / "data" / "s1" / "flair.nii.gz").as_posix(),  # three folders up: absolute
    }
    for target, cell in expected.items():
        written = read_manifest(write_manifest(manifest, target))
        assert written.table.loc[0, "flair"] == cell
        assert written.path(0, "flair").resolve() == manifest.path(0, "flair").resolve()


def test_relative_path_uses_forward_slashes_and_keeps_symlink_names(tmp_path: Path) -> None:
    stored = _touch(tmp_path / "store" / "blob")
    link = tmp_path / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz"
    link.parent.mkdir(parents=True)
    link.symlink_to(stored)
    assert relative_path(link, tmp_path) == "sub-01/anat/sub-01_FLAIR.nii.gz"
    assert relative_path(os.path.join(tmp_path, "a", "..", "b.nii"), tmp_path) == "b.nii"


def test_path_columns_are_the_image_columns() -> None:
    assert [c for c in MANIFEST_COLUMNS if is_path_column(c)] == ["flair", "t1", "brain_mask", "gold", "silver"]
    assert is_path_column("bronze_lst") and not is_path_column("volume_ml")


def test_manifest_objects_compare_by_identity() -> None:
    table = pd.DataFrame({"subject": ["s1"], "flair": ["a.nii"]})
    first = Manifest(table, Path("."))
    assert first == first and first != Manifest(table, Path("."))


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_spreadsheet_csv_export_with_bom_and_crlf_is_read_and_logged(
    dataset: Path, delimiter: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = dataset / "m.csv"
    rows = [["subject", "flair", "note"], ["s1", "data/s1/flair.nii.gz", '"a, b; c"'], ["s2", "data/s2/flair.nii.gz", ""]]
    path.write_bytes(b"\xef\xbb\xbf" + "".join(delimiter.join(r) + "\r\n" for r in rows).encode())
    with caplog.at_level("INFO", logger="wmhkit.io.manifest"):
        manifest = read_manifest(path)
    assert manifest.table["subject"].tolist() == ["s1", "s2"] and manifest.table.loc[0, "note"] == "a, b; c"
    assert "separated file (detected from its header row)" in caplog.text


def test_header_without_required_columns_shows_how_it_was_split(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text("subject|flair\ns1|a.nii\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"header read as \['subject\|flair'\]"):
        read_manifest(path)


def test_windows_line_endings_are_read(dataset: Path) -> None:
    path = dataset / "m.tsv"
    path.write_bytes(b"subject\tflair\tnote\r\ns1\tdata/s1/flair.nii.gz\tx\r\n")
    manifest = read_manifest(path)
    assert list(manifest.table.columns) == ["subject", "flair", "note"] and manifest.table.loc[0, "note"] == "x"
