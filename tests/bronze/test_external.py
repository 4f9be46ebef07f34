"""Import of external tools' masks onto the FLAIR grid."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from wmhkit.bronze.external import import_external
from wmhkit.errors import GeometryError, InputError, MaskError
from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, save_image


@pytest.fixture
def flair():
    """A 2 mm FLAIR grid stored LPS, 40×40×20."""
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = [40.0, 40.0, -20.0]
    return Image(np.zeros((40, 40, 20), np.float32), affine)


def _world(image: Image, index) -> np.ndarray:
    return image.affine[:3, :3] @ np.asarray(index, float) + image.affine[:3, 3]


def test_freesurfer_aseg_mgz_wm_hypointensity_labels_land_in_place(tmp_path, flair):
    # A conformed-like 1 mm RAS grid covering the FLAIR's field of view.
    affine = np.eye(4)
    affine[:3, 3] = [-40.0, -40.0, -20.0]
    aseg = np.full((80, 80, 40), 2, np.int32)  # label 2: cerebral WM
    aseg[10:14, 20:24, 10:14] = 77
    aseg[50:54, 60:64, 20:24] = 78
    aseg[30:34, 30:34, 30:34] = 79
    aseg[60:64, 10:14, 5:9] = 4  # ventricle: not WMH
    path = tmp_path / "aseg.mgz"
    nib.save(nib.MGHImage(aseg, affine), str(path))
    wmh = import_external(path, flair, "freesurfer")
    assert wmh.array.dtype == np.uint8 and wmh.shape == flair.shape and np.array_equal(wmh.affine, flair.affine)
    # every imported voxel sits on an aseg WMH label (world coordinates through both affines)
    for index in np.argwhere(wmh.array):
        source = np.rint(np.linalg.inv(affine)[:3] @ np.append(_world(flair, index), 1)).astype(int)
        assert aseg[tuple(source)] in (77, 78, 79)
    assert wmh.array.sum() * 8 == pytest.approx(3 * 64, rel=0.5)


def test_lst_probability_map_threshold(tmp_path, flair):
    prob = np.zeros(flair.shape, np.float32)
    prob[5:10, 5:10, 5:10] = 0.7
    prob[20:25, 20:25, 5:10] = 0.3
    save_image(flair.with_array(prob), tmp_path / "ples_lpa_mFLAIR.nii.gz")
    default = import_external(tmp_path / "ples_lpa_mFLAIR.nii.gz", flair, "lst")
    low = import_external(tmp_path / "ples_lpa_mFLAIR.nii.gz", flair, "lst", threshold=0.2)
    assert default.array.sum() == 125 and low.array.sum() == 250
    with pytest.raises(InputError, match="outside"):
        import_external(tmp_path / "ples_lpa_mFLAIR.nii.gz", flair, "lst", threshold=1.5)


def test_binary_mask_of_255_is_accepted_but_three_values_are_not(tmp_path, flair):
    mask = np.zeros(flair.shape, np.float32)
    mask[2:4, 2:4, 2:4] = 255
    save_image(flair.with_array(mask), tmp_path / "ubo.nii.gz")
    assert import_external(tmp_path / "ubo.nii.gz", flair, "ubo").array.sum() == 8
    mask[10, 10, 10] = 3
    save_image(flair.with_array(mask), tmp_path / "labels.nii.gz")
    with pytest.raises(MaskError, match="not a binary mask: values 0, 3, 255"):
        import_external(tmp_path / "labels.nii.gz", flair, "mask")


def test_mask_outside_the_flair_field_of_view_is_refused(tmp_path, flair):
    mask = np.zeros((10, 10, 10), np.float32)
    mask[4:6, 4:6, 4:6] = 1
    far = np.eye(4)
    far[:3, 3] = [500.0, 0.0, 0.0]
    save_image(Image(mask, far), tmp_path / "elsewhere.nii.gz")
    with pytest.raises(GeometryError, match="outside the FLAIR's field of view"):
        import_external(tmp_path / "elsewhere.nii.gz", flair, "mask")


def test_unknown_kind(tmp_path, flair):
    with pytest.raises(InputError, match="unknown external mask kind"):
        import_external(tmp_path / "x.nii.gz", flair, "spm")


NICHART = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "nichart-demo" / "Subj1"


@pytest.mark.realdata
@pytest.mark.skipif(not NICHART.is_dir(), reason="../shared/data/real/nichart-demo not found")
def test_dlwmls_mask_of_a_nichart_scan_imports_unchanged_onto_its_flair():
    flair = load_image(NICHART / "FLAIR.nii.gz")  # uint8 container with float scaling
    wmh = import_external(NICHART / "dlwmls.nii.gz", flair, "dlwmls")
    source = np.asarray(nib.load(str(NICHART / "dlwmls.nii.gz")).dataobj)
    assert wmh.array.dtype == np.uint8 and np.array_equal(wmh.affine, flair.affine)
    assert np.array_equal(wmh.array, (source != 0).astype(np.uint8))
    assert 5.7 <= wmh.array.sum() * wmh.voxel_volume_ml <= 37.0  # the data README's DLWMLS volume range
