"""Property-based tests: whatever the header or bytes, loading fails only with a wmhkit error.

For random header field values and random byte mutations or truncations of a
valid small ``.nii`` / ``.nii.gz``, ``load_image`` and ``load_mask`` either return
a valid 3D image (finite float32 data, finite non-degenerate affine) or raise a
subclass of :class:`wmhkit.errors.WmhkitError`, and do so quickly.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wmhkit.errors import WmhkitError
from wmhkit.io.nifti import load_image, load_mask

#: Small cap so that random dims that happen to be valid never read much.
MAX_BYTES = 1024**2
#: Seconds one load may take (the whole point of the caps is that nothing is slow).
LOAD_SECONDS = 1.0

FAST = settings(
    max_examples=60, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
THOROUGH = settings(max_examples=3000, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

DATATYPE_CODES = sorted(set(nib.nifti1.data_type_codes.value_set("code")))


def _valid_nifti_bytes(stored_dtype: str) -> bytes:
    """An uncompressed, valid NIfTI-1 file of a 3×4×5 image (oblique affine, with scaling)."""
    array = np.arange(60).reshape(3, 4, 5).astype(stored_dtype)
    affine = np.array([[0.9, 0.1, 0.0, -20.0], [-0.1, 0.9, 0.0, 15.0], [0.0, 0.0, 3.0, -7.5], [0, 0, 0, 1]])
    nifti = nib.Nifti1Image(array, affine, dtype=np.dtype(stored_dtype))
    nifti.set_sform(affine, code=1)
    nifti.set_qform(affine, code=1)
    return nifti.to_bytes()


VALID = {dtype: _valid_nifti_bytes(dtype) for dtype in ("float32", "int16", "uint8")}

finite_or_odd_float32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
small_float32 = st.one_of(st.floats(-1e3, 1e3, width=32), finite_or_odd_float32)

header_fields = st.fixed_dictionaries(
    {},
    optional={
        "dim": st.lists(st.integers(-3, 40), min_size=8, max_size=8).map(
            lambda dims: [dims[0] % 10 - 1, *dims[1:]]
        ),
        "pixdim": st.lists(small_float32, min_size=8, max_size=8),
        "datatype": st.one_of(st.sampled_from(DATATYPE_CODES), st.integers(-(2**15), 2**15 - 1)),
        "bitpix": st.sampled_from([0, 8, 16, 32, 64, 128, 7]),
        "sform_code": st.integers(-2, 6),
        "qform_code": st.integers(-2, 6),
        "scl_slope": small_float32,
        "scl_inter": small_float32,
        "vox_offset": st.one_of(st.sampled_from([0.0, 348.0, 352.0, 353.5, 368.0, 2.0**31]), finite_or_odd_float32),
        "quatern_b": small_float32,
        "quatern_c": small_float32,
        "quatern_d": small_float32,
        "srow_x": st.lists(small_float32, min_size=4, max_size=4),
        "srow_z": st.lists(small_float32, min_size=4, max_size=4),
        "magic": st.sampled_from([b"n+1", b"ni1", b"n+2", b"\x00\x00\x00"]),
        "sizeof_hdr": st.sampled_from([348, 540, 0, -348, 2**24]),
        "extents": st.integers(-(2**31), 2**31 - 1),
    },
)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content, mtime=0) if path.name.endswith(".gz") else content)
    return path


def _assert_loads_validly_or_fails_typed(path: Path) -> None:
    for loader in (load_image, load_mask):
        start = time.perf_counter()
        try:
            image = loader(path, max_bytes=MAX_BYTES)
        except WmhkitError as error:
            assert str(path) in str(error)
            event(f"{loader.__name__}: {type(error).__name__}: {error.reason.split(' (')[0][:40]}")
        except Exception as error:  # noqa: BLE001 - the property under test
            pytest.fail(f"{loader.__name__} leaked {type(error).__name__}: {error}")
        else:
            event(f"{loader.__name__}: loaded")
            assert image.array.ndim == 3
            assert image.array.dtype == (np.float32 if loader is load_image else np.uint8)
            if loader is load_image:
                assert np.all(np.isfinite(image.array))
            assert np.all(np.isfinite(image.affine))
            assert abs(np.linalg.det(image.affine[:3, :3])) > 0
        assert time.perf_counter() - start < LOAD_SECONDS


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _mutated_header(base: bytes, fields: dict) -> bytes:
    header = nib.Nifti1Header(base[:348], check=False)
    for name, value in fields.items():
        with np.errstate(over="ignore", invalid="ignore"):
            header[name] = value
    return header.binaryblock + base[348:]


def _check_random_header(scratch: Path, stored_dtype: str, suffix: str, fields: dict) -> None:
    content = _mutated_header(VALID[stored_dtype], fields)
    _assert_loads_validly_or_fails_typed(_write(scratch / f"header{suffix}", content))


def _check_random_bytes(scratch: Path, stored_dtype: str, suffix: str, compressed: bool, edits, cut) -> None:
    content = VALID[stored_dtype]
    if compressed and suffix == ".nii.gz":
        content = gzip.compress(content, mtime=0)
    content = bytearray(content)
    for position, value in edits:
        content[position % len(content)] = value
    content = bytes(content[: max(0, len(content) - cut)])
    path = scratch / f"bytes{suffix}"
    if compressed and suffix == ".nii.gz":
        path.write_bytes(content)  # mutate the gzip stream itself
    else:
        _write(path, content)
    _assert_loads_validly_or_fails_typed(path)


DTYPES = st.sampled_from(sorted(VALID))
SUFFIXES = st.sampled_from([".nii", ".nii.gz"])
EDITS = st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=12)
CUTS = st.one_of(st.just(0), st.integers(0, 700))


@FAST
@given(stored_dtype=DTYPES, suffix=SUFFIXES, fields=header_fields)
def test_random_header_fields_load_validly_or_raise_wmhkit_errors(scratch, stored_dtype, suffix, fields):
    _check_random_header(scratch, stored_dtype, suffix, fields)


@FAST
@given(stored_dtype=DTYPES, suffix=SUFFIXES, compressed=st.booleans(), edits=EDITS, cut=CUTS)
def test_random_byte_mutations_load_validly_or_raise_wmhkit_errors(
    scratch, stored_dtype, suffix, compressed, edits, cut
):
    _check_random_bytes(scratch, stored_dtype, suffix, compressed, edits, cut)


@pytest.mark.slow
@THOROUGH
@given(stored_dtype=DTYPES, suffix=SUFFIXES, fields=header_fields)
def test_random_header_fields_thoroughly(scratch, stored_dtype, suffix, fields):
    _check_random_header(scratch, stored_dtype, suffix, fields)


@pytest.mark.slow
@THOROUGH
@given(stored_dtype=DTYPES, suffix=SUFFIXES, compressed=st.booleans(), edits=EDITS, cut=CUTS)
def test_random_byte_mutations_thoroughly(scratch, stored_dtype, suffix, compressed, edits, cut):
    _check_random_bytes(scratch, stored_dtype, suffix, compressed, edits, cut)


def test_the_unmutated_files_load(scratch):
    """The fuzzing starts from valid files, so the accepting path is exercised too."""
    for stored_dtype, content in VALID.items():
        for suffix in (".nii", ".nii.gz"):
            image = load_image(_write(scratch / f"valid-{stored_dtype}{suffix}", content), max_bytes=MAX_BYTES)
            np.testing.assert_array_equal(image.array.ravel(), np.arange(60))
