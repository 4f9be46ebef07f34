"""Atomic writes (no partial outputs, ever) and output paths that cannot escape the output folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from wmhkit.errors import OutputError
from wmhkit.io.atomic import atomic_path, resolve_output, write_bytes_atomic, write_text_atomic


class Interrupted(Exception):
    pass


def test_atomic_path_renames_the_temporary_file_into_place(tmp_path):
    final = tmp_path / "sub-01" / "wmh.nii.gz"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        assert tmp.name.endswith(".nii.gz") and tmp.name.startswith(".wmh.nii.gz.")
        tmp.write_bytes(b"complete")
        assert not final.exists()
    assert final.read_bytes() == b"complete"
    assert sorted(p.name for p in final.parent.iterdir()) == ["wmh.nii.gz"]


def test_exception_inside_leaves_no_file_and_no_temporary_file(tmp_path):
    final = tmp_path / "volumes.csv"
    with pytest.raises(Interrupted):
        with atomic_path(final) as tmp:
            tmp.write_text("subject,volume_ml\nsub-01,")
            raise Interrupted
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_keeps_the_previous_complete_file(tmp_path):
    final = write_text_atomic(tmp_path / "volumes.csv", "subject,volume_ml\nsub-01,1.5\n")
    with pytest.raises(Interrupted):
        with atomic_path(final) as tmp:
            tmp.write_text("subject,volume_ml\nsub-01,")
            raise Interrupted
    assert final.read_text() == "subject,volume_ml\nsub-01,1.5\n"
    assert [p.name for p in tmp_path.iterdir()] == ["volumes.csv"]


def test_a_killed_writer_leaves_the_previous_complete_file(tmp_path):
    final = write_text_atomic(tmp_path / "wmh.json", '{"complete": true}\n')
    writer = textwrap.dedent(
        f"""
        import os, signal
        from wmhkit.io.atomic import atomic_path
        with atomic_path({str(final)!r}) as tmp:
            with open(tmp, "w") as handle:
                handle.write('{{"compl')
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", writer], check=False, timeout=60)
    assert result.returncode == -9
    assert final.read_text() == '{"complete": true}\n'


def test_symlink_planted_at_the_output_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "outside" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    planted = out / "wmh.json"
    planted.symlink_to(victim)
    write_text_atomic(planted, "sidecar")
    assert victim.read_text() == "keep me"
    assert not planted.is_symlink()
    assert planted.read_text() == "sidecar"


def test_outputs_get_ordinary_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "wmh.nii.gz", b"x")
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_long_output_names_fit_in_a_temporary_name(tmp_path):
    final = tmp_path / ("sub-" + "x" * 240 + ".nii.gz")
    assert write_bytes_atomic(final, b"ok").read_bytes() == b"ok"


def test_write_text_atomic_writes_utf8(tmp_path):
    path = write_text_atomic(tmp_path / "report.html", "Fazekas ≥ 2")
    assert path.read_bytes() == "Fazekas ≥ 2".encode()


def test_resolve_output_returns_the_path_under_the_root(tmp_path):
    resolved = resolve_output(tmp_path, "sub-01/ses-1/wmh.nii.gz")
    assert resolved == tmp_path.resolve() / "sub-01" / "ses-1" / "wmh.nii.gz"


@pytest.mark.parametrize(
    "relative",
    ["../escape.nii.gz", "sub-01/../../escape.nii.gz", "sub-01/../wmh.nii.gz", "..", "/etc/passwd",
     "sub\x00-01/wmh.nii.gz", "sub-01\n/wmh.nii.gz", "sub-01\r/wmh.nii.gz", "", ".", "  "],
)
def test_resolve_output_rejects_dotdot_absolute_control_characters_and_empty(tmp_path, relative):
    with pytest.raises(OutputError):
        resolve_output(tmp_path, relative)


def test_resolve_output_rejects_symlinked_parent_escaping_the_root(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub-01").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputError, match="outside the output folder"):
        resolve_output(out, "sub-01/wmh.nii.gz")


def test_resolve_output_accepts_symlinked_parent_inside_the_root(tmp_path):
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "alias").symlink_to(out / "real", target_is_directory=True)
    assert resolve_output(out, "alias/wmh.nii.gz") == out.resolve() / "real" / "wmh.nii.gz"


def test_resolve_output_keeps_a_final_symlink_so_the_write_replaces_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "wmh.json").symlink_to(victim)
    resolved = resolve_output(out, "wmh.json")
    assert resolved == out.resolve() / "wmh.json"
    write_text_atomic(resolved, "sidecar")
    assert victim.read_text() == "keep me"
