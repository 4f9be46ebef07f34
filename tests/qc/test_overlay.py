"""QC mosaics: valid PNG of the expected size, contours drawn, bad input rejected."""

from __future__ import annotations

import io
import struct

import matplotlib.image as mpimg
import numpy as np
import pytest

from wmhkit.errors import GeometryError
from wmhkit.io.image import Image
from wmhkit.qc.overlay import DPI, TILE_INCHES, overlay_png_bytes, save_overlay_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the IHDR chunk."""
    assert png[:8] == PNG_SIGNATURE
    return struct.unpack(">II", png[16:24])


@pytest.fixture(scope="module")
def flair_and_mask() -> tuple[Image, Image]:
    rng = np.random.default_rng(0)
    affine = np.diag([-1.0, -1.0, 4.0, 1.0])  # LPS storage, thick slices
    grid = np.indices((40, 48, 12)).astype(np.float32)
    radius = np.sqrt(((grid[0] - 20) / 15) ** 2 + ((grid[1] - 24) / 18) ** 2 + ((grid[2] - 6) / 4.5) ** 2)
    flair = np.where(radius < 1, 100.0, 5.0) + rng.normal(0, 2, radius.shape)
    return Image(flair.astype(np.float32), affine), Image((radius < 0.8).astype(np.uint8), affine)


def test_png_has_the_mosaic_size(flair_and_mask):
    flair, mask = flair_and_mask
    width, height = _png_size(overlay_png_bytes(flair, masks={"brain": mask}, n_slices=4))
    assert width == int(4 * TILE_INCHES * DPI)
    assert height == int(3 * TILE_INCHES * DPI + 0.6 * DPI)


def test_contours_change_pixels(flair_and_mask):
    flair, mask = flair_and_mask
    plain = overlay_png_bytes(flair, n_slices=3, planes=("axial",))
    with_mask = overlay_png_bytes(flair, masks={"brain": mask}, n_slices=3, planes=("axial",))
    plain_pixels = mpimg.imread(io.BytesIO(plain))
    mask_pixels = mpimg.imread(io.BytesIO(with_mask))
    assert plain_pixels.shape == mask_pixels.shape
    red = (mask_pixels[..., 0] > 0.8) & (mask_pixels[..., 1] < 0.4) & (mask_pixels[..., 2] < 0.4)
    assert red.sum() > 100  # the red contour of the first mask
    assert not ((plain_pixels[..., 0] > 0.8) & (plain_pixels[..., 1] < 0.4)).any()


def test_save_writes_the_file_atomically(tmp_path, flair_and_mask):
    flair, mask = flair_and_mask
    out = save_overlay_png(flair, tmp_path / "qc" / "sub-01.png", masks={"brain": mask}, title="sub-01")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in out.parent.iterdir()) == ["sub-01.png"]


def test_mask_off_grid_is_rejected(flair_and_mask):
    flair, mask = flair_and_mask
    shifted = Image(mask.array, mask.affine + np.array([[0, 0, 0, 1.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(GeometryError, match="not on the FLAIR grid"):
        overlay_png_bytes(flair, masks={"brain": shifted})


def test_unknown_plane_is_rejected(flair_and_mask):
    flair, _ = flair_and_mask
    with pytest.raises(ValueError, match="planes"):
        overlay_png_bytes(flair, planes=("transverse",))
