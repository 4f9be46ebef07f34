"""Validated NIfTI I/O against every "bad or odd input" case of RELIABILITY.md.

Each file is crafted in code: a tiny array written with nibabel, then header
fields overwritten as stored (the ``craft_nifti`` fixture), so nibabel's own
automatic fixes cannot hide the case under test.
"""

from __future__ import annotations

import gzip
import logging
import time
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from wmhkit.errors import GeometryError, HeaderError, InputError, MaskError, WmhkitError
from wmhkit.io.image import Image, check_same_grid
from wmhkit.io.nifti import MAX_HEADER_BYTES, load_image, load_mask, save_image, save_mask

FLAIR = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def as_stored(affine: np.ndarray) -> np.ndarray:
    """The affine after the float32 round trip of the NIfTI srow fields."""
    return np.asarray(affine, dtype=np.float32).astype(np.float64)


def rotation_x(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


# --- orientation: qform vs sform -----------------------------------------------------------


def test_sform_is_used_and_large_qform_difference_is_logged(tmp_path, craft_nifti, caplog):
    qform = np.eye(4)
    sform = np.eye(4)
    sform[:3, 3] = [5.0, -2.0, 0.0]
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, qform, sform=sform)
    with caplog.at_level(logging.WARNING, logger="wmhkit"):
        image = load_image(path)
    np.testing.assert_array_equal(image.affine, sform)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "flair.nii.gz" in warnings[0] and "differ by up to 5 mm" in warnings[0]


def test_qform_sform_difference_within_tolerance_is_silent(tmp_path, craft_nifti, caplog):
    sform = np.eye(4)
    sform[0, 3] = 0.05  # below the 0.1 mm tolerance
    path = craft_nifti(tmp_path / "flair.nii", FLAIR, np.eye(4), sform=sform)
    with caplog.at_level(logging.WARNING, logger="wmhkit"):
        image = load_image(path)
    np.testing.assert_array_equal(image.affine, as_stored(sform))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_qform_is_used_when_sform_code_is_zero(tmp_path, craft_nifti):
    qform = np.diag([2.0, 2.0, 3.0, 1.0])
    qform[:3, 3] = [-10.0, 4.0, 7.0]
    sform = np.diag([9.0, 9.0, 9.0, 1.0])  # stored but not valid: must be ignored
    path = craft_nifti(tmp_path / "flair.nii", FLAIR, qform, sform=sform, sform_code=0)
    np.testing.assert_allclose(load_image(path).affine, qform, atol=1e-5)


def test_no_orientation_is_rejected_by_default_naming_file_and_fix(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, sform_code=0, qform_code=0)
    with pytest.raises(HeaderError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "no orientation" in message and "allow_no_orientation" in message


def test_no_orientation_is_accepted_when_allowed(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, sform_code=0, qform_code=0)
    image = load_image(path, allow_no_orientation=True)
    np.testing.assert_array_equal(image.array, FLAIR)
    assert image.spacing_mm == (1.0, 1.0, 1.0)


# --- degenerate geometry --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"sform": np.diag([1.0, 1.0, 0.0, 1.0]), "qform_code": 0}, "degenerate"),
        ({"sform": np.diag([1.0, 1e-4, 1e-4, 1.0]), "qform_code": 0}, "degenerate"),
        ({"sform": np.full((4, 4), np.nan), "qform_code": 0}, "NaN or Inf"),
        ({"pixdim": [1, 1, 0, 1, 1, 1, 1, 1]}, "pixdim"),
        ({"pixdim": [1, 1, -1.5, 1, 1, 1, 1, 1]}, "pixdim"),
        ({"pixdim": [1, np.nan, 1, 1, 1, 1, 1, 1]}, "pixdim"),
        ({"magic": b"xyz"}, "bad magic"),
        ({"magic": b"ni1"}, ".hdr/.img pair"),
    ],
    ids=["det0", "det-tiny", "nan-sform", "zero-pixdim", "negative-pixdim", "nan-pixdim", "bad-magic", "pair-magic"],
)
def test_degenerate_geometry_and_bad_magic_are_rejected_with_reason(tmp_path, craft_nifti, fields, reason):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, **fields)
    with pytest.raises(HeaderError, match=reason) as info:
        load_image(path)
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


