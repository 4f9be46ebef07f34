"""Fixtures of the reliability tests: the harness and cohort helpers, tiny inputs made once per session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch


def load_helper(name: str) -> ModuleType:
    """``tests/reliability/<name>.py`` as a module (also used by ``benchmarks/bench_reliability.py``)."""
    module_name = f"wmhkit_reliability_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, Path(__file__).parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture(scope="session")
def harness() -> ModuleType:
    return load_helper("harness")


@pytest.fixture(scope="session")
def cohorts() -> ModuleType:
    return load_helper("cohorts")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch and ITK thread, as in the killed subprocesses, so results are bit-comparable."""
    import SimpleITK as sitk

    threads, itk_threads = torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    yield
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)


@pytest.fixture(scope="session")
def raw_cohort(cohorts, tmp_path_factory) -> Path:
    """Read-only manifest of three raw scans (FLAIR + brain mask)."""
    return cohorts.write_raw_cohort(tmp_path_factory.mktemp("raw") / "raw", 3)


@pytest.fixture(scope="session")
def bronzed_cohort(cohorts, tmp_path_factory) -> Path:
    """Read-only manifest of four scans with three bronze masks each (copy it before running silver)."""
    return cohorts.write_bronzed_cohort(tmp_path_factory.mktemp("bronzed") / "bronzed", 4)


@pytest.fixture(scope="session")
def random_model(cohorts, tmp_path_factory) -> Path:
    return cohorts.write_random_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="session")
def train_inputs(cohorts, tmp_path_factory) -> tuple[Path, Path]:
    """(config.yaml, manifest.tsv) of a three-epoch tiny training run."""
    return cohorts.write_train_inputs(tmp_path_factory.mktemp("train"))
