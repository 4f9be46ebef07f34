"""Fault injection against the real CLI: start a command in a subprocess, SIGKILL it, check the outputs.

No hook inside wmhkit is used: kills come from outside, at a seeded moment chosen in
the window where the reference (uninterrupted) run was writing outputs. After a kill,
every final file (not an atomic-write temporary ``.NAME.<hex>.tmp.EXT``) must be
complete: NIfTI loads, CSV/TSV parse, JSON parses (and sidecars validate against the
schema), checkpoints load with ``weights_only=True``. Since runs are deterministic,
a complete file is either byte-identical to the reference run's or an earlier
complete version (a checkpoint of an earlier epoch, a shorter history, ...).

Campaigns (:func:`kill_case`): run a command uninterrupted in-process (the
reference), then in a subprocess SIGKILLed ``kills`` times at seeded moments after
its first write (each later attempt resuming the earlier one), audit the files left
after every kill, rerun it to completion in-process, and compare every final file
with the reference.

Loaded by file path from the tests and from ``benchmarks/bench_reliability.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from wmhkit.cli import main

from wmhkit.io.atomic import is_temporary
from wmhkit.io.nifti import load_image
from wmhkit.io.provenance import sidecar_path, validate_sidecar

#: Environment of every child: one thread (fast, and bit-identical to the in-process runs). ITK's
#: multi-threaded STAPLE reductions differ in the last bits from run to run, hence one ITK thread too.
CHILD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                     "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
_POLL_S = 0.02


def wmhkit_command(*args: str | os.PathLike[str]) -> list[str]:
    """``python -m wmhkit ARGS`` with this interpreter."""
    return [sys.executable, "-m", "wmhkit", *map(os.fspath, args)]


def child_environment() -> dict[str, str]:
    return {**os.environ, **CHILD_ENVIRONMENT}


def _first_write_seen(out_dir: Path, since_ns: int) -> bool:
    """True once any file under ``out_dir`` (temporaries included) was modified after ``since_ns``."""
    if not out_dir.exists():
        return False
    for path in out_dir.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime_ns >= since_ns:
                return True
        except FileNotFoundError:  # a temporary renamed away meanwhile
            continue
    return False


def kill_after_first_write(command: list[str], out_dir: Path, delay_s: float, timeout_s: float = 300.0) -> bool:
    """Start ``command``; ``delay_s`` seconds after it first writes under ``out_dir``, SIGKILL it.

    Returns False when the command finished before the kill (the case then tests nothing).
    """
    since_ns = time.time_ns() - 1_000_000  # filesystem timestamps may be coarser than the clock
    child = subprocess.Popen(command, env=child_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    give_up = time.monotonic() + timeout_s
    deadline = None
    while child.poll() is None and time.monotonic() < give_up:
        if deadline is None and _first_write_seen(out_dir, since_ns):
            deadline = time.monotonic() + delay_s
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(_POLL_S if deadline is None else min(_POLL_S, max(0.0, deadline - time.monotonic())))
    if child.poll() is not None:
        return False
    child.send_signal(signal.SIGKILL)
    child.wait()
    return True


def final_files(folder: Path) -> list[Path]:
    """Every regular, non-temporary file under ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and not is_temporary(p))


def temporary_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_temporary(p))


def digests(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every final file under ``folder``."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in final_files(folder)}


def _is_sidecar(path: Path) -> bool:
    if path.suffix != ".json":
        return False
    stem = path.name[: -len(".json")]
    siblings = (path.with_name(stem + ".nii.gz"), path.with_name(stem + ".nii"), path.with_name(stem))
    return any(s.is_file() and sidecar_path(s) == path for s in siblings if s != path)


def check_complete(path: Path) -> None:
    """Raise when ``path`` is not a complete file of its type (parsed in full)."""
    name = path.name
    if name.endswith((".nii.gz", ".nii")):
        load_image(path, allow_no_orientation=True)
    elif name.endswith((".csv", ".tsv")):
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            raise ValueError(f"{path}: table does not end with a newline (cut short)")
        pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",", keep_default_na=False)
    elif name.endswith(".json"):
        if _is_sidecar(path):
            validate_sidecar(path)
        else:
            json.loads(path.read_text(encoding="utf-8"))
    elif name.endswith(".pt"):
        import torch

        torch.load(path, map_location="cpu", weights_only=True)
    elif name.endswith((".yaml", ".yml")):
        yaml.safe_load(path.read_text(encoding="utf-8"))
    elif path.stat().st_size == 0 and not name.endswith((".txt", ".log")):
        raise ValueError(f"{path}: empty file")


@dataclass
class KillAudit:
    """What one killed run left behind, judged against the reference run's files."""

    files: int = 0
    identical: int = 0
    earlier_versions: int = 0
    temporaries: int = 0
    broken: list[str] = field(default_factory=list)


def audit_after_kill(out_dir: Path, reference: dict[str, str]) -> KillAudit:
    """Check every final file under ``out_dir`` (see the module docstring)."""
    audit = KillAudit(temporaries=len(temporary_files(out_dir)) if out_dir.exists() else 0)
    if not out_dir.exists():
        return audit
    for path in final_files(out_dir):
        audit.files += 1
        relative = path.relative_to(out_dir).as_posix()
        if reference.get(relative) == hashlib.sha256(path.read_bytes()).hexdigest():
            audit.identical += 1
            continue
        try:
            check_complete(path)
        except Exception as error:  # noqa: BLE001 - every failure is a finding, reported by name
            audit.broken.append(f"{relative}: {type(error).__name__}: {str(error)[:200]}")
        else:
            audit.earlier_versions += 1
    return audit


