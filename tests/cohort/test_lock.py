"""The output-folder lock: a second run is refused with the owner and what to do."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from wmhkit.cli import main
from wmhkit.cohort.lock import LOCK_NAME, output_lock
from wmhkit.errors import OutputError


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, step="prepare") as lock:
        owner = json.loads(lock.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(OutputError, match=f"{out} is in use by wmhkit prepare \\(process {os.getpid()}"):
            with output_lock(out, step="predict"):
                pass
    assert not (out / LOCK_NAME).exists()
    with output_lock(out, step="predict"):  # free again
        pass


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError), output_lock(tmp_path, step="bronze"):
        raise RuntimeError("scan crashed the stage")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_of_a_killed_run_on_this_host_is_broken(tmp_path, caplog):
    lock = tmp_path / LOCK_NAME
    dead_pid = 2**22 + 12345  # above Linux's default pid_max: no such process
    lock.write_text(json.dumps({"step": "predict", "host": socket.gethostname(), "pid": dead_pid, "started": "x"}))
    with output_lock(tmp_path, step="predict") as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert "removed the stale lock" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_lock_from_another_host_is_never_broken(tmp_path):
    lock = tmp_path / LOCK_NAME
    owner = {"step": "predict", "host": "node-that-is-not-" + socket.gethostname(), "pid": 2**22 + 12345,
             "started": "x"}
    lock.write_text(json.dumps(owner))
    with pytest.raises(OutputError, match=f"if that run was killed on another host, delete {lock}"):
        with output_lock(tmp_path, step="predict"):
            pass
    assert json.loads(lock.read_text()) == owner


def test_cli_refuses_a_locked_output_folder(tmp_path, write_cohort):
    manifest = write_cohort(tmp_path / "data", 1)
    out = tmp_path / "prepared"
    with output_lock(out, step="prepare"):
        assert main(["prepare", str(manifest), "--out", str(out), "--no-n4", "--no-qc-png"]) == 2
    assert not (out / "sub-01").exists()


def test_taking_the_lock_removes_what_a_killed_writer_left_half_written(tmp_path):
    (tmp_path / "sub-01").mkdir(parents=True)
    half_written = tmp_path / "sub-01" / ".sub-01_wmh.nii.gz.0123456789ab.tmp.nii.gz"
    half_written.write_bytes(b"\x1f\x8b partial")
    finished = tmp_path / "sub-01" / "sub-01_wmh.nii.gz"
    finished.write_bytes(b"complete")
    with output_lock(tmp_path, step="predict"):
        assert not half_written.exists()
        assert finished.read_bytes() == b"complete"


def test_sigterm_unwinds_a_cli_run_so_its_lock_is_released(tmp_path):
    from wmhkit.cli import _exit_cleanly_on_sigterm

    previous = signal.getsignal(signal.SIGTERM)
    try:
        _exit_cleanly_on_sigterm()
        with pytest.raises(SystemExit) as stopped, output_lock(tmp_path, step="predict"):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert not (tmp_path / LOCK_NAME).exists()


def _empty_lock(folder, age_s):
    lock = folder / LOCK_NAME
    lock.write_bytes(b"")  # what a crash between creating and writing the lock leaves
    stamp = time.time() - age_s
    os.utime(lock, (stamp, stamp))
    return lock


def test_an_old_unreadable_lock_that_no_process_holds_is_broken(tmp_path, caplog):
    _empty_lock(tmp_path, age_s=60)
    with output_lock(tmp_path, step="predict") as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert "removed the unreadable lock" in caplog.text


@pytest.mark.parametrize("age_s", [0, 60])
def test_an_unreadable_lock_is_kept_while_a_process_may_hold_it(tmp_path, age_s):
    lock = _empty_lock(tmp_path, age_s)
    with open(lock, "rb+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live owner holds its flock
        with pytest.raises(OutputError, match=f"cannot be read .* delete {lock}"), output_lock(tmp_path, step="x"):
            pass
    assert lock.exists()
    if age_s == 0:  # young: its owner may be writing it right now, held or not
        with pytest.raises(OutputError, match="cannot be read"), output_lock(tmp_path, step="x"):
            pass


def test_a_full_disk_while_writing_the_lock_leaves_no_lock(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError, match=f"cannot write the lock file {tmp_path / LOCK_NAME}: No space left"):
        with output_lock(tmp_path, step="predict"):
            pass
    assert list(tmp_path.iterdir()) == []


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "wmhkit", *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_output_folder_under_a_file_is_a_one_line_error_naming_it(tmp_path, write_cohort):
    manifest = write_cohort(tmp_path / "data", 1)
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    result = _cli("prepare", manifest, "--out", blocker / "prepared", "--no-n4", "--no-qc-png")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"cannot create the output folder {blocker / 'prepared'}: a file is in the way" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_a_one_line_error_naming_it(tmp_path, write_cohort):
    manifest = write_cohort(tmp_path / "data", 1)
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    result = _cli("prepare", manifest, "--out", out, "--no-n4", "--no-qc-png")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"cannot write into the output folder {out}: Permission denied" in result.stderr
