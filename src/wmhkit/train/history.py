"""Per-epoch training log: ``history.csv`` rewritten atomically after every epoch."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wmhkit.io.atomic import write_text_atomic


def write_history(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write the epoch rows (``epoch``, ``train_loss``, ``val_loss``, metrics, ...) as CSV atomically.

    The rows are kept in the checkpoint too, so a resumed run rewrites the same file
    it would have written uninterrupted.
    """
    buffer = io.StringIO()
    pd.DataFrame(list(rows)).to_csv(buffer, index=False, lineterminator="\n", float_format="%.8g")
    return write_text_atomic(path, buffer.getvalue())
