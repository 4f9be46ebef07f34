"""The bundled starter model: the 2.5D model folder shipped inside the package.

``wmhkit predict`` without ``--model`` uses it. It lives in ``wmhkit/models/starter``
(``model.yaml``, ``weights/<plane>.pt``, ``provenance.json``, ``MODEL_CARD.md``) and is
built by ``benchmarks/build_starter.py`` (training config ``configs/starter.yaml``);
the model card says what it was trained on and how well it does.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from wmhkit.errors import InputError

#: Package folder of the starter model, relative to the ``wmhkit`` package.
STARTER_PARTS = ("models", "starter")
MODEL_CARD = "MODEL_CARD.md"


def starter_model_dir() -> Path:
    """The packaged starter model folder (usable as ``predict``'s model folder).

    Returns
    -------
    pathlib.Path
        ``<site-packages>/wmhkit/models/starter`` (or the source tree's, in an
        editable install).

    Raises
    ------
    InputError
        When the folder, its ``model.yaml`` or its ``weights/`` are missing (a
        source checkout where the model was never built, or a damaged install).
    """
    folder = Path(str(resources.files("wmhkit").joinpath(*STARTER_PARTS)))
    missing = [name for name in ("model.yaml", "weights") if not (folder / name).exists()]
    if missing:
        raise InputError(
            folder, f"the bundled starter model is not installed (missing {', '.join(missing)})",
            "reinstall wmhkit, build the model with `python benchmarks/build_starter.py --real-data PATH "
            "--work DIR`, or pass --model a model folder written by `wmhkit train`",
        )
    return folder
