"""Any intensity storage gives the same mask: one phantom stored eight ways, prepared, segmented by a bronze method.

N4 runs (with a short schedule): it is the step of ``prepare`` that an offset or a
negative background upsets (the normalisation is linear and undoes any scale and
offset by itself).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.methods import bronze_method
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.metrics.segmentation import dice
from wmhkit.preprocess.bias import N4Settings
from wmhkit.preprocess.normalize import remove_intensity_offset
from wmhkit.preprocess.pipeline import PrepareOptions, prepare_scan
from wmhkit.synth.cohort import synthesize_subject


def _store(path: Path, data: np.ndarray, affine: np.ndarray, slope: float = 1.0, inter: float = 0.0) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.header.set_data_dtype(data.dtype)
    image.header.set_slope_inter(slope, inter)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def _variants(folder: Path, intensities: np.ndarray, affine: np.ndarray, brain: np.ndarray) -> dict[str, Path]:
    """The scan as float32, int16 scaled to [0, 1] over the whole code range, uint8, uint16 up to 65535,
    uint16 with a large offset, NaN background, -1000 background and z-scored (negative background)."""
    unit = intensities / intensities.max()
    background = ~ndimage.binary_dilation(brain, iterations=2)
    return {
        "float32": _store(folder / "float32.nii", intensities.astype(np.float32), affine),
        "int16_fractional_slope": _store(folder / "int16.nii", np.round(unit * 65535 - 32768).astype(np.int16), affine,
                                         1 / 65535, 32768 / 65535),
        "uint8": _store(folder / "uint8.nii", np.round(unit * 255).astype(np.uint8), affine),
        "uint16": _store(folder / "uint16.nii", np.round(unit * 65535).astype(np.uint16), affine),
        "offset": _store(folder / "offset.nii", np.round(unit * 30000).astype(np.uint16), affine, 1.0, 20000.0),
        "nan_background": _store(folder / "nan.nii", np.where(background, np.nan, intensities).astype(np.float32), affine),
        "negative_background": _store(folder / "negative.nii",
                                      np.where(background, -1000.0, intensities).astype(np.float32), affine),
        "z_scored": _store(folder / "zscored.nii",
                           ((intensities - intensities[brain].mean()) / intensities[brain].std()).astype(np.float32),
                           affine),
    }


@pytest.fixture(scope="module")
def storage_masks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("storage")
    # A 2 mm phantom of scanner A (3D, skull stripped, float32) with 42 mL of lesions, and its true brain mask.
    row = synthesize_subject(folder / "cohort", 2, seed=2, scanner="A", resolution_mm=2.0, with_brain_mask=True)
    source = nib.load(folder / "cohort" / row["flair"])
    brain_path = folder / "cohort" / row["brain_mask"]
    brain = np.asarray(nib.load(brain_path).dataobj) > 0
    options = PrepareOptions(qc_png=False, n4_settings=N4Settings(shrink_factor=8, iterations=(10, 10)))
    masks = {}
    for name, path in _variants(folder, np.asarray(source.get_fdata()), source.affine, brain).items():
        prepared = prepare_scan(path, folder / "prepared" / name, brain_mask=brain_path, options=options)
        flair, brain_mask = load_image(prepared.outputs["flair"]), load_mask(prepared.outputs["brain_mask"])
        masks[name] = bronze_method("tophat").run(ScanContext(flair, brain_mask.array))
    return masks


@pytest.mark.parametrize("variant", ["int16_fractional_slope", "uint8", "uint16", "offset", "nan_background",
                                     "negative_background", "z_scored"])
def test_every_storage_gives_the_float32_mask(storage_masks: dict[str, np.ndarray], variant: str) -> None:
    reference = storage_masks["float32"]
    assert reference.sum() > 1000  # a mask worth comparing (about 12 mL)
    assert dice(storage_masks[variant], reference) >= 0.99


def test_offset_and_padding_are_removed_and_a_clean_scan_is_untouched() -> None:
    rng = np.random.default_rng(0)
    scan = np.concatenate([np.abs(rng.normal(0, 3, 4000)), rng.normal(500, 40, 6000)]).reshape(100, 10, 10)
    assert remove_intensity_offset(scan) is scan
    scaled = 0.01 * scan
    for stored in (scaled + 300.0, scaled - 7.0):  # offset up (scl_inter) and down (z-scoring)
        np.testing.assert_allclose(remove_intensity_offset(stored), np.clip(scaled - np.percentile(scaled, 1), 0, None),
                                   atol=1e-3)
    padded = np.where(scan < 20, -1024.0, scan)
    shifted = remove_intensity_offset(padded)
    assert shifted.min() == 0.0 and np.array_equal(shifted[scan >= 20], scan[scan >= 20].astype(np.float32))
