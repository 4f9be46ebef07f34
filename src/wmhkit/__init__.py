"""wmhkit: white matter hyperintensity segmentation and volumetry on FLAIR MRI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wmhkit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
