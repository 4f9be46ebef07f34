"""Property-based hostile inputs beyond NIfTI fuzzing (tests/io/test_nifti_properties.py):
header bombs within a memory bound, mutated checkpoints, hostile manifest cells, arbitrary sidecar parameters.

Whatever the input, only wmhkit's typed errors (WmhkitError subclasses) come out.
A fixed example budget runs by default; the ``slow`` variants run 20× more.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import tracemalloc

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmhkit.errors import ManifestError, WmhkitError
from wmhkit.io.manifest import is_valid_id, validate_manifest
from wmhkit.io.nifti import load_image
from wmhkit.io.provenance import validate_sidecar, write_sidecar
from wmhkit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

FAST = settings(max_examples=40, deadline=3000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
THOROUGH = settings(max_examples=800, deadline=3000,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
#: Peak Python/numpy allocation allowed while refusing a bomb (the cap is on declared bytes).
BOMB_PEAK_BYTES = 16 * 1024**2

bomb_dims = st.lists(st.integers(1, 4096), min_size=3, max_size=3)
bomb_dtypes = st.sampled_from(["uint8", "int16", "float32", "float64"])


def _bomb(path, dims, dtype, compress):
    header = nib.Nifti1Header()
    header.set_data_shape(dims)
    header.set_data_dtype(dtype)
    header.set_sform(np.eye(4), code=1)
    content = header.binaryblock + b"\0" * 4 + b"\x01" * 4096  # a few real voxels, not the declared billions
    path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
    return path


def _check_bomb(tmp_path, dims, dtype, compress):
    path = _bomb(tmp_path / ("bomb.nii.gz" if compress else "bomb.nii"), dims, dtype, compress)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load_image(path)
    except WmhkitError as error:
        assert str(path) in str(error)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < BOMB_PEAK_BYTES, f"{dims} {dtype}: {peak / 1024**2:.0f} MiB allocated"


@FAST
@given(dims=bomb_dims, dtype=bomb_dtypes, compress=st.booleans())
def test_header_bombs_fail_typed_within_time_and_memory(tmp_path, dims, dtype, compress):
    _check_bomb(tmp_path, dims, dtype, compress)


@pytest.mark.slow
@THOROUGH
@given(dims=bomb_dims, dtype=bomb_dtypes, compress=st.booleans())
def test_header_bombs_thoroughly(tmp_path, dims, dtype, compress):
    _check_bomb(tmp_path, dims, dtype, compress)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, model=model, optimizer=torch.optim.Adam(model.parameters()), epoch=2, best_metric=0.5,
                    config_digest="c" * 64)
    return path.read_bytes()


mutations = st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=8)


def _check_checkpoint(tmp_path, content, edits, cut):
    content = bytearray(content)
    for position, value in edits:
        content[position % len(content)] = value
    path = tmp_path / "mutated.pt"
    path.write_bytes(bytes(content[: max(0, len(content) - cut)]))
    try:
        payload = load_checkpoint(path)
    except CheckpointError as error:
        assert str(path) in str(error)
    else:
        assert isinstance(payload, dict) and payload["format"] == 1


@FAST
@given(edits=mutations, cut=st.one_of(st.just(0), st.integers(1, 4000)))
def test_mutated_checkpoints_fail_only_with_checkpoint_errors(tmp_path, checkpoint_bytes, edits, cut):
    _check_checkpoint(tmp_path, checkpoint_bytes, edits, cut)


@pytest.mark.slow
@THOROUGH
@given(edits=mutations, cut=st.one_of(st.just(0), st.integers(1, 4000)))
def test_mutated_checkpoints_thoroughly(tmp_path, checkpoint_bytes, edits, cut):
    _check_checkpoint(tmp_path, checkpoint_bytes, edits, cut)


hostile_text = st.one_of(
    st.text(min_size=0, max_size=24),
    st.sampled_from(["..", "../x", "/etc/passwd", "a/../../b", "sub\x00", "sub\n01", "C:\\x", "~root", " ", "sub 01"]),
)


def _check_manifest_cells(tmp_path, subject, flair):
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    table = pd.DataFrame([{"subject": subject, "flair": flair}, {"subject": "sub-ok", "flair": "ok.nii.gz"}])
    try:
        manifest = validate_manifest(table, root=root, check_files=False)
    except ManifestError:
        return
    for row in manifest.rows():  # accepted: ids are safe output names; input paths may be anywhere (issue 20)
        assert is_valid_id(row["subject"]) and not _CONTROL.search(row["flair"])
        assert manifest.path(row, "flair") == root / row["flair"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@FAST
@given(subject=hostile_text, flair=hostile_text)
def test_hostile_manifest_cells_are_refused_or_name_safe_outputs(tmp_path, subject, flair):
    _check_manifest_cells(tmp_path, subject, flair)


@pytest.mark.slow
@THOROUGH
@given(subject=hostile_text, flair=hostile_text)
def test_hostile_manifest_cells_thoroughly(tmp_path, subject, flair):
    _check_manifest_cells(tmp_path, subject, flair)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@FAST
@given(parameters=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
       seed=st.one_of(st.none(), st.integers(0, 2**31)))
def test_any_json_parameters_give_a_valid_deterministic_sidecar(tmp_path, parameters, seed):
    flair = tmp_path / "flair.nii.gz"
    flair.write_bytes(b"flair")
    output = tmp_path / "out" / "wmh.nii.gz"
    output.parent.mkdir(exist_ok=True)
    output.write_bytes(b"mask")
    first = write_sidecar(output, step="predict", inputs={"flair": flair}, parameters=parameters, seed=seed).read_bytes()
    second = write_sidecar(output, step="predict", inputs={"flair": flair}, parameters=parameters, seed=seed).read_bytes()
    assert first == second
    record = validate_sidecar(output.with_name("wmh.json"))
    assert record["parameters"] == json.loads(json.dumps(parameters)) and record["seed"] == seed