# --- volumes follow the affine ---------------------------------------------------------------


def test_volumes_follow_the_sform_when_header_zooms_disagree_by_2x(tmp_path, craft_nifti):
    sform = np.diag([0.5, 0.75, 2.0, 1.0])
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, sform, pixdim=[1, 1.0, 1.5, 4.0, 1, 1, 1, 1])
    assert nib.load(path).header.get_zooms() == (1.0, 1.5, 4.0)  # the crafted disagreement is real
    image = load_image(path)
    assert image.spacing_mm == (0.5, 0.75, 2.0)
    assert image.voxel_volume_ml == pytest.approx(0.5 * 0.75 * 2.0 / 1000.0, rel=1e-12)


# --- oblique and flipped storage ---------------------------------------------------------------


def _storage_affine(name: str) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 3] = [-90.25, 126.5, -72.0]
    if name == "RAS":
        affine[:3, :3] = np.diag([1.0, 1.0, 1.0])
    elif name == "LAS":
        affine[:3, :3] = np.diag([-1.0, 1.0, 1.0])
    elif name == "LPS":
        affine[:3, :3] = np.diag([-1.0, -1.0, 1.0])
    else:  # 20° oblique, anisotropic voxels
        affine[:3, :3] = rotation_x(20.0) @ np.diag([0.9, 0.9, 3.0])
    return affine


@pytest.mark.parametrize("storage", ["RAS", "LAS", "LPS", "oblique20"])
def test_oblique_and_flipped_storage_load_with_the_exact_affine(tmp_path, craft_nifti, storage, caplog):
    affine = _storage_affine(storage)
    path = craft_nifti(tmp_path / f"{storage}.nii.gz", FLAIR, affine)
    with caplog.at_level(logging.WARNING, logger="wmhkit"):
        image = load_image(path)
    np.testing.assert_array_equal(image.affine, as_stored(affine))
    np.testing.assert_array_equal(image.array, FLAIR)
    assert image.voxel_volume_ml == pytest.approx(abs(np.linalg.det(affine[:3, :3])) / 1000, rel=1e-6)
    assert not caplog.records  # qform and sform agree for rotations

    saved = save_mask(image.with_array((image.array > 10).astype(np.uint8)), tmp_path / f"{storage}_mask.nii.gz")
    mask = load_mask(saved)
    np.testing.assert_array_equal(mask.affine, image.affine)
    np.testing.assert_array_equal(mask.array, (FLAIR > 10).astype(np.uint8))


# --- scaling ---------------------------------------------------------------------------------


def test_scl_slope_and_inter_are_applied_on_load(tmp_path, craft_nifti):
    stored = np.arange(8, dtype=np.int16).reshape(2, 2, 2)
    path = craft_nifti(tmp_path / "flair.nii.gz", stored, scl_slope=2.5, scl_inter=-1.0)
    np.testing.assert_array_equal(load_image(path).array, stored * 2.5 - 1.0)


def test_invalid_intercept_with_valid_slope_is_rejected(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, scl_slope=2.0, scl_inter=np.inf)
    with pytest.raises(HeaderError, match="scl_inter"):
        load_image(path)


@pytest.mark.parametrize("mask_dtype", [np.float32, np.float64, np.int32, np.uint8, bool])
def test_masks_are_written_as_uint8_with_unit_scaling_and_exact_values(tmp_path, mask_dtype):
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1]).reshape(2, 2, 2).astype(mask_dtype)
    path = save_mask(Image(labels, np.diag([0.5, 0.5, 2.0, 1.0])), tmp_path / "wmh.nii.gz")
    written = nib.load(path)
    assert written.header.get_slope_inter() in ((1.0, 0.0), (None, None))
    assert written.get_data_dtype() == np.uint8
    raw = np.asanyarray(written.dataobj)
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, labels.astype(np.uint8))
    np.testing.assert_array_equal(load_mask(path).array, labels.astype(np.uint8))


