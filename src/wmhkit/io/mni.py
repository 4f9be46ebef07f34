"""Where the MNI ICBM152 2009a template files live: nilearn's bundled data folder (offline)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from wmhkit.errors import InputError


def mni_template_dir(required: Iterable[str]) -> Path:
    """Folder of nilearn's bundled data files, checked to hold every file in ``required``.

    nilearn ships the symmetric ICBM152 2009a T1 and GM/WM maps with the package, so
    nothing is downloaded. Only ``nilearn/__init__`` is imported (not ``nilearn.datasets``,
    which costs about a second).

    Raises
    ------
    InputError
        When nilearn is missing or does not ship the files.
    """
    try:
        import nilearn
    except ImportError as exc:
        raise InputError(None, "nilearn is not installed, so the MNI template is unavailable",
                         "pip install 'nilearn>=0.10'") from exc
    folder = Path(nilearn.__file__).parent / "datasets" / "data"
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise InputError(folder, f"nilearn does not ship {missing}", "install nilearn>=0.10 (which bundles them)")
    return folder
