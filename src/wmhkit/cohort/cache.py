"""One object per process, built on first use: a model loaded once per Dask worker, not once per scan.

The cache holds a single entry: asking for another key drops the previous object,
so a worker never keeps two models in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_ENTRY: dict[Hashable, Any] = {}


def process_cached(key: Hashable, build: Callable[[], T]) -> T:
    """The object cached under ``key`` in this process, built by ``build()`` the first time.

    ``key`` must identify everything the object depends on (e.g. the model's hash
    and the device).

    Examples
    --------
    >>> calls = []
    >>> first = process_cached(("doc", 1), lambda: calls.append(1) or "model")
    >>> again = process_cached(("doc", 1), lambda: calls.append(1) or "model")
    >>> first, again, len(calls)
    ('model', 'model', 1)
    """
    if key not in _ENTRY:
        _ENTRY.clear()
        _ENTRY[key] = build()
    return _ENTRY[key]