@pytest.mark.parametrize(
    ("values", "match"),
    [([0.0, 0.5], "whole numbers"), ([0.0, 256.0], "0..255"), ([-1.0, 1.0], "0..255"), ([np.nan, 1.0], "whole")],
)
def test_save_mask_refuses_values_it_would_have_to_scale(tmp_path, values, match):
    labels = np.resize(np.array(values), (2, 2, 2))
    with pytest.raises(ValueError, match=match):
        save_mask(Image(labels, np.eye(4)), tmp_path / "wmh.nii.gz")
    assert not list(tmp_path.iterdir())


def test_save_image_writes_float32_and_refuses_non_finite_values(tmp_path):
    flair = Image(np.linspace(0, 1, 8).reshape(2, 2, 2), np.eye(4))
    path = save_image(flair, tmp_path / "flair.nii.gz")
    assert nib.load(path).get_data_dtype() == np.float32
    np.testing.assert_array_equal(load_image(path).array, flair.array.astype(np.float32))
    for bad in (np.nan, np.inf, 1e300):
        with pytest.raises(ValueError, match="finite"):
            save_image(flair.with_array(np.full((2, 2, 2), bad)), tmp_path / "bad.nii.gz")
    assert not (tmp_path / "bad.nii.gz").exists()


# --- NaN / Inf ---------------------------------------------------------------------------------


NON_FINITE = np.array([np.nan, 1, np.inf, 2, -np.inf, 3, 4, 5], dtype=np.float32).reshape(2, 2, 2)


def test_non_finite_voxels_are_zero_filled_with_a_warning(tmp_path, craft_nifti, caplog):
    path = craft_nifti(tmp_path / "flair.nii.gz", NON_FINITE)
    with caplog.at_level(logging.WARNING, logger="wmhkit"):
        image = load_image(path)
    np.testing.assert_array_equal(image.array.ravel(), [0, 1, 0, 2, 0, 3, 4, 5])
    assert any("3 NaN/Inf" in r.getMessage() and "flair.nii.gz" in r.getMessage() for r in caplog.records)


def test_non_finite_voxels_are_rejected_by_the_reject_policy(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", NON_FINITE)
    with pytest.raises(InputError, match="3 voxels are NaN"):
        load_image(path, nan_policy="reject")


def test_values_beyond_float32_range_follow_the_nan_policy(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", np.full((2, 2, 2), 1e300))
    np.testing.assert_array_equal(load_image(path).array, np.zeros((2, 2, 2), np.float32))
    with pytest.raises(InputError, match="float32 range"):
        load_image(path, nan_policy="reject")


def test_unknown_nan_policy_is_a_value_error(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR)
    with pytest.raises(ValueError, match="nan_policy"):
        load_image(path, nan_policy="ignore")


def test_nan_in_a_mask_is_a_mask_error(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "wmh.nii.gz", np.where(FLAIR > 3, 1.0, np.nan).astype(np.float32))
    with pytest.raises(MaskError, match="NaN"):
        load_mask(path)


# --- integer and non-scalar voxel types ----------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (np.uint16, [0, 1, 32768, 65535]),
        (np.uint32, [0, 65536, 2_147_483_648, 4_000_000_000]),
        (np.int64, [-(2**40), -5, 0, 2**40]),
        (np.int8, [-128, -1, 0, 127]),
    ],
)
def test_integer_voxels_never_wrap(tmp_path, craft_nifti, dtype, values):
    stored = np.resize(np.array(values, dtype=dtype), (2, 2, 2))
    path = craft_nifti(tmp_path / "flair.nii.gz", stored)
    image = load_image(path)
    assert image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array, stored.astype(np.float64))


def test_uint16_label_mask_loads(tmp_path, craft_nifti):
    labels = np.resize(np.array([0, 1], dtype=np.uint16), (3, 3, 2))
    np.testing.assert_array_equal(load_mask(craft_nifti(tmp_path / "m.nii.gz", labels)).array, labels)


