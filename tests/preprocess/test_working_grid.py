"""The working grid of ``prepare``: thick-slice rule, resampling there, and maps back onto the exact native grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wmhkit.cli import main
from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask
from wmhkit.models.folder import DEFAULT_PLANES, KIND_2_5D, ModelSpec
from wmhkit.preprocess.crop import VoxelBox
from wmhkit.preprocess.geometry import NativeGeometry, load_native_geometry, to_native
from wmhkit.preprocess.orientation import to_canonical
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_scan
from wmhkit.preprocess.resample import thick_axes, working_grid


def _rotation_x(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return rotation


def _affine(columns: list[tuple[int, float]], shape: tuple[int, int, int], tilt_deg: float = 15.0) -> np.ndarray:
    """Storage affine: array axis i runs along world axis ``columns[i][0]`` with signed spacing ``columns[i][1]``
    (mm), tilted about x, centred on the world origin."""
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for axis, (world, spacing) in enumerate(columns):
        affine[world, axis] = spacing
    affine = _rotation_x(tilt_deg) @ affine
    affine[:3, 3] = -affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    return affine


#: Oblique LAS 2D axial acquisition: 2 × 2 mm in plane, 7 mm slices, stored L→R flipped.
LAS_THICK = (80, 90, 20)
LAS_THICK_AFFINE = _affine([(0, -2.0), (1, 2.0), (2, 7.0)], LAS_THICK)


def _write_head(folder: Path, affine: np.ndarray, shape: tuple[int, int, int]) -> dict[str, Path]:
    """A head (dim shell, bright ellipsoid brain) drawn in world mm, so any storage holds the same anatomy,
    with a gold mask holding a lesion (1) and another pathology (2)."""
    folder.mkdir(parents=True, exist_ok=True)
    voxels = np.indices(shape).reshape(3, -1)
    x, y, z = (affine[:3, :3] @ voxels + affine[:3, 3:4]).reshape(3, *shape)
    radius = np.sqrt((x / 60) ** 2 + (y / 70) ** 2 + (z / 55) ** 2)
    brain = radius <= 1.0
    lesion = (x - 15) ** 2 + (y - 10) ** 2 + (z - 5) ** 2 <= 12.0**2
    other = (x + 20) ** 2 + (y + 10) ** 2 + z**2 <= 10.0**2
    flair = 10.0 + 200.0 * (radius <= 1.15) + 300.0 * brain + 400.0 * lesion
    flair += np.random.default_rng(0).normal(0.0, 5.0, shape)
    gold = np.where(lesion, 1, np.where(other, 2, 0)).astype(np.uint8)
    return {
        "flair": save_image(Image(flair.astype(np.float32), affine), folder / "flair.nii.gz"),
        "brain_mask": save_mask(Image(brain.astype(np.uint8), affine), folder / "brain.nii.gz"),
        "gold": save_mask(Image(gold, affine), folder / "gold.nii.gz"),
    }


def _prepare(files: dict[str, Path], out: Path, **options: object) -> tuple:
    return prepare_scan(files["flair"], out, brain_mask=files["brain_mask"], labels={"gold": files["gold"]},
                        options=PrepareOptions(n4=False, qc_png=False, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("columns", "thick_canonical_axis", "plane"),
    [
        ([(0, -2.0), (1, 2.0), (2, 7.0)], 2, "axial"),  # LAS axial 2D FLAIR
        ([(1, 2.0), (2, 2.0), (0, -7.0)], 0, "sagittal"),  # sagittal 2D, slices along L→R
        ([(0, 2.0), (2, -2.0), (1, 6.0)], 1, "coronal"),  # coronal 2D, stored with a flipped S axis
    ],
)
def test_the_thick_slice_axis_is_found_from_the_spacing_whatever_the_storage(
    columns: list[tuple[int, float]], thick_canonical_axis: int, plane: str
) -> None:
    native = Image(np.zeros((30, 30, 12), np.float32), _affine(columns, (30, 30, 12)))
    canonical, _ = to_canonical(native)
    assert thick_axes(canonical.spacing_mm, 3.0) == (thick_canonical_axis,)
    shape, affine = working_grid(canonical, (1.0, 1.0, 1.0), 3.0)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    assert spacing[thick_canonical_axis] == pytest.approx(abs(columns[2][1]))  # thick slices kept
    assert np.delete(spacing, thick_canonical_axis) == pytest.approx([1.0, 1.0])
    assert shape[thick_canonical_axis] == 12 and max(shape) == 60
    # same centre and axis directions as the reoriented scan
    centre = lambda a, s: a[:3, :3] @ ((np.array(s) - 1) / 2) + a[:3, 3]
    np.testing.assert_allclose(centre(affine, shape), centre(canonical.affine, canonical.shape), atol=1e-9)
    np.testing.assert_allclose(affine[:3, :3] / spacing, canonical.affine[:3, :3] / canonical.spacing_mm, atol=1e-12)
    spec = ModelSpec(KIND_2_5D, {}, ("flair",), DEFAULT_PLANES, "mean", 0.5, PrepareOptions(), {}, "acquired")
    assert spec.planes_for(tuple(spacing)) == (plane,)  # type: ignore[arg-type]


def test_prepare_resamples_onto_the_working_grid_and_maps_come_back_on_the_exact_native_grid(tmp_path: Path) -> None:
    files = _write_head(tmp_path / "raw", LAS_THICK_AFFINE, LAS_THICK)
    result = _prepare(files, tmp_path / "prep", working_spacing_mm=(2.5, 2.5, 2.5))
    geometry = load_native_geometry(result.outputs["flair"])
    assert geometry.resampled
    flair = load_image(result.outputs["flair"])
    assert flair.spacing_mm == pytest.approx((2.5, 2.5, 7.0))  # downsampled in plane, thick slices kept
    gold = load_mask(result.outputs["gold"], allowed_labels=(0, 1, 2))
    assert set(np.unique(gold.array)) == {0, 1, 2}  # nearest neighbour keeps label 2
    native_gold = load_mask(files["gold"], allowed_labels=(0, 1, 2)).array
    lesion_ml = (gold.array == 1).sum() * gold.voxel_volume_ml
    assert lesion_ml == pytest.approx((native_gold == 1).sum() * 0.028, rel=0.1)
    # A map of ones on the prepared grid comes back covering the whole native brain.
    ones = to_native(flair.with_array(np.ones(flair.shape, np.float32)), geometry)
    native_brain = load_mask(files["brain_mask"]).array > 0
    native_affine = load_image(files["flair"]).affine
    assert ones.shape == LAS_THICK and np.array_equal(ones.affine, native_affine)
    assert ones.array[native_brain].min() >= 0.999
    # A label image comes back by nearest neighbour, close to the native mask.
    brain_back = to_native(load_mask(result.outputs["brain_mask"]), geometry)
    assert brain_back.array.dtype == np.uint8 and np.array_equal(brain_back.affine, native_affine)
    overlap = np.logical_and(brain_back.array > 0, native_brain).sum()
    assert 2 * overlap / (brain_back.array.sum() + native_brain.sum()) > 0.97


def test_no_working_spacing_or_the_native_one_is_todays_exact_path(tmp_path: Path) -> None:
    files = _write_head(tmp_path / "raw", LAS_THICK_AFFINE, LAS_THICK)
    today = _prepare(files, tmp_path / "none")
    native_spacing = to_canonical(load_image(files["flair"]))[0].spacing_mm
    same = _prepare(files, tmp_path / "same", working_spacing_mm=native_spacing)
    assert not today.geometry.resampled and "working_grid" not in today.geometry.to_dict()
    for role, path in today.outputs.items():
        assert path.read_bytes() == same.outputs[role].read_bytes(), role


def test_geometry_records_with_and_without_a_working_grid_round_trip() -> None:
    canonical = Image(np.zeros((30, 30, 12), np.float32), np.diag([2.0, 2.0, 7.0, 1.0]))
    working = working_grid(canonical, (1.0, 1.0, 1.0), 3.0)
    box = VoxelBox((2, 3, 0), (50, 40, 12), (60, 60, 12))
    record = NativeGeometry(canonical.shape, canonical.affine, np.array([[0, 1], [1, 1], [2, 1.0]]), box,
                            working[0], working[1])
    back = NativeGeometry.from_dict(record.to_dict())
    assert back.resampled and back.working_shape == (60, 60, 12)
    np.testing.assert_array_equal(back.prepared_affine, record.prepared_affine)
    old = {key: value for key, value in record.to_dict().items() if key != "working_grid"}
    assert not NativeGeometry.from_dict(old).resampled  # records written before working grids


def test_wmhkit_prepare_records_the_working_spacing_for_the_model_folder(tmp_path: Path) -> None:
    _write_head(tmp_path / "raw", LAS_THICK_AFFINE, LAS_THICK)
    manifest = tmp_path / "raw" / "manifest.tsv"
    manifest.write_text("subject\tflair\tbrain_mask\ns1\tflair.nii.gz\tbrain.nii.gz\n", encoding="utf-8")
    out = tmp_path / "prep"
    assert main(["prepare", str(manifest), "--out", str(out), "--no-n4", "--no-qc-png",
                 "--working-spacing-mm", "2.5,2.5,2.5"]) == 0
    assert load_image(out / "s1" / "flair.nii.gz").spacing_mm == pytest.approx((2.5, 2.5, 7.0))
    # The trainer copies these parameters into model.yaml's prepare entry, which predict reads back.
    parameters = json.loads((out / "s1" / "flair.json").read_text(encoding="utf-8"))["parameters"]
    assert PrepareOptions.from_dict(parameters).working_spacing_mm == (2.5, 2.5, 2.5)
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "bad"), "--working-spacing-mm", "1,1"]) != 0
