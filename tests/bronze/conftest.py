"""Fixtures of the bronze tests: the toy brain and a prepared toy cohort (see toy.py)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("wmhkit_test_toy", Path(__file__).with_name("toy.py"))
toy = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = toy  # dataclasses look their module up there
_spec.loader.exec_module(toy)


@pytest.fixture(scope="session")
def toy_brain():
    return toy.make_toy_brain()


@pytest.fixture(scope="session")
def prepared_toy(tmp_path_factory) -> Path:
    """A prepared two-scan toy cohort (read-only: copy it with ``copy_prepared`` before writing next to it)."""
    return toy.prepare_toy_cohort(tmp_path_factory.mktemp("toy_cohort"))


@pytest.fixture
def copy_prepared(prepared_toy, tmp_path):
    """A private copy of the prepared toy cohort: returns the prepared manifest inside ``tmp_path/work``."""
    source = prepared_toy.parent.parent.parent
    shutil.copytree(source, tmp_path / "cohort")
    return tmp_path / "cohort" / "work" / "prepared" / "manifest.tsv"


@pytest.fixture(scope="session")
def toy_module():
    """The toy-brain helper module (write_toy_cohort, make_toy_brain, ...)."""
    return toy
