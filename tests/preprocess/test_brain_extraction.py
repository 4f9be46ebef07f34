"""Brain extraction behind one interface: skull-stripped input, fallback, both failing, HD-BET, options and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from wmhkit.cli import main
from wmhkit.errors import MaskError
from wmhkit.infer.starter import starter_model_dir
from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, load_mask
from wmhkit.models.folder import read_model_spec
from wmhkit.preprocess import hdbet
from wmhkit.preprocess.brain_extraction import (
    BRAIN_EXTRACTORS,
    extract_brain,
    fallback_method,
    register_brain_extractor,
    stripped_foreground,
)
from wmhkit.preprocess.orientation import to_canonical
from wmhkit.preprocess.pipeline import PrepareOptions
from wmhkit.synth.cohort import synthesize_subject

NICHART = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "nichart-demo" / "Subj1"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _whole_volume(flair: Image, *, t1: Image | None = None) -> Image:
    """A registered extractor that fails for real: its mask is the whole field of view."""
    return flair.with_array(np.ones(flair.shape, np.uint8))


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Image, Image, Path]]:
    """3 mm synthetic subjects, RAS+: ``stripped`` (profile A, no head) and ``head`` (profile C, 2D with a head):
    name → (FLAIR, true brain, FLAIR file)."""
    folder = tmp_path_factory.mktemp("phantoms")
    scans = {}
    for name, scanner, head in (("stripped", "A", False), ("head", "C", True)):
        row = synthesize_subject(folder / name, 1, seed=3, scanner=scanner, with_head=head, with_brain_mask=True,
                                 resolution_mm=3.0)
        path = folder / name / row["flair"]
        flair, _ = to_canonical(load_image(path))
        truth, _ = to_canonical(load_mask(folder / name / row["brain_mask"]))
        scans[name] = (flair, truth, path)
    return scans


@pytest.fixture
def whole_volume_extractor():
    register_brain_extractor("whole_volume", _whole_volume)
    yield "whole_volume"
    del BRAIN_EXTRACTORS["whole_volume"]


def test_skull_stripped_phantom_is_masked_by_its_non_background_region(phantoms):
    flair, truth, _ = phantoms["stripped"]
    assert stripped_foreground(flair) is not None
    result = extract_brain(flair, method="hdbet")  # HD-BET never runs on a stripped scan
    assert result.method == "nonzero"
    assert _dice(result.mask.array, truth.array) >= 0.97
    assert result.volume_ml == pytest.approx(float(truth.array.sum()) * flair.voxel_volume_ml, rel=0.05)


def test_negative_offset_and_nan_backgrounds_are_stripped_too(phantoms, tmp_path):
    flair, _, _ = phantoms["stripped"]
    reference = extract_brain(flair, method="template").mask.array
    background = flair.array == 0
    negative = flair.with_array(np.where(background, -7.5, flair.array).astype(np.float32))
    offset = flair.with_array((flair.array - 1000.0).astype(np.float32))  # every value negative, background -1000
    nib.save(nib.Nifti1Image(np.where(background, np.nan, flair.array).astype(np.float32), flair.affine),
             tmp_path / "nan.nii.gz")
    for variant in (negative, offset, load_image(tmp_path / "nan.nii.gz")):  # loading turns NaN into 0
        result = extract_brain(variant, method="template")
        assert result.method == "nonzero"
        np.testing.assert_array_equal(result.mask.array, reference)


def test_a_head_is_not_taken_as_skull_stripped_even_with_zero_filled_air(phantoms):
    flair, _, _ = phantoms["head"]
    assert stripped_foreground(flair) is None  # noisy air: no single background value
    values = flair.array
    head = values > 0.1 * np.percentile(values, 99)
    zero_air = flair.with_array(np.where(ndimage.binary_fill_holes(head), values, 0.0).astype(np.float32))
    assert stripped_foreground(zero_air) is None  # the exact-zero region holds a whole head (> 2500 mL)


def test_an_implausible_mask_falls_back_to_the_other_method(phantoms, whole_volume_extractor, caplog):
    flair, truth, path = phantoms["head"]
    with caplog.at_level("WARNING", logger="wmhkit.preprocess.brain_extraction"):
        result = extract_brain(flair, method=whole_volume_extractor, source=path)
    assert result.method == "template (fallback from whole_volume)"
    assert _dice(result.mask.array, truth.array) >= 0.7  # the whole volume scores 0.29
    assert "whole_volume brain extraction failed" in caplog.text and "outside the plausible" in caplog.text
    assert fallback_method("hdbet") == "template" and fallback_method("template") == "hdbet"


def test_both_methods_failing_raise_a_mask_error_naming_the_file_and_the_fix(whole_volume_extractor):
    flair = np.zeros((40, 40, 40), np.float32)
    flair[15:25, 15:25, 15:25] = 500.0  # 1 mL at 1 mm: no brain for any method
    with pytest.raises(MaskError, match="--brain-extractor") as error:
        extract_brain(Image(flair, np.eye(4)), method=whole_volume_extractor, source="sub-01_FLAIR.nii.gz")
    assert error.value.path == "sub-01_FLAIR.nii.gz"
    assert "whole_volume:" in error.value.reason and "template:" in error.value.reason
    assert "brain_mask column" in str(error.value)


def test_blank_flair_and_unknown_method_are_refused():
    with pytest.raises(MaskError, match="no signal"):
        extract_brain(Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), source="blank.nii.gz")
    with pytest.raises(ValueError, match="hdbet"):
        extract_brain(Image(np.ones((8, 8, 8), np.float32), np.eye(4)), method="bet2")


def test_hdbet_network_is_loaded_once_and_missing_weights_name_the_fix(monkeypatch):
    network, _ = hdbet._network()
    assert hdbet._network()[0] is network
    assert not network.training and network.do_ds is False
    monkeypatch.setattr(hdbet, "WEIGHTS_BYTES", hdbet.WEIGHTS_BYTES + 1)  # the packaged file no longer matches
    with pytest.raises(RuntimeError, match="--brain-extractor template"):
        hdbet._network()


def test_prepare_options_round_trip_and_old_records_default_to_hdbet():
    options = PrepareOptions(brain_extractor="template", n4=False)
    assert PrepareOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    old = options.to_dict()
    del old["brain_extractor"]
    assert PrepareOptions.from_dict(old).brain_extractor == "hdbet"
    with pytest.raises(ValueError, match="brain extractor"):
        PrepareOptions(brain_extractor="bet2")
    assert read_model_spec(starter_model_dir()).prepare.brain_extractor == "hdbet"


def test_cli_brain_extractor_reaches_the_sidecars(phantoms, tmp_path):
    flair, truth, path = phantoms["stripped"]
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(f"subject\tflair\ns1\t{path}\n")
    out = tmp_path / "prepared"
    code = main(["prepare", str(manifest), "--out", str(out), "--no-n4", "--no-qc-png",
                 "--brain-extractor", "template"])
    assert code == 0
    sidecar = json.loads((out / "s1" / "brain_mask.json").read_text())
    assert sidecar["parameters"]["brain_extractor"] == "template"
    assert sidecar["brain_mask_source"] == "nonzero"
    truth_ml = float(truth.array.sum()) * flair.voxel_volume_ml
    assert sidecar["brain_volume_ml"] == pytest.approx(truth_ml, rel=0.05)
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "x"), "--brain-extractor", "bet2"]) != 0


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (NICHART / "FLAIR.nii.gz").is_file(), reason="../shared/data/real/nichart-demo not found")
def test_hdbet_on_a_whole_head_flair_keeps_every_lesion():
    flair, _ = to_canonical(load_image(NICHART / "FLAIR.nii.gz"))
    lesions, _ = to_canonical(load_mask(NICHART / "dlwmls.nii.gz"))
    result = extract_brain(flair)
    assert result.method == "hdbet"
    assert 900.0 <= result.volume_ml <= 1900.0
    inside = np.count_nonzero(result.mask.array & (lesions.array > 0)) / np.count_nonzero(lesions.array)
    assert inside >= 0.99
