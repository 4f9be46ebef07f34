"""Shared test fixtures."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import shutil
import sys
from collections.abc import Callable
from types import ModuleType
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def _craft_nifti(
    path: Path,
    array: np.ndarray,
    affine: np.ndarray | None = None,
    *,
    sform: np.ndarray | None = None,
    **fields: object,
) -> Path:
    """Write ``array`` as NIfTI-1 to ``path`` (gzip when named .gz) with raw header edits.

    ``affine`` (default identity) sets both qform and sform through nibabel;
    ``sform`` then overwrites the srow fields verbatim (even a degenerate matrix);
    ``fields`` overwrite header fields as stored (``pixdim``, ``magic``,
    ``sform_code``, ``scl_slope``, ...), after nibabel's own fixes, so they reach
    the file unaltered.
    """
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    nifti = nib.Nifti1Image(array, affine, dtype=np.asarray(array).dtype)
    nifti.set_sform(affine, code=1)
    nifti.set_qform(affine, code=1)
    stored = nifti.to_bytes()
    header = nib.Nifti1Header(stored[:348], check=False)
    if sform is not None:
        header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform)[:3]
    for name, value in fields.items():
        header[name] = value
    data = header.binaryblock + stored[348:]
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def craft_nifti() -> Callable[..., Path]:
    """Function writing a tiny NIfTI with raw header edits: ``craft_nifti(path, array, affine, **fields)``."""
    return _craft_nifti


@functools.cache
def _toy() -> ModuleType:
    """``tests/bronze/toy.py`` (toy brain and toy cohort), loaded on first use only."""
    spec = importlib.util.spec_from_file_location("wmhkit_test_toy", Path(__file__).parent / "bronze" / "toy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def toy_module() -> ModuleType:
    """The toy-brain helper module of the bronze and fusion tests (write_toy_cohort, make_toy_brain, ...)."""
    return _toy()


@pytest.fixture(scope="session")
def toy_brain(toy_module):
    return toy_module.make_toy_brain()


@pytest.fixture(scope="session")
def prepared_toy(toy_module, tmp_path_factory) -> Path:
    """A prepared two-scan toy cohort (read-only: copy it with ``copy_prepared`` before writing next to it)."""
    return toy_module.prepare_toy_cohort(tmp_path_factory.mktemp("toy_cohort"))


@pytest.fixture
def copy_prepared(prepared_toy, tmp_path):
    """A private copy of the prepared toy cohort: returns the prepared manifest inside ``tmp_path/work``."""
    source = prepared_toy.parent.parent.parent
    shutil.copytree(source, tmp_path / "cohort")
    return tmp_path / "cohort" / "work" / "prepared" / "manifest.tsv"