def differences(out_dir: Path, reference: dict[str, str], *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Relative paths whose final files differ between ``out_dir`` and the reference (missing or extra too)."""
    found = digests(out_dir)
    names = sorted(set(found) | set(reference))
    return [n for n in names if not any(re.fullmatch(p, n) for p in ignore) and found.get(n) != reference.get(n)]


@dataclass(frozen=True)
class Target:
    """One CLI command under test.

    ``setup(case_dir)`` writes what the command needs into ``case_dir`` and returns
    ``(arguments, out_dir)``; ``rerun_flags`` are added when continuing after a kill;
    ``ignore`` are regular expressions of relative paths left out of the byte comparison
    (each is checked another way by the caller).
    """

    name: str
    setup: Callable[[Path], tuple[list[str], Path]]
    rerun_flags: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass
class CaseResult:
    target: str
    seed: int
    kills_landed: int = 0
    kills_missed: int = 0
    kills_mid_write: int = 0
    leftovers: list[str] = field(default_factory=list)
    files_checked: int = 0
    earlier_versions: int = 0
    broken: list[str] = field(default_factory=list)
    rerun_exit: int | None = None
    differences: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return not self.broken and self.rerun_exit == 0 and not self.differences


def reference_run(target: Target, folder: Path) -> tuple[dict[str, str], float, Path]:
    """Run ``target`` uninterrupted in ``folder``; return (digests of its outputs, seconds, out_dir)."""
    arguments, out_dir = target.setup(folder)
    start = time.perf_counter()
    code = main(arguments)
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"reference run of {target.name} exited with {code}")
    return digests(out_dir), seconds, out_dir


def kill_case(target: Target, folder: Path, reference: dict[str, str], work_s: float, seed: int,
              kills: int = 1) -> CaseResult:
    """One seeded case (see the module docstring); ``work_s`` bounds the kill delays."""
    rng = np.random.default_rng(seed)
    arguments, out_dir = target.setup(folder)
    result = CaseResult(target.name, seed)
    for attempt in range(kills):
        flags = list(target.rerun_flags) if attempt else []
        landed = kill_after_first_write(wmhkit_command(*arguments, *flags), out_dir, float(rng.uniform(0, work_s)))
        if not landed:
            result.kills_missed += 1
            break
        result.kills_landed += 1
        audit = audit_after_kill(out_dir, reference)
        result.kills_mid_write += audit.temporaries > 0
        result.files_checked += audit.files
        result.earlier_versions += audit.earlier_versions
        result.broken += audit.broken
        # A killed cohort run leaves its output lock behind: the rerun must break it by itself.
    result.rerun_exit = main([*arguments, *target.rerun_flags])
    result.differences = differences(out_dir, reference, ignore=(*target.ignore, HIDDEN))
    result.leftovers = [p.relative_to(out_dir).as_posix() for p in hidden_leftovers(out_dir, reference)]
    return result


#: Relative paths with a hidden component: atomic temporaries, scratch folders, locks.
HIDDEN = r"(.*/)?\..*"


def hidden_leftovers(out_dir: Path, reference: dict[str, str]) -> list[Path]:
    """Hidden files under ``out_dir`` that the reference run did not leave (what kills left behind)."""
    return sorted(p for p in out_dir.rglob("*") if p.is_file() and re.fullmatch(HIDDEN, p.relative_to(out_dir).as_posix())
                  and p.relative_to(out_dir).as_posix() not in reference)


def train_target(config: Path, manifest: Path) -> Target:
    """``wmhkit train CONFIG --manifest M --out case/run``; resumed with ``--resume``.

    The exported model (weights and ``provenance.json``) is compared by content
    (see ``weights_identical``), not bytes: a resumed run's checkpoint files were seen
    to differ in bytes from an uninterrupted run's while the weights and the loss
    curve were identical (cause not yet found); this campaign reports such files.
    """

    def setup(case_dir: Path) -> tuple[list[str], Path]:
        out_dir = case_dir / "run"
        return ["train", str(config), "--manifest", str(manifest), "--out", str(out_dir), "--no-progress"], out_dir

    return Target("train", setup, ("--resume",), (r"model/weights/.*\.pt", r"model/provenance\.json"))


def predict_target(manifest: Path, model: Path) -> Target:
    """``wmhkit predict MANIFEST --model M --out case/out`` (reruns skip completed scans)."""

    def setup(case_dir: Path) -> tuple[list[str], Path]:
        out_dir = case_dir / "out"
        return ["predict", str(manifest), "--model", str(model), "--out", str(out_dir)], out_dir

    return Target("predict", setup)


def silver_target(bronzed: Path) -> Target:
    """``wmhkit silver`` on a private copy of a bronzed cohort (it writes into the manifest's folder)."""

    def setup(case_dir: Path) -> tuple[list[str], Path]:
        cohort = case_dir / "cohort"
        shutil.copytree(bronzed.parent, cohort)
        return ["silver", str(cohort / bronzed.name), "--out", str(cohort)], cohort

    return Target("silver", setup)


def weights_identical(first: Path, second: Path) -> bool:
    """True when two ``weights/*.pt`` state dicts hold the same tensor names and bit-identical values."""
    import torch

    a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (first, second))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
