"""Hostile checkpoints, planted symlinks, escaping manifests, and no shell built from user strings."""

from __future__ import annotations

import ast
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from wmhkit.cli import main
from wmhkit.train.checkpoint import CheckpointError, load_checkpoint

SOURCE = Path(__file__).resolve().parents[2] / "src" / "wmhkit"


class _CreatesFile:
    """Unpickling this calls ``open(marker, "w")``: the file appears only if pickled code runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_torch_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "last.pt"
    torch.save({"format": 1, "model": {"w": torch.zeros(1)}, "extra": _CreatesFile(marker)}, hostile)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(hostile)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the payload is real: weights_only is what stops it
        torch.load(hostile, weights_only=True)
    assert not marker.exists()


def test_hostile_model_weights_make_predict_fail_without_running_them(raw_cohort, random_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(random_model, model)
    marker = tmp_path / "pwned"
    torch.save({"encoder.conv1_1.0.weight": _CreatesFile(marker)}, model / "weights" / "axial.pt")
    assert main(["predict", str(raw_cohort), "--model", str(model), "--out", str(tmp_path / "out")]) == 2
    assert not marker.exists()
    assert list(tmp_path.glob("out/*.nii.gz")) == []


def test_hostile_resume_checkpoint_is_refused_without_running(train_inputs, tmp_path):
    config, manifest = train_inputs
    run = tmp_path / "run"
    arguments = ["train", str(config), "--manifest", str(manifest), "--out", str(run), "--no-progress"]
    assert main(arguments) == 0
    marker = tmp_path / "pwned"
    stage = run / "stages" / "gold" / "axial"
    for name in ("last.pt", "last.prev.pt"):
        torch.save({"format": 1, "extra": _CreatesFile(marker)}, stage / name)
    (stage / "done.json").unlink()  # make the stage resume from its checkpoints
    assert main([*arguments, "--resume"]) == 2
    assert not marker.exists()


def _outside_victims(tmp_path: Path) -> dict[str, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = {}
    for name in ("victim.csv", "victim.nii.gz", "victim.json"):
        victims[name] = outside / name
        victims[name].write_text("keep me")
    return victims


def test_symlinks_planted_at_predict_outputs_are_replaced_not_followed(raw_cohort, random_model, tmp_path):
    victims = _outside_victims(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    planted = {"volumes.csv": "victim.csv", "sub-00_wmh.nii.gz": "victim.nii.gz", "sub-01_wmh.json": "victim.json"}
    for name, victim in planted.items():
        (out / name).symlink_to(victims[victim])
    assert main(["predict", str(raw_cohort), "--model", str(random_model), "--out", str(out)]) == 0
    assert all(victim.read_text() == "keep me" for victim in victims.values())
    for name in planted:
        assert (out / name).is_file() and not (out / name).is_symlink()


def test_symlinks_planted_at_silver_outputs_are_replaced_not_followed(bronzed_cohort, tmp_path):
    victims = _outside_victims(tmp_path)
    cohort = tmp_path / "cohort"
    shutil.copytree(bronzed_cohort.parent, cohort)
    planted = {"sub-00/silver.nii.gz": "victim.nii.gz", "raters.tsv": "victim.csv", "sub-01/silver.json": "victim.json"}
    for name, victim in planted.items():
        (cohort / name).symlink_to(victims[victim])
    assert main(["silver", str(cohort / "manifest.tsv"), "--out", str(cohort)]) == 0
    assert all(victim.read_text() == "keep me" for victim in victims.values())
    for name in planted:
        assert (cohort / name).is_file() and not (cohort / name).is_symlink()


def test_a_symlinked_output_subfolder_never_receives_writes(raw_cohort, random_model, tmp_path):
    """A folder inside --out that links outside: the run may fail, but nothing lands outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "records").symlink_to(outside, target_is_directory=True)
    main(["predict", str(raw_cohort), "--model", str(random_model), "--out", str(out)])
    assert list(outside.rglob("*")) == []


@pytest.mark.parametrize(
    ("subject", "flair"),
    [("sub-01", "../escape/flair.nii.gz"), ("sub-01", "sub-01/fl\x00air.nii.gz"),
     ("sub-\n01", "sub-01/flair.nii.gz"), ("../sub-01", "sub-01/flair.nii.gz"), ("SUB-00", "sub-01/flair.nii.gz")],
    ids=["missing-dotdot-path", "nul-path", "newline-id", "dotdot-id", "case-collision"],
)
def test_escaping_manifests_are_refused_by_every_stage_before_writing(raw_cohort, random_model, tmp_path, subject,
                                                                       flair):
    data = tmp_path / "data"
    shutil.copytree(raw_cohort.parent, data)
    table = pd.read_csv(data / "manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "subject": subject, "flair": flair}
    (data / "manifest.tsv").write_text(table.to_csv(sep="\t", index=False), encoding="utf-8")
    for arguments in (["prepare", str(data / "manifest.tsv"), "--out", str(tmp_path / "prepared")],
                      ["predict", str(data / "manifest.tsv"), "--model", str(random_model), "--out", str(tmp_path / "p")]):
        assert main(arguments) == 2
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(data)]
    assert written == []


_SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv"),
                ("subprocess", "run"), ("subprocess", "Popen"), ("subprocess", "call"), ("subprocess", "check_call"),
                ("subprocess", "check_output"), ("subprocess", "getoutput")}


def test_the_package_starts_no_processes_and_evaluates_no_strings():
    """wmhkit never builds a shell command or code from user strings: no subprocess/os.system/eval/exec at all."""
    offences = []
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SOURCE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                offences += [f"{where} imports {n}" for n in names if n.split(".")[0] in ("subprocess", "pty", "commands")]
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in ("eval", "exec", "compile", "__import__"):
                    offences.append(f"{where} calls {func.id}")
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    if (func.value.id, func.attr) in _SHELL_CALLS:
                        offences.append(f"{where} calls {func.value.id}.{func.attr}")
                offences += [f"{where} passes shell=True" for k in node.keywords
                             if k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True]
    assert offences == []
