"""Input/output: the image type, validated NIfTI I/O, atomic writes, provenance, manifests."""

from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image, load_mask, save_image, save_mask

__all__ = ["Image", "load_image", "load_mask", "save_image", "save_mask"]
