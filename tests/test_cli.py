"""The command-line root: version, logging flags, error handling."""

import logging
import re
import subprocess
import sys

import pytest

from wmhkit import __version__
from wmhkit.cli import app, main


def test_version_flag_prints_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wmhkit {__version__}"


@pytest.mark.parametrize(("flags", "level"), [([], logging.INFO), (["-q"], logging.WARNING), (["-vv"], logging.DEBUG)])
def test_logging_flags_set_the_wmhkit_log_level(flags, level, tmp_path):
    main([*flags, "manifest", str(tmp_path / "missing-dataset")])
    assert logging.getLogger("wmhkit").level == level


def test_wmhkit_error_becomes_one_line_and_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "no-such-dataset"
    code = main(["manifest", str(missing)])
    assert code == 2
    err = capsys.readouterr().err
    assert "no-such-dataset" in err and "Traceback" not in err


def test_usage_error_returns_click_exit_code_without_traceback(tmp_path, capsys):
    assert main(["manifest", str(tmp_path), "--layout", "not-a-layout"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_every_listed_subcommand_has_help(capsys):
    names = [command.name for command in app.registered_commands]
    assert {"synth", "manifest", "prepare"} <= set(names)
    for name in names:
        assert main([name, "--help"]) == 0
        assert "Usage" in capsys.readouterr().out


def test_log_lines_are_not_wrapped_when_stderr_is_not_a_terminal(tmp_path):
    missing = tmp_path / ("a-dataset-folder-with-a-long-name-" * 4)
    result = subprocess.run([sys.executable, "-m", "wmhkit", "manifest", str(missing)], capture_output=True, text=True,
                            check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and len(lines[0]) > 200
    assert f"ERROR   {missing}: dataset folder does not exist" in lines[0]


def _help_text(capsys, command):
    assert main([command, "--help"]) == 0
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_predict_help_says_that_no_model_means_the_bundled_one(capsys):
    assert "without it, the bundled starter model" in _help_text(capsys, "predict")


def test_help_shows_shell_metavars_not_python_types(capsys):
    for name in [command.name for command in app.registered_commands]:
        text = _help_text(capsys, name)
        assert not re.search(r"<(bool|int|str|float|list\[)|\{\w+\}", text), (name, text)
    assert "INPUTS..." in _help_text(capsys, "predict") and "--out -o PATH" in _help_text(capsys, "predict")


def test_version_loads_no_subcommand_or_numeric_library():
    code = ("import sys; from wmhkit.cli import main; main(['--version']); "
            "print(sorted(m for m in ('numpy', 'pandas', 'torch', 'wmhkit.cli.predict') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [f"wmhkit {__version__}", "[]"]


def test_console_entry_point_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "wmhkit", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in result.stdout


def test_failed_scans_are_named_and_end_the_command_with_exit_code_1(capsys, tmp_path):
    from dataclasses import dataclass

    import typer

    from wmhkit.cli import exit_on_failures

    @dataclass
    class Failure:
        subject: str
        session: str
        error: str
        method: str = ""

    exit_on_failures([], tmp_path / "failures.tsv")  # nothing failed: returns
    with pytest.raises(typer.Exit) as stopped:
        exit_on_failures([Failure("sub-01", "ses-2", "truncated gzip", "outlier")], tmp_path / "failures.tsv")
    assert stopped.value.exit_code == 1
    err = capsys.readouterr().err
    assert "1 failure(s)" in err and "sub-01 session ses-2 [outlier]: truncated gzip" in err