@pytest.mark.parametrize(
    ("array", "label"),
    [
        (np.ones((2, 2, 2), np.complex64), "complex64"),
        (np.ones((2, 2, 2), np.complex128), "complex128"),
        (np.zeros((2, 2, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]), "RGB"),
        (np.zeros((2, 2, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")]), "RGBA"),
    ],
)
def test_complex_and_rgb_voxels_are_rejected(tmp_path, craft_nifti, array, label):
    path = craft_nifti(tmp_path / "flair.nii.gz", array)
    with pytest.raises(HeaderError, match=f"voxel type {label} ") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_unknown_datatype_code_is_rejected(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR, datatype=3)
    with pytest.raises(HeaderError, match="datatype code 3"):
        load_image(path)


# --- dimensionality ------------------------------------------------------------------------------


def test_singleton_fourth_dimension_is_squeezed(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", FLAIR[..., np.newaxis])
    image = load_image(path)
    assert image.shape == (2, 3, 4)
    np.testing.assert_array_equal(image.array, FLAIR)


@pytest.mark.parametrize("shape", [(2, 3, 4, 3), (2, 3, 4, 1, 3), (2, 3, 4, 2, 2)])
def test_real_extra_dimensions_are_rejected_with_the_shape(tmp_path, craft_nifti, shape):
    path = craft_nifti(tmp_path / "bold.nii.gz", np.zeros(shape, np.float32))
    with pytest.raises(HeaderError) as info:
        load_image(path)
    assert str(shape) in str(info.value) and "single volume" in str(info.value)


@pytest.mark.parametrize(("shape", "expected"), [((5, 5, 1), (5, 5, 1)), ((5, 5), (5, 5, 1)), ((1, 1, 1), (1, 1, 1))])
def test_tiny_images_load_as_3d(tmp_path, craft_nifti, shape, expected):
    stored = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    image = load_image(craft_nifti(tmp_path / "tiny.nii.gz", stored, np.diag([0.9, 0.9, 5.0, 1.0])))
    assert image.shape == expected
    np.testing.assert_array_equal(image.array.ravel(), stored.ravel())


def test_thick_slice_2d_flair_is_accepted_with_its_spacing(tmp_path, craft_nifti):
    affine = np.diag([0.9, 0.9, 5.0, 1.0])
    image = load_image(craft_nifti(tmp_path / "flair.nii.gz", np.ones((6, 6, 3), np.int16), affine))
    np.testing.assert_allclose(image.spacing_mm, (0.9, 0.9, 5.0), rtol=1e-7)
    assert image.voxel_volume_ml == pytest.approx(0.9 * 0.9 * 5.0 / 1000, rel=1e-6)


@pytest.mark.parametrize("dim", [[1, 5, 1, 1, 1, 1, 1, 1], [0, 2, 3, 4, 1, 1, 1, 1], [8, 2, 3, 4, 1, 1, 1, 1],
                                 [3, 2, 0, 4, 1, 1, 1, 1], [3, 2, -3, 4, 1, 1, 1, 1]])
def test_invalid_dim_fields_are_header_errors(tmp_path, craft_nifti, dim):
    with pytest.raises(HeaderError, match="shape"):
        load_image(craft_nifti(tmp_path / "flair.nii.gz", FLAIR, dim=dim))


# --- corrupt input -------------------------------------------------------------------------------


def _valid_gz_bytes(craft_nifti, tmp_path, shape=(2, 3, 4)) -> bytes:
    noise = np.random.default_rng(0).normal(size=shape).astype(np.float32)  # incompressible
    return craft_nifti(tmp_path / "valid.nii.gz", noise).read_bytes()


def _corrupt_files(tmp_path, craft_nifti) -> dict[str, tuple[object, str]]:
    """name → (file bytes, expected words in the message)."""
    small_gz = _valid_gz_bytes(craft_nifti, tmp_path)
    large_gz = _valid_gz_bytes(craft_nifti, tmp_path, shape=(16, 16, 16))
    large_nii = gzip.decompress(large_gz)
    dicom = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + bytes(200)
    garbage = np.random.default_rng(1).bytes(700)
    return {
        "empty.nii.gz": (b"", "empty"),
        "truncated-header.nii.gz": (small_gz[: len(small_gz) // 2], "truncated"),
        "truncated-data.nii.gz": (large_gz[: len(large_gz) // 2], "truncated"),
        "truncated-data.nii": (large_nii[: len(large_nii) // 2], "truncated"),
        "header-only.nii": (large_nii[:100], "not a NIfTI"),
        "not-gzip.nii.gz": (large_nii, "not gzip"),
        "gzip-named.nii": (large_gz, "rename it to .nii.gz"),
        "dicom.nii": (dicom, "dcm2niix"),
        "dicom.nii.gz": (gzip.compress(dicom), "dcm2niix"),
        "garbage.nii": (garbage, "not a NIfTI"),
        "garbage.nii.gz": (gzip.compress(garbage), "not a NIfTI"),
        "text.nii": (b"subject\tflair\n" * 40, "not a NIfTI"),
    }


@pytest.mark.parametrize(
    "name",
    ["empty.nii.gz", "truncated-header.nii.gz", "truncated-data.nii.gz", "truncated-data.nii", "header-only.nii",
     "not-gzip.nii.gz", "gzip-named.nii", "dicom.nii", "dicom.nii.gz", "garbage.nii", "garbage.nii.gz", "text.nii"],
)
@pytest.mark.parametrize("loader", [load_image, load_mask])
def test_corrupt_input_is_an_input_error_naming_the_file(tmp_path, craft_nifti, name, loader):
    content, words = _corrupt_files(tmp_path, craft_nifti)[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WmhkitError) as info:
        loader(path)
    assert isinstance(info.value, InputError)
    assert str(path) in str(info.value) and "Fix:" in str(info.value)
    assert words in str(info.value)


def test_missing_file_and_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "absent.nii.gz")
    with pytest.raises(InputError, match="not a regular file"):
        load_image(tmp_path)


# --- header and gzip bombs -------------------------------------------------------------------------


def test_header_declaring_2048_cubed_is_rejected_before_allocating(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "bomb.nii.gz", FLAIR, dim=[3, 2048, 2048, 2048, 1, 1, 1, 1])
    assert path.stat().st_size < 1024
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(HeaderError, match=r"\(2048, 2048, 2048\).*cap"):
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024**2
    assert time.perf_counter() - start < 2.0


def test_gzip_bomb_behind_a_small_header_is_never_decompressed(tmp_path, craft_nifti):
    nii = gzip.decompress(craft_nifti(tmp_path / "small.nii.gz", FLAIR).read_bytes())
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as stream:  # 256 MiB of trailing zeros, ~250 KiB on disk
        stream.write(nii)
        zeros = bytes(1024**2)
        for _ in range(256):
            stream.write(zeros)
    assert bomb.stat().st_size < 2 * 1024**2
    tracemalloc.start()
    start = time.perf_counter()
    try:
        image = load_image(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(image.array, FLAIR)
    assert peak < 4 * 1024**2
    assert time.perf_counter() - start < 2.0


def test_declared_size_above_max_bytes_is_rejected(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "flair.nii.gz", np.zeros((32, 32, 32), np.float32))  # 128 KiB of data
    assert load_image(path, max_bytes=200 * 1024).shape == (32, 32, 32)
    with pytest.raises(HeaderError, match="above the 0.1 MiB cap"):
        load_image(path, max_bytes=100 * 1024)
    with pytest.raises(HeaderError, match="cap"):
        load_mask(path, max_bytes=100 * 1024)


@pytest.mark.parametrize("vox_offset", [0, 100, MAX_HEADER_BYTES + 16, np.nan])
def test_vox_offset_outside_the_header_area_is_rejected(tmp_path, craft_nifti, vox_offset):
    with pytest.raises(HeaderError, match="vox_offset"):
        load_image(craft_nifti(tmp_path / "flair.nii.gz", FLAIR, vox_offset=vox_offset))


@pytest.mark.parametrize("esize", [0, -8, 8, 2**31 - 1])
def test_malformed_extension_chain_is_rejected_before_nibabel_follows_it(tmp_path, esize):
    nifti = nib.Nifti1Image(FLAIR, np.eye(4))
    stored = bytearray(nifti.to_bytes())
    header = nib.Nifti1Header(bytes(stored[:348]), check=False)
    header["vox_offset"] = 352 + 32
    extension = np.array([esize, 6], dtype="<i4").tobytes() + bytes(24)
    crafted = header.binaryblock + b"\x01\x00\x00\x00" + extension + bytes(stored[352:])
    path = tmp_path / "ext.nii.gz"
    path.write_bytes(gzip.compress(crafted + bytes(32 * 1024**2), mtime=0))
    tracemalloc.start()
    try:
        with pytest.raises(HeaderError, match="malformed header extension"):
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024**2


def test_well_formed_extension_is_accepted(tmp_path):
    nifti = nib.Nifti1Image(FLAIR, np.eye(4))
    nifti.set_sform(np.eye(4), code=1)
    nifti.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"dcm2niix comment"))
    path = tmp_path / "ext.nii.gz"
    nib.save(nifti, path)
    np.testing.assert_array_equal(load_image(path).array, FLAIR)


# --- other encodings ------------------------------------------------------------------------------


def test_big_endian_and_nifti2_files_load(tmp_path):
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    big_endian = nib.Nifti1Image(FLAIR.astype(">f4"), affine, dtype=np.dtype(">f4"))
    big_endian.header.set_sform(affine, code=1)
    nifti2 = nib.Nifti2Image(FLAIR, affine)
    nifti2.set_sform(affine, code=1)
    # NIfTI-1 stores the sform as float32, NIfTI-2 as float64.
    for name, nifti, stored_affine in (("big.nii.gz", big_endian, as_stored(affine)), ("n2.nii", nifti2, affine)):
        nib.save(nifti, tmp_path / name)
        image = load_image(tmp_path / name)
        np.testing.assert_array_equal(image.array, FLAIR)
        np.testing.assert_array_equal(image.affine, stored_affine)


# --- masks ------------------------------------------------------------------------------------------


def test_mask_with_255_is_refused_listing_the_value(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "wmh.nii.gz", np.resize(np.array([0, 255], np.uint8), (3, 3, 3)))
    with pytest.raises(MaskError) as info:
        load_mask(path)
    assert "unexpected label values 255;" in str(info.value) and str(path) in str(info.value)
    assert load_mask(path, allowed_labels=(0, 255)).array.max() == 255


def test_unexpected_labels_are_all_listed_and_non_integers_shown_exactly(tmp_path, craft_nifti):
    labels = np.resize(np.array([0, 1, 2, 7, 1.0000001], np.float64), (5, 1, 1))
    with pytest.raises(MaskError, match=r"unexpected label values 1\.0000001, 2, 7;"):
        load_mask(craft_nifti(tmp_path / "wmh.nii.gz", labels))


def test_allowed_labels_outside_uint8_are_a_value_error(tmp_path, craft_nifti):
    path = craft_nifti(tmp_path / "wmh.nii.gz", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="0..255"):
        load_mask(path, allowed_labels=(0, 300))


def test_image_mask_grid_mismatch_is_a_geometry_error(tmp_path, craft_nifti):
    flair = load_image(craft_nifti(tmp_path / "flair.nii.gz", FLAIR))
    shifted = np.eye(4)
    shifted[0, 3] = 1.0
    other_shape = craft_nifti(tmp_path / "wmh_shape.nii.gz", np.zeros((2, 3, 5), np.uint8))
    other_affine = craft_nifti(tmp_path / "wmh_affine.nii.gz", np.zeros((2, 3, 4), np.uint8), shifted)
    same = craft_nifti(tmp_path / "wmh.nii.gz", np.zeros((2, 3, 4), np.uint8))
    check_same_grid(flair, load_mask(same), same)
    with pytest.raises(GeometryError, match=r"\(2, 3, 5\) differs") as info:
        check_same_grid(flair, load_mask(other_shape), other_shape)
    assert str(other_shape) in str(info.value)
    with pytest.raises(GeometryError, match="affine differs .* by up to 1 mm"):
        check_same_grid(flair, load_mask(other_affine), other_affine)


# --- deterministic writes -----------------------------------------------------------------------------


def test_same_array_saved_twice_gives_identical_gzip_bytes(tmp_path):
    rng = np.random.default_rng(3)
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    flair = Image(rng.normal(size=(5, 6, 7)), affine)
    mask = Image((rng.random((5, 6, 7)) > 0.5).astype(np.float32), affine)
    first = save_image(flair, tmp_path / "a" / "flair.nii.gz").read_bytes()
    second = save_image(flair, tmp_path / "b" / "other-name.nii.gz").read_bytes()
    assert first == second
    assert first[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME field is zero
    assert not first[3] & 0x08  # no FNAME (original file name) in the gzip header
    masks = [save_mask(mask, tmp_path / f"wmh{i}.nii.gz").read_bytes() for i in range(2)]
    assert masks[0] == masks[1]
