"""The output-folder lock: a second run is refused with the owner and what to do."""

from __future__ import annotations

import json
import os
import signal
import socket

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
